#!/usr/bin/env bash
# Runs the snapshotter benchmark and times the reference tools over the same uncompressed layer
# bytes, so export throughput can be read against the budget: layer export (tar + compression +
# both digests) within 1.5x of the slower of `zstd -1` alone or `sha256sum` alone.
#
#   benchmarks/export_baseline.sh [build dir]     (default: build)
set -euo pipefail
BUILD=${1:-build}
DIR=${KILN_BENCH_DIR:-/tmp/kiln-bench}
export KILN_BENCH_DIR=$DIR KILN_BENCH_KEEP_APPLY=1
"$BUILD/benchmarks/snapshotter_bench" --benchmark_repetitions=${REPS:-3} \
  --benchmark_report_aggregates_only=true "${@:2}"
TAR="$DIR/tree.tar"
BYTES=$(stat -c %s "$TAR")
cat "$TAR" >/dev/null  # page cache, like the benchmark's repeated runs
rate() {  # name, command...: best of 3 by wall time; also CPU-time throughput (user+sys)
  local name=$1; shift
  local best=999999 best_cpu=0 out
  for _ in 1 2 3; do
    out=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>&1; } 2>&1 | tail -1)
    read -r real user sys <<<"$out"
    if awk -v r="$real" -v b="$best" 'BEGIN { exit !(r < b) }'; then
      best=$real
      best_cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
    fi
  done
  awk -v n="$name" -v b="$best" -v c="$best_cpu" -v bytes="$BYTES" \
    'BEGIN { printf "%-30s %8.1f MB/s wall  %8.1f MB/s cpu  (%.3f s for %d MiB)\n", n, bytes / 1048576 / b, bytes / 1048576 / (c > 0 ? c : 1e-9), b, bytes / 1048576 }'
}
echo "baselines over $TAR:"
rate "sha256sum (coreutils)" sha256sum "$TAR"
rate "openssl dgst -sha256" openssl dgst -sha256 "$TAR"
rate "zstd -1 -T1" zstd -1 -T1 -q -c "$TAR"
rate "zstd -3 -T1" zstd -3 -T1 -q -c "$TAR"
rate "gzip -1" gzip -1 -c "$TAR"
# GNU tar skips reading file data when its output is /dev/null: pipe it.
rate "tar -c | cat (GNU)" sh -c "tar -C '$DIR/tree' -cf - . | cat"
# Apply baseline: GNU tar extracting the same uncompressed layer into fresh directories, all
# removed only at the end (see BM_Apply: deleting just before creating is slow on ext4).
mkdir -p "$DIR/x"
rate "tar -x (GNU)" sh -c "d=\$(mktemp -d '$DIR/x/XXXX') && tar -C \$d -xf '$TAR'"
rm -rf "$DIR/x" "$DIR/apply"
