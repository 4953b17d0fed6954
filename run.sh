#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run.sh -- one entry point for a fresh Debian 12 machine:
#   ./run.sh demo    install dependencies, build, start quarryd with a demo
#                    collection and use it from the CLI and the Python client
#                    (scripts/demo-local.sh is the serverless demo)
#   ./run.sh test    install dependencies, build, run the whole test suite, then
#                    the quick tier again under AddressSanitizer + UBSan
#   ./run.sh build   install dependencies and build only (build/)
#   ./run.sh deps    install the Debian packages only
# Environment: JOBS (parallel jobs, default nproc), BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")"

JOBS=${JOBS:-$(nproc)}
BUILD_DIR=${BUILD_DIR:-build}

# Build and test dependencies (Debian 12 package names).
PACKAGES=(build-essential cmake pkg-config liburing-dev libxxhash-dev libsimde-dev
          libjansson-dev libutf8proc-dev libstemmer-dev libroaring-dev python3 python3-numpy
          libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
          protobuf-compiler-grpc grpc-proto python3-grpcio python3-protobuf openssl)
# Peers and plotting for the benchmarks in bench/ (not needed to build or test).
BENCH_PACKAGES=(python3-faiss python3-hnswlib python3-matplotlib hyperfine)

install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "== installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

build() {
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

case "${1:-}" in
deps)
    install_packages "${PACKAGES[@]}"
    ;;
build)
    install_packages "${PACKAGES[@]}"
    build "$BUILD_DIR"
    ;;
demo)
    install_packages "${PACKAGES[@]}"
    build "$BUILD_DIR"
    exec scripts/demo.sh "$BUILD_DIR"
    ;;
test)
    install_packages "${PACKAGES[@]}"
    build "$BUILD_DIR" -DQUARRY_WERROR=ON
    echo "== full test suite"
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" -LE bench
    echo "== quick tier under AddressSanitizer + UndefinedBehaviorSanitizer"
    cmake -S . -B "$BUILD_DIR-asan" -DCMAKE_BUILD_TYPE=Debug -DQUARRY_ASAN=ON \
        -DQUARRY_UBSAN=ON -DQUARRY_BUILD_BENCH=OFF >/dev/null
    cmake --build "$BUILD_DIR-asan" -j "$JOBS"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir "$BUILD_DIR-asan" --output-on-failure -j "$JOBS" -L quick
    ;;
bench-deps)
    install_packages "${PACKAGES[@]}" "${BENCH_PACKAGES[@]}"
    ;;
*)
    sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
    ;;
esac
