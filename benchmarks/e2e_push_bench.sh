#!/usr/bin/env bash
# End-to-end push: `kilnctl build ... --output type=image,...,push=true` of a LAYERS-layer image
# (LAYER_MB MB of random data per layer, default 10 x 50 MB) next to `skopeo copy` of the same
# image from an OCI layout, in one run, each into a fresh docker-registry on loopback.
#
#   kiln-cold    fresh state: build (COPY of each file), diff + gzip every layer, push
#   kiln-cached  same state, another fresh registry: every step cached, layer blobs reused,
#                so this is the push path (engine start, export, upload) alone
#   skopeo       `skopeo copy oci:LAYOUT docker://...` of the image kilnctl exported as an OCI
#                layout (the very same blobs)
# Registry storage, contexts and state live in WORK_PARENT (default /dev/shm) so the disk does
# not set the pace.  Needs root (kilnctl's engine).
#
#   benchmarks/e2e_push_bench.sh [BUILD_DIR]        (BUILD_DIR default: build)
#   LAYERS=10 LAYER_MB=50 RUNS=3 benchmarks/e2e_push_bench.sh build-rege2e
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
KILNCTL=$BUILD/bin/kilnctl
[[ -x $KILNCTL ]] || { echo "missing $KILNCTL (ninja -C $BUILD kilnctl)" >&2; exit 1; }
KILNCTL=$(realpath "$KILNCTL")
LAYERS=${LAYERS:-10}
LAYER_MB=${LAYER_MB:-50}
RUNS=${RUNS:-1}
PY=/usr/bin/python3
WORK=$(mktemp -d "${WORK_PARENT:-/dev/shm}/kiln-e2e-push-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
export DOCKER_CONFIG=$WORK/docker-config  # no credentials leak in from the host
mkdir -p "$DOCKER_CONFIG"

now() { date +%s.%N; }
secs() { $PY -c "import sys; t0,t1=map(float,sys.argv[1:]); print(f'{t1-t0:.2f}')" "$@"; }
mbps() { $PY -c "import sys; b,t0,t1=map(float,sys.argv[1:]); print(f'{b/(t1-t0)/1e6:.1f}')" "$@"; }
RESULTS=$WORK/results.txt

# --- the image: FROM scratch plus one COPY per random file --------------------------------------
CTX=$WORK/context
mkdir -p "$CTX"
{
  echo "FROM scratch"
  for i in $(seq "$LAYERS"); do echo "COPY f$i /f$i"; done
} > "$CTX/Dockerfile"
for i in $(seq "$LAYERS"); do head -c "$((LAYER_MB << 20))" /dev/urandom > "$CTX/f$i"; done

source benchmarks/registry_lib.sh  # the cd above made the repository the working directory

build() {  # state output [metadata]
  "$KILNCTL" --root "$1" build --frontend dockerfile.v0 --local "context=$CTX" \
    --local "dockerfile=$CTX" --progress quiet --output "$2" ${3:+--metadata-file "$3"} 2>/dev/null
}
digest_of() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['containerimage.digest'])" "$1"; }

echo "image: $LAYERS layers x $LAYER_MB MB random data; $(nproc) cores; kilnctl $KILNCTL"
for run in $(seq "$RUNS"); do
  STATE=$WORK/state$run
  start_registry "cold$run"; H_COLD=$REG_HOST
  start_registry "cached$run"; H_CACHED=$REG_HOST
  start_registry "skopeo$run"; H_SKOPEO=$REG_HOST

  t0=$(now)
  build "$STATE" "type=image,name=$H_COLD/bench:1,push=true,oci-mediatypes=true" "$WORK/meta-cold$run.json"
  t1=$(now)
  echo "run $run kiln-cold    $(secs "$t0" "$t1") s  (build + diff/gzip + push)"
  echo "kiln-cold $t0 $t1" >> "$RESULTS"
  DIGEST=$(digest_of "$WORK/meta-cold$run.json")

  t0=$(now)
  build "$STATE" "type=image,name=$H_CACHED/bench:1,push=true,oci-mediatypes=true" "$WORK/meta-cached$run.json"
  t1=$(now)
  [[ $(digest_of "$WORK/meta-cached$run.json") == "$DIGEST" ]] || { echo "digest changed" >&2; exit 1; }

  # The same image as an OCI layout (cached build; blobs copied out of the content store).
  build "$STATE" "type=oci,tar=false,dest=$WORK/layout$run,name=bench"
  SIZE=$($PY - "$WORK/layout$run" "$DIGEST" <<'EOF'
import json, sys
layout, digest = sys.argv[1], sys.argv[2]
m = json.load(open(f"{layout}/blobs/sha256/{digest.split(':')[1]}"))
print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))
EOF
)
  echo "run $run kiln-cached  $(secs "$t0" "$t1") s  $(mbps "$SIZE" "$t0" "$t1") MB/s  (push of $SIZE bytes)"
  echo "kiln-cached $t0 $t1 $SIZE" >> "$RESULTS"

  # The layout's name for it, whatever form the exporter wrote (a tag or a full reference).
  REF_NAME=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['manifests'][0]['annotations']['org.opencontainers.image.ref.name'])" "$WORK/layout$run/index.json")
  t0=$(now)
  skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$WORK/layout$run:$REF_NAME" \
    "docker://$H_SKOPEO/bench:1" >/dev/null
  t1=$(now)
  echo "run $run skopeo       $(secs "$t0" "$t1") s  $(mbps "$SIZE" "$t0" "$t1") MB/s"
  echo "skopeo $t0 $t1 $SIZE" >> "$RESULTS"
  got=$(skopeo inspect --tls-verify=false "docker://$H_SKOPEO/bench:1" | $PY -c "import json,sys; print(json.load(sys.stdin)['Digest'])")
  [[ $got == "$DIGEST" ]] || { echo "skopeo pushed $got, kilnctl $DIGEST" >&2; exit 1; }
  rm -rf "$STATE" "$WORK/layout$run" "$WORK"/*"$run"-data
done

$PY - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for tool in ("kiln-cold", "kiln-cached", "skopeo"):
    ts = [float(r[2]) - float(r[1]) for r in rows if r[0] == tool]
    med[tool] = statistics.median(ts)
    print(f"median {tool:12s} {med[tool]:6.2f} s  (runs: {len(ts)})")
print(f"push path: kilnctl (cached build) takes {med['kiln-cached'] / med['skopeo']:.2f}x "
      f"skopeo's time")
EOF
