#!/usr/bin/python3
"""Prints a build's timeline from its `kilnctl build --progress rawjson` stderr: every vertex and
status start/end, relative to the first event, so gaps (work outside any reported step) show.

  /usr/bin/python3 benchmarks/e2e/timeline.py WORK/progress-b-cold.jsonl
"""
import calendar
import json
import sys
import time


def seconds(s):
    base, _, frac = s.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def main(path):
    events, seen = [], set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                print(line.rstrip())
                continue
            ev = json.loads(line)
            for v in ev.get("vertexes", []):
                for k in ("started", "completed"):
                    if k in v:
                        events.append((seconds(v[k]), k, v["name"][:70],
                                       "(cached)" if v.get("cached") else ""))
            for s in ev.get("statuses", []):
                for k in ("started", "completed"):
                    if k in s:
                        events.append((seconds(s[k]), "  status " + k, s["id"][:70], ""))
    events.sort()
    if not events:
        return 0
    t0 = events[0][0]
    for e in events:
        if e[1:] in seen:
            continue
        seen.add(e[1:])
        print(f"{e[0] - t0:8.3f}  {e[1]:<18} {e[2]} {e[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
