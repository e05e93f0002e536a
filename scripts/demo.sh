#!/usr/bin/env bash
# The README's main job: install what is needed, build Kiln, then build examples/hello with
# kilnctl twice (a cold build and a no-change rebuild) and print the image digest and the
# cached/total steps of each.  The base image is busybox, made from Debian's busybox-static and
# imported into a state directory of its own (no registry is reachable here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

BUILD_DIR=${KILN_BUILD_DIR:-build}
KILNCTL="$BUILD_DIR/bin/kilnctl"
ROOT=${KILN_DEMO_ROOT:-/var/lib/kiln-demo}
OUT=${KILN_DEMO_OUT:-out}
mkdir -p "$OUT"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash scripts/busybox-rootfs.sh "$work/busybox"
"$KILNCTL" --root "$ROOT" image import --rootfs "$work/busybox" busybox:latest

build() {
  "$KILNCTL" --root "$ROOT" build --frontend dockerfile.v0 \
    --local context=examples/hello --local dockerfile=examples/hello \
    --output "type=oci,dest=$OUT/hello.tar,name=kiln-hello:latest" \
    --progress plain --metadata-file "$OUT/metadata.json"
}

echo "== cold build"
build
echo "== rebuild with no change"
build
echo "== result: $OUT/hello.tar (OCI image), metadata in $OUT/metadata.json"
