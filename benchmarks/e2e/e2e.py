#!/usr/bin/python3
"""End-to-end benchmark of `kilnctl build` (see README.md next to this file).

Two workloads: (a) the multi-stage Dockerfile in multistage/; (b) a generated 5,000-file /
200 MiB context (gen_context.py) that one COPY takes in and one RUN walks.  Per repetition and
workload, on a fresh state dir (busybox imported before timing):

  cold             first build, OCI tarball output
  no-change        same build again, OCI tarball output (rewrites the whole tarball)
  no-change/store  same build again, output to kiln's image store (nothing to write): the
                   figure the "under 0.1 s beyond process start" budget is about
  1 file, same mtime / new mtime
                   16 bytes of one context file rewritten in place, size kept, mtime kept
                   (then a second edit with a new mtime); both must rebuild

Workload (b)'s cold build is also run with zstd (levels 3 and 1) to time layer export with each
compressor.  In the same repetition, interleaved with the builds so that every figure sees the
same machine load: sha256sum, openssl sha256 (the library kiln hashes with), zstd -1, zstd -3,
gzip -1 and `tar -c | cat` over a tar of (b)'s context (the same bytes as the layer), and the
process start cost (`kilnctl --help`; `kilnctl du` on an empty state).  Every figure is the
median of --reps repetitions.  Peak RSS is the child's ru_maxrss from wait4 (kilnctl or, if
larger, one of its waited-for children).

  sudo /usr/bin/python3 benchmarks/e2e/e2e.py --kilnctl build/bin/kilnctl \
      --work /var/tmp/kiln-e2e [--reps 3] [--json /tmp/e2e.json] [--clean]
  /usr/bin/python3 benchmarks/e2e/e2e.py --report results.json     (re-print the tables)
"""
import argparse
import calendar
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MB = 1_000_000  # throughput is in MB/s (10^6 bytes), like the tools' own reports

# Budgets of the issue (reported, never asserted).
NOCHANGE_BEYOND_START_S = 0.1
EXPORT_VS_SLOWER_BASELINE = 1.5
MARKER = ".kiln-e2e-workdir"


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def rfc3339(s):
    """'2024-01-02T03:04:05.123456789Z' -> seconds since the epoch (float)."""
    base, _, frac = s.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def run_timed(argv, stdout=subprocess.DEVNULL, stderr=None, check=True):
    """Runs argv; returns {wall s, cpu s (user+sys of it and its waited-for children), peak RSS
    bytes}, from wait4 on that one child."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if check and p.returncode != 0:
        raise SystemExit(f"e2e: {' '.join(argv)} exited {p.returncode}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss": ru.ru_maxrss * 1024}


def parse_progress(path):
    """Phase durations of a build from its --progress rawjson stderr."""
    vertices, statuses, stamps = {}, {}, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            ev = json.loads(line)
            for v in ev.get("vertexes", []):
                d = vertices.setdefault(v["digest"], {"name": v["name"], "cached": False})
                d["cached"] |= bool(v.get("cached"))
                for k in ("started", "completed"):
                    if k in v:
                        d[k] = rfc3339(v[k])
                        stamps.append(d[k])
            for s in ev.get("statuses", []):
                d = statuses.setdefault(s["id"], {})
                for k in ("started", "completed"):
                    if k in s:
                        d[k] = rfc3339(s[k])
                        stamps.append(d[k])

    def span(d):
        return d["completed"] - d["started"] if "started" in d and "completed" in d else None

    out = {"first_event": min(stamps, default=None), "last_event": max(stamps, default=None)}
    for d in vertices.values():
        if d["name"].startswith("exporting to"):
            out["export_vertex"] = span(d)
        elif d["name"] == "[internal] load build context":
            out["load_context"] = span(d)
    for sid, d in statuses.items():
        if sid == "exporting layers":
            out["export_layers"] = span(d)
        elif sid == "sending tarball":
            out["sending_tarball"] = span(d)
        elif sid.startswith("transferring "):
            out["transfer"] = (out.get("transfer") or 0) + (span(d) or 0)
    return out


class Bench:
    def __init__(self, args):
        self.kilnctl = os.path.abspath(args.kilnctl)
        self.work = os.path.abspath(args.work)
        self.reps = args.reps
        self.seed = args.seed
        self.results = {"reps": [], "load": [], "kilnctl": self.kilnctl,
                        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}

    # ---- setup -----------------------------------------------------------------------------

    def setup(self):
        os.makedirs(self.work, exist_ok=True)
        open(os.path.join(self.work, MARKER), "w").close()  # --clean removes only such a dir
        # A private copy of kilnctl and its kiln-init, so a rebuild of the build directory
        # during the run (other people's ninja) cannot change or break the binary under test.
        bindir = os.path.join(self.work, "bin")
        os.makedirs(bindir, exist_ok=True)
        for attempt in range(30):  # a link in progress leaves a partial file: copy it again
            for name in ("kilnctl", "kiln-init"):
                shutil.copy2(os.path.join(os.path.dirname(self.kilnctl), name),
                             os.path.join(bindir, name))
            ok = subprocess.run([os.path.join(bindir, "kilnctl"), "--help"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if ok.returncode == 0:
                break
            time.sleep(2)
        else:
            raise SystemExit(f"e2e: {self.kilnctl} does not run")
        self.kilnctl = os.path.join(bindir, "kilnctl")
        self.rootfs = os.path.join(self.work, "busybox")
        if not os.path.exists(os.path.join(self.rootfs, "bin/busybox")):
            subprocess.run(["bash", os.path.join(REPO, "scripts/busybox-rootfs.sh"), self.rootfs],
                           check=True)
        # (a): context and Dockerfile are copied, since the change rebuilds edit a file.
        a = os.path.join(self.work, "a")
        shutil.rmtree(a, ignore_errors=True)
        shutil.copytree(os.path.join(HERE, "multistage/context"), os.path.join(a, "ctx"))
        os.makedirs(os.path.join(a, "df"))
        shutil.copy(os.path.join(HERE, "multistage/Dockerfile"), os.path.join(a, "df"))
        # (b): generated once per seed (gen_context.py keeps an up-to-date directory).
        b = os.path.join(self.work, "b")
        os.makedirs(os.path.join(b, "df"), exist_ok=True)
        shutil.copy(os.path.join(HERE, "bigcontext/Dockerfile"), os.path.join(b, "df"))
        subprocess.run(["/usr/bin/python3", os.path.join(HERE, "gen_context.py"),
                        os.path.join(b, "ctx"), "--seed", str(self.seed)], check=True)
        self.workloads = {
            "a": {"ctx": os.path.join(a, "ctx"), "df": os.path.join(a, "df"),
                  "change": "words.txt"},
            "b": {"ctx": os.path.join(b, "ctx"), "df": os.path.join(b, "df"),
                  "change": "bin/d17/f1217.bin"},
        }
        # The baselines' input: one tar of (b)'s context, rebuilt every run (a few seconds).
        self.tar = os.path.join(self.work, "ctx-b.tar")
        subprocess.run(["tar", "-C", os.path.join(b, "ctx"), "-cf", self.tar, "."], check=True)
        self.results["tar_bytes"] = os.path.getsize(self.tar)
        self.empty_state = os.path.join(self.work, "empty-state")
        shutil.rmtree(self.empty_state, ignore_errors=True)
        subprocess.run([self.kilnctl, "--root", self.empty_state, "du"], check=True,
                       stdout=subprocess.DEVNULL)

    # ---- the pieces of one repetition ------------------------------------------------------

    def process_start(self):
        return {"help": run_timed([self.kilnctl, "--help"])["wall"],
                "du_empty": run_timed([self.kilnctl, "--root", self.empty_state, "du"])["wall"]}

    def baselines(self):
        subprocess.run(["cat", self.tar], stdout=subprocess.DEVNULL, check=True)  # page cache
        ctx = self.workloads["b"]["ctx"]
        cmds = {
            "sha256sum": ["sha256sum", self.tar],
            "openssl sha256": ["openssl", "dgst", "-sha256", self.tar],
            "zstd -1": ["zstd", "-1", "-T1", "-q", "-c", self.tar],
            "zstd -3": ["zstd", "-3", "-T1", "-q", "-c", self.tar],
            "gzip -1": ["gzip", "-1", "-c", self.tar],
            # GNU tar skips reading the files when it writes to /dev/null: pipe it.
            "tar -c | cat": ["sh", "-c", f"tar -C '{ctx}' -cf - . | cat"],
        }
        return {name: run_timed(argv)["wall"] for name, argv in cmds.items()}

    def fresh_state(self, name):
        state = os.path.join(self.work, "state-" + name)
        shutil.rmtree(state, ignore_errors=True)
        subprocess.run([self.kilnctl, "--root", state, "image", "import", "--rootfs",
                        self.rootfs, "busybox:latest"], check=True, stdout=subprocess.DEVNULL)
        return state

    def build(self, state, wl, label, output=None, output_attrs=""):
        w = self.workloads[wl]
        name = f"kiln-e2e-{wl}:latest"
        if output is None:
            out = os.path.join(self.work, f"out-{wl}.tar")
            output = f"type=oci,dest={out},name={name}{output_attrs}"
        meta = os.path.join(self.work, f"meta-{wl}-{label}.json")
        log = os.path.join(self.work, f"progress-{wl}-{label}.jsonl")
        argv = [self.kilnctl, "--root", state, "build", "--frontend", "dockerfile.v0",
                "--local", "context=" + w["ctx"], "--local", "dockerfile=" + w["df"],
                "--output", output, "--progress", "rawjson", "--metadata-file", meta]
        with open(log, "w") as err:
            spawn = time.time()
            r = run_timed(argv, stderr=err)
            end = time.time()
        with open(meta) as f:
            m = json.load(f)
        r.update({"cached": m["kiln.build.steps.cached"], "total": m["kiln.build.steps.total"],
                  "digest": m.get("containerimage.digest")})
        r.update(parse_progress(log))
        # Time outside every reported step: process and engine start before the first event,
        # and what follows the last one (engine shutdown, state flushes) until the exit.
        first, last = r.pop("first_event"), r.pop("last_event")
        r["before_first_event"] = first - spawn if first else None
        r["after_last_event"] = end - last if last else None
        return r

    def mutate(self, wl, keep_mtime, variant):
        """Rewrites 16 bytes in the middle of the workload's change file, keeping its size (and
        with keep_mtime its atime/mtime to the nanosecond).  Returns what restore() needs."""
        path = os.path.join(self.workloads[wl]["ctx"], self.workloads[wl]["change"])
        st = os.stat(path)
        off = st.st_size // 2
        with open(path, "r+b") as f:
            f.seek(off)
            old = f.read(16)
            new = bytes((ord("a") + (x - ord("a") + variant) % 26) if 97 <= x <= 122
                        else x ^ (0x11 * variant) for x in old)
            assert new != old
            f.seek(off)
            f.write(new)
        if keep_mtime:
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(path).st_size == st.st_size
        return (path, off, old, st.st_atime_ns, st.st_mtime_ns)

    @staticmethod
    def restore(undo):
        path, off, old, atime, mtime = undo
        with open(path, "r+b") as f:
            f.seek(off)
            f.write(old)
        os.utime(path, ns=(atime, mtime))

    def series(self, wl):
        state = self.fresh_state(wl)
        out = {}
        out["cold"] = self.build(state, wl, "cold")
        out["nochange"] = self.build(state, wl, "nochange")
        out["nochange_store"] = self.build(state, wl, "nochange-store",
                                           output=f"type=image,name=kiln-e2e-{wl}:latest")
        undo = self.mutate(wl, keep_mtime=True, variant=1)
        try:
            out["change_same_mtime"] = self.build(state, wl, "change-same-mtime")
            self.mutate(wl, keep_mtime=False, variant=2)
            out["change_new_mtime"] = self.build(state, wl, "change-new-mtime")
        finally:
            # Only the 16 bytes differ from the pristine file; put them and the mtime back.
            self.restore(undo)
        # The image store gets Docker media types (as BuildKit's image exporter), hence
        # another manifest digest than the OCI tarball's: only the tarball is compared.
        out["nochange"]["same_digest"] = out["nochange"]["digest"] == out["cold"]["digest"]
        prev = out["nochange"]["digest"]
        for k in ("change_same_mtime", "change_new_mtime"):
            r = out[k]
            r["detected"] = r["digest"] != prev and r["cached"] < r["total"]
            prev = r["digest"]
        if wl == "b":
            self.layer_bytes(os.path.join(self.work, "out-b.tar"))
        shutil.rmtree(state, ignore_errors=True)
        return out

    def layer_bytes(self, oci_tar):
        """Uncompressed size of the biggest layer of the image in an OCI tarball (b's COPY)."""
        if "layer_bytes" in self.results:
            return
        with tarfile.open(oci_tar) as t:
            biggest = max((m for m in t.getmembers() if m.name.startswith("blobs/")),
                          key=lambda m: m.size)
            n = 0
            with gzip.open(t.extractfile(biggest)) as g:
                while chunk := g.read(1 << 20):
                    n += len(chunk)
        self.results["layer_bytes"] = n
        self.results["layer_blob_bytes"] = biggest.size

    def export_cold(self, label, attrs):
        state = self.fresh_state("b-" + label)
        r = self.build(state, "b", "cold-" + label, output_attrs=attrs)
        shutil.rmtree(state, ignore_errors=True)
        return r

    def run(self):
        self.setup()
        self.results["load"].append(("start", loadavg()))
        for i in range(self.reps):
            rep = {"process_start": self.process_start(), "baselines": self.baselines()}
            rep["a"] = self.series("a")
            rep["b"] = self.series("b")
            rep["export_zstd3"] = self.export_cold("zstd3", ",compression=zstd")
            rep["export_zstd1"] = self.export_cold(
                "zstd1", ",compression=zstd,compression-level=1")
            self.results["load"].append((f"after repetition {i + 1}", loadavg()))
            self.results["reps"].append(rep)
            print(f"e2e: repetition {i + 1}/{self.reps} done, load {loadavg()}", file=sys.stderr)
        return self.results


# ---- report ----------------------------------------------------------------------------------


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


PHASES = [("cold", "cold"), ("nochange", "no-change"), ("nochange_store", "no-change/store"),
          ("change_same_mtime", "1 file, same mtime"), ("change_new_mtime", "1 file, new mtime")]
EXPORTS = [("b", "cold", "gzip (ISA-L 1, default)"),
           ("export_zstd3", None, "zstd 3 (default zstd)"),
           ("export_zstd1", None, "zstd 1")]


def report(res):
    reps = res["reps"]
    n = len(reps)
    layer = res.get("layer_bytes") or res["tar_bytes"]
    lines = []
    p = lines.append
    p(f"kiln e2e benchmark ({res.get('started', '')}): median of {n} repetition(s)")
    p("load average (1/5/15 min): " + "; ".join(
        f"{when} {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}" for when, la in res["load"]))
    help_s = med([r["process_start"]["help"] for r in reps])
    du_s = med([r["process_start"]["du_empty"] for r in reps])
    p(f"process start: `kilnctl --help` {help_s:.3f} s; `kilnctl du` on an empty state "
      f"{du_s:.3f} s")
    p("")

    # Builds.
    rows = [(wl, key, name) for wl in ("a", "b") for key, name in PHASES]
    rows += [("export_zstd3", None, "cold, zstd 3"), ("export_zstd1", None, "cold, zstd 1")]
    p(f"{'workload':<10}{'phase':<20}{'wall s':>7}{'min-max':>12}{'cpu s':>7}{'cached':>8}"
      f"{'-start':>7}{'pre':>6}{'post':>6}{'ctx':>6}{'export':>7}{'tarball':>8}"
      f"{'RSS MB':>7}  check")
    prev_wl = None
    for wl, key, name in rows:
        rs = [r[wl][key] if key else r[wl] for r in reps]
        title = {"a": "(a) multi", "b": "(b) 200MB"}.get(wl, "(b) 200MB")
        if prev_wl is not None and wl != prev_wl and wl in ("a", "b"):
            p("")
        prev_wl = wl
        walls = [r["wall"] for r in rs]
        wall = med(walls)
        cached = ",".join(sorted({f"{r['cached']}/{r['total']}" for r in rs}))
        check = ""
        if "detected" in rs[0]:
            check = "rebuilt" if all(r["detected"] for r in rs) else "CHANGE MISSED"
        elif "same_digest" in rs[0]:
            check = "same image" if all(r["same_digest"] for r in rs) else "DIGEST CHANGED"
        ctx = med([(r.get("transfer") or 0) + (r.get("load_context") or 0) for r in rs])
        p(f"{title:<10}{name:<20}{wall:>7.3f}{f'{min(walls):.2f}-{max(walls):.2f}':>12}"
          f"{med([r['cpu'] for r in rs]):>7.2f}{cached:>8}{wall - help_s:>7.3f}"
          f"{fmt(med([r.get('before_first_event') for r in rs]), '.3f'):>6}"
          f"{fmt(med([r.get('after_last_event') for r in rs]), '.3f'):>6}"
          f"{fmt(ctx, '.2f'):>6}{fmt(med([r.get('export_vertex') for r in rs]), '.2f'):>7}"
          f"{fmt(med([r.get('sending_tarball') for r in rs]), '.2f'):>8}"
          f"{max(r['rss'] for r in rs) / MB:>7.1f}  {check}")
    p("")
    p("  wall: kilnctl's wall time (median, min-max); cpu: its user+sys (and its children's); "
      "-start: wall minus `kilnctl --help`;")
    p("  pre: spawn to the first progress event (process start included); post: last event to "
      "exit; ctx: context transfer + load;")
    p("  export: the export step; tarball: writing the OCI tarball (part of export); RSS: peak "
      "resident set (max over repetitions);")
    p("  no-change/store: output to kiln's image store instead of an OCI tarball")
    p("")

    # Export throughput, each next to the same-run baselines.
    base = {k: med([r["baselines"][k] for r in reps]) for k in reps[0]["baselines"]}
    slower_issue = max(base["sha256sum"], base["zstd -1"])
    slower_lib = max(base["openssl sha256"], base["zstd -1"])
    p(f"export throughput: kiln over its {layer / MB:.1f} MB uncompressed layer ((b)'s COPY); "
      f"tools over a {res['tar_bytes'] / MB:.1f} MB tar of the same files, same run")
    p(f"  A = slower of sha256sum and zstd -1 = {slower_issue:.3f} s (the issue's baseline); "
      f"B = slower of openssl sha256 and zstd -1 = {slower_lib:.3f} s")
    p(f"  {'what':<46}{'s':>7}{'MB/s':>8}{'x A':>7}{'x B':>7}")
    for k, t in base.items():
        what = k + (" (1 thread)" if k != "tar -c | cat" else " (GNU tar reading the files)")
        p(f"  {what:<46}{t:>7.3f}{res['tar_bytes'] / MB / t:>8.1f}{t / slower_issue:>7.2f}"
          f"{t / slower_lib:>7.2f}")
    verdicts = []
    for wl, key, name in EXPORTS:
        for phase, what in (("export_layers", "layers"), ("export_vertex", "whole export")):
            t = med([(r[wl][key] if key else r[wl]).get(phase) for r in reps])
            if t is None:
                continue
            p(f"  {'kiln ' + name + ', ' + what:<46}{t:>7.3f}{layer / MB / t:>8.1f}"
              f"{t / slower_issue:>7.2f}{t / slower_lib:>7.2f}")
            if phase == "export_layers":
                verdicts.append((name, t))
    p("  layers: the 'exporting layers' status = walk + tar + diffID sha256 | compression + "
      "blob sha256 + write + fsync into the content store;")
    p("  whole export: plus manifest, config and the OCI tarball (every blob copied, "
      "re-verified and fsynced)")
    p("")

    # Budgets.
    p("budgets (reported, not asserted)")
    for wl in ("b", "a"):
        for key in ("nochange_store", "nochange"):
            rs = [r[wl][key] for r in reps]
            wall = med([r["wall"] for r in rs])
            beyond = wall - help_s
            verdict = "PASS" if beyond <= NOCHANGE_BEYOND_START_S else "FAIL"
            p(f"  ({wl}) {dict(PHASES)[key]:<16} {wall:.3f} s - start {help_s:.3f} s = "
              f"{beyond:.3f} s (budget {NOCHANGE_BEYOND_START_S} s): {verdict}; of it before "
              f"the first event {fmt(med([r.get('before_first_event') for r in rs]))} s, after "
              f"the last {fmt(med([r.get('after_last_event') for r in rs]))} s")
    for name, t in verdicts:
        a, b = t / slower_issue, t / slower_lib
        p(f"  layer export, {name}: {a:.2f} x A, {b:.2f} x B (budget "
          f"{EXPORT_VS_SLOWER_BASELINE} x): "
          f"{'PASS' if a <= EXPORT_VS_SLOWER_BASELINE else 'FAIL'} against A, "
          f"{'PASS' if b <= EXPORT_VS_SLOWER_BASELINE else 'FAIL'} against B")
    peak = max(((r[wl][key]["rss"] if key else r[wl]["rss"]), label)
               for r in reps for wl, key, label in
               [(w, k, f"({w}) {nm}") for w in ("a", "b") for k, nm in PHASES] +
               [("export_zstd3", None, "(b) cold, zstd 3"), ("export_zstd1", None,
                                                            "(b) cold, zstd 1")])
    p(f"  memory: peak RSS {peak[0] / MB:.1f} MB ({peak[1]}) for a {layer / MB:.1f} MB layer: "
      f"{'PASS' if peak[0] < layer else 'FAIL'} (a layer held in memory needs more than its "
      "size)")
    for wl in ("a", "b"):
        for key in ("change_same_mtime", "change_new_mtime"):
            if not all(r[wl][key]["detected"] for r in reps):
                p(f"  ({wl}) {key}: the change was NOT seen in every run (digest unchanged or "
                  "every step cached)")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kilnctl", default=os.path.join(REPO, "build/bin/kilnctl"))
    ap.add_argument("--work", default="/var/tmp/kiln-e2e")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the raw results here (default WORK/results.json)")
    ap.add_argument("--clean", action="store_true",
                    help="remove the work directory at the end (it holds ~1 GB)")
    ap.add_argument("--report", help="print the tables of a results file and exit")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as f:
            print(report(json.load(f)))
        return 0
    if os.geteuid() != 0:
        print("e2e: run as root (kilnctl needs overlayfs and namespaces)", file=sys.stderr)
        return 1
    if args.clean and not args.json:
        print("e2e: --clean removes WORK: give --json a path outside it", file=sys.stderr)
        return 1
    res = Bench(args).run()
    path = args.json or os.path.join(os.path.abspath(args.work), "results.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(report(res))
    print(f"\nraw results: {path}")
    work = os.path.abspath(args.work)
    if args.clean and os.path.exists(os.path.join(work, MARKER)):
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
