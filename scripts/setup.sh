#!/usr/bin/env bash
# Installs every Debian package Kiln needs to build, test and benchmark, then configures and
# builds the tree in ./build with both cores.  Safe to run again: apt and ninja skip what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # toolchain
  g++ clang cmake ninja-build pkg-config git ca-certificates
  # libraries
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libabsl-dev
  libssl-dev libcurl4-openssl-dev libarchive-dev libzstd-dev libdeflate-dev libisal-dev libseccomp-dev
  libleveldb-dev libsnappy-dev libxxhash-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libclang-rt-14-dev
  # real parts the tests and benchmarks drive
  busybox-static umoci skopeo podman docker-registry apache2-utils python3 python3-jwt
  python3-cryptography curl zstd gzip tar iproute2 util-linux procps openssl e2fsprogs
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${KILN_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD_DIR" -j "$(nproc)"
