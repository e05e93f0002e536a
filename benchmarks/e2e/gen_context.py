#!/usr/bin/python3
"""Writes workload (b)'s build context: FILES files totalling BYTES bytes, deterministic from SEED.

Half of the files are text (words, ~10% of the bytes), half incompressible random bytes, spread
over 50 directories each under text/ and bin/.  Every file gets the same fixed mtime, so the
image is the same from run to run.  Usage: gen_context.py DIR [--seed N] [--files N] [--bytes N]
"""
import argparse
import os
import random
import shutil
import sys

MTIME_NS = 1_700_000_000 * 10**9  # 2023-11-14, any fixed instant
WORDS = ("kiln layer snapshot overlay build image digest content store cache solver vertex "
         "export compress context sync mirror hash tar blob manifest config").split()


def sizes(rng, count, total):
    weights = [rng.uniform(0.2, 1.8) for _ in range(count)]
    scale = total / sum(weights)
    out = [max(1, int(w * scale)) for w in weights]
    out[-1] += total - sum(out)
    return out


def text(rng, size):
    parts, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + "\n"
        parts.append(line)
        n += len(line)
    return "".join(parts).encode()[:size]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--bytes", type=int, default=200 * 1024 * 1024)
    a = p.parse_args()
    stamp = f"{a.dir}.stamp"
    want = f"seed={a.seed} files={a.files} bytes={a.bytes}\n"
    if os.path.isdir(a.dir) and os.path.exists(stamp) and open(stamp).read() == want:
        return 0
    shutil.rmtree(a.dir, ignore_errors=True)
    rng = random.Random(a.seed)
    n_text = a.files // 2
    n_bin = a.files - n_text
    text_bytes = a.bytes // 10
    files = []
    for i, size in enumerate(sizes(rng, n_text, text_bytes)):
        files.append((f"text/d{i % 50:02d}/f{i:04d}.txt", size, True))
    for i, size in enumerate(sizes(rng, n_bin, a.bytes - text_bytes)):
        files.append((f"bin/d{i % 50:02d}/f{i:04d}.bin", size, False))
    for rel, size, is_text in files:
        path = os.path.join(a.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(text(rng, size) if is_text else rng.randbytes(size))
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    for root, dirs, _ in os.walk(a.dir, topdown=False):
        for d in dirs:
            os.utime(os.path.join(root, d), ns=(MTIME_NS, MTIME_NS))
    os.utime(a.dir, ns=(MTIME_NS, MTIME_NS))
    with open(stamp, "w") as f:
        f.write(want)
    return 0


if __name__ == "__main__":
    sys.exit(main())
