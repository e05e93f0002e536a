#!/usr/bin/env bash
# Push and pull throughput of kiln::registry next to two baselines, in one run, on one image:
#   raw    curl pushing the same blobs one after another (POST, then a streamed PUT ?digest=)
#          and pulling them one after another (GET);
#   skopeo `skopeo copy oci:LAYOUT docker://…` (and back to an oci: dir for the pull);
#   kiln   registry_bench push / pull (Registry::PushImage / Resolve + PullBlob).
# The image has LAYERS layers of LAYER_MB MB of random data each (gzip streams of random bytes,
# so nothing recompresses them), default 10 x 50 MB.  Every tool pushes to its own fresh
# docker-registry on loopback, so no tool finds blobs another one pushed; registry storage and
# the image live in WORK_PARENT (default /dev/shm) so the disk does not set the pace.
#
#   benchmarks/registry_push_bench.sh [BUILD_DIR]        (BUILD_DIR default: build)
#   LAYERS=10 LAYER_MB=50 RUNS=1 benchmarks/registry_push_bench.sh build-reg
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
BENCH=$BUILD/registry/registry_bench
[[ -x $BENCH ]] || { echo "missing $BENCH (ninja -C $BUILD registry_bench)" >&2; exit 1; }
LAYERS=${LAYERS:-10}
LAYER_MB=${LAYER_MB:-50}
RUNS=${RUNS:-1}
PY=/usr/bin/python3
WORK=$(mktemp -d "${WORK_PARENT:-/dev/shm}/kiln-registry-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
RESULTS=$WORK/results.txt
record() { echo "$1 $2 $3 $4" >> "$RESULTS"; }  # phase tool t0 t1
mbps() { $PY -c "import sys; b,t0,t1=map(float,sys.argv[1:]); print(f'{b/(t1-t0)/1e6:.1f}')" "$@"; }
secs() { $PY -c "import sys; t0,t1=map(float,sys.argv[1:]); print(f'{t1-t0:.2f}')" "$@"; }

# --- the image: an OCI layout -------------------------------------------------------------------
LAYOUT=$WORK/layout
$PY - "$LAYOUT" "$LAYERS" "$LAYER_MB" <<'EOF'
import hashlib, json, os, sys, zlib
layout, layers, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{layout}/blobs/sha256")
def put(data_or_path, media_type):
    if isinstance(data_or_path, bytes):
        d = hashlib.sha256(data_or_path).hexdigest()
        with open(f"{layout}/blobs/sha256/{d}", "wb") as f: f.write(data_or_path)
        return {"mediaType": media_type, "digest": "sha256:" + d, "size": len(data_or_path)}
    raise TypeError
descs, diffs = [], []
for i in range(layers):
    tmp = f"{layout}/layer.tmp"
    raw, comp = hashlib.sha256(), hashlib.sha256()
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    size = 0
    with open(tmp, "wb") as f:
        for _ in range(mb):
            chunk = os.urandom(1 << 20)
            raw.update(chunk)
            out = z.compress(chunk)
            comp.update(out); f.write(out); size += len(out)
        out = z.flush()
        comp.update(out); f.write(out); size += len(out)
    os.rename(tmp, f"{layout}/blobs/sha256/{comp.hexdigest()}")
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": "sha256:" + comp.hexdigest(), "size": size})
    diffs.append("sha256:" + raw.hexdigest())
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
cdesc = put(config, "application/vnd.oci.image.config.v1+json")
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": cdesc, "layers": descs}).encode()
mdesc = put(manifest, "application/vnd.oci.image.manifest.v1+json")
mdesc["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
with open(f"{layout}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
with open(f"{layout}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
EOF
MANIFEST_DIGEST=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['manifests'][0]['digest'])" "$LAYOUT/index.json")
MANIFEST_FILE=$LAYOUT/blobs/sha256/${MANIFEST_DIGEST#sha256:}
BLOBS=()
while read -r d; do BLOBS+=("$d"); done < <($PY -c "
import json,sys; m=json.load(open(sys.argv[1]))
print(m['config']['digest'])
for l in m['layers']: print(l['digest'])" "$MANIFEST_FILE")
TOTAL=$($PY -c "
import json,sys; m=json.load(open(sys.argv[1]))
print(m['config']['size'] + sum(l['size'] for l in m['layers']))" "$MANIFEST_FILE")
LAYER_BYTES=$($PY -c "
import json,sys; m=json.load(open(sys.argv[1])); print(sum(l['size'] for l in m['layers']))" "$MANIFEST_FILE")

# --- registries ---------------------------------------------------------------------------------
source benchmarks/registry_lib.sh  # the cd above made the repository the working directory

raw_push() {  # host
  local host=$1 d loc
  for d in "${BLOBS[@]}"; do
    loc=$(curl -fsS -i -X POST "http://$host/v2/raw/blobs/uploads/" | tr -d '\r' |
          awk 'tolower($1)=="location:"{print $2}')
    curl -fsS -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' \
      -T "$LAYOUT/blobs/sha256/${d#sha256:}" "$loc&digest=$d"
  done
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$MANIFEST_FILE" "http://$host/v2/raw/manifests/1"
}

raw_pull() {  # host outdir
  local host=$1 out=$2 d
  mkdir -p "$out"
  for d in "${BLOBS[@]:1}"; do
    curl -fsS -o "$out/${d#sha256:}" "http://$host/v2/raw/blobs/$d"
  done
}

echo "image: $LAYERS layers x $LAYER_MB MB random data, $TOTAL bytes in blobs; $(nproc) cores"
for run in $(seq "$RUNS"); do
  start_registry raw$run
  HOST_RAW=$REG_HOST
  start_registry skopeo$run
  HOST_SKOPEO=$REG_HOST
  start_registry kiln$run
  HOST_KILN=$REG_HOST

  t0=$(now); raw_push "$HOST_RAW"; t1=$(now)
  echo "run $run push raw-curl  $(secs "$t0" "$t1") s  $(mbps "$TOTAL" "$t0" "$t1") MB/s"
  record push raw-curl "$t0" "$t1"
  raw_push_t=("$t0" "$t1")

  t0=$(now)
  skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$LAYOUT:bench" \
    "docker://$HOST_SKOPEO/skopeo:1" >/dev/null
  t1=$(now)
  echo "run $run push skopeo    $(secs "$t0" "$t1") s  $(mbps "$TOTAL" "$t0" "$t1") MB/s"
  record push skopeo "$t0" "$t1"

  t0=$(now)
  out=$("$BENCH" push --layout "$LAYOUT" --target "$HOST_KILN/kiln:1")
  t1=$(now)
  echo "run $run push kiln      $(secs "$t0" "$t1") s  $(mbps "$TOTAL" "$t0" "$t1") MB/s   [$out]"
  [[ $out == *"digest=$MANIFEST_DIGEST"* ]] || { echo "kiln pushed a different manifest" >&2; exit 1; }
  record push kiln "$t0" "$t1"

  t0=$(now); raw_pull "$HOST_RAW" "$WORK/pull-raw$run"; t1=$(now)
  echo "run $run pull raw-curl  $(secs "$t0" "$t1") s  $(mbps "$LAYER_BYTES" "$t0" "$t1") MB/s"
  record pull raw-curl "$t0" "$t1"

  t0=$(now)
  skopeo copy -q --insecure-policy --src-tls-verify=false "docker://$HOST_SKOPEO/skopeo:1" \
    "oci:$WORK/pull-skopeo$run:1" >/dev/null
  t1=$(now)
  echo "run $run pull skopeo    $(secs "$t0" "$t1") s  $(mbps "$LAYER_BYTES" "$t0" "$t1") MB/s"
  record pull skopeo "$t0" "$t1"

  t0=$(now)
  out=$("$BENCH" pull --ref "$HOST_KILN/kiln:1" --out "$WORK/pull-kiln$run")
  t1=$(now)
  echo "run $run pull kiln      $(secs "$t0" "$t1") s  $(mbps "$LAYER_BYTES" "$t0" "$t1") MB/s   [$out]"
  record pull kiln "$t0" "$t1"
  rm -rf "$WORK"/pull-*"$run" "$WORK"/*"$run"-data
done

# --- summary: medians over the runs (the machine is shared, so single runs are noisy) ---------
$PY - "$RESULTS" "$TOTAL" "$LAYER_BYTES" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size = {"push": int(sys.argv[2]), "pull": int(sys.argv[3])}
med = {}
for phase in ("push", "pull"):
    for tool in ("raw-curl", "skopeo", "kiln"):
        ts = [float(t1) - float(t0) for p, t, t0, t1 in rows if p == phase and t == tool]
        med[phase, tool] = statistics.median(ts)
        print(f"median {phase} {tool:9s} {med[phase, tool]:6.2f} s  "
              f"{size[phase] / med[phase, tool] / 1e6:7.1f} MB/s  (runs: {len(ts)})")
for phase in ("push", "pull"):
    k = med[phase, "kiln"]
    print(f"{phase}: kiln is {med[phase, 'skopeo'] / k:.2f}x skopeo's speed, "
          f"{med[phase, 'raw-curl'] / k:.2f}x raw curl's")
EOF
