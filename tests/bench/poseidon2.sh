#!/usr/bin/env bash
# Poseidon2 speed on one core: our permutation (codex-protocol, old HorizenLabs constants) vs taceo-poseidon2 from
# crates.io (new constants, so a speed reference only), measured in the same run; then block digests/s for ours.
# Usage: tests/bench/poseidon2.sh [seconds per measurement, default 2]
# POSEIDON2_NATIVE=1 adds a second run built with -C target-cpu=native and ark-ff's assembly (mulx/adx).
set -euo pipefail
cd "$(dirname "$0")/../../bench/poseidon2"
target="${POSEIDON2_BENCH_TARGET:-$HOME/.cache/codex-bench-poseidon2}"
seconds="${1:-2}"
pin() { if command -v taskset >/dev/null; then taskset -c 0 "$@"; else "$@"; fi; }

CARGO_TARGET_DIR="$target" cargo build --release --quiet
echo "== portable build (what the node ships) =="
pin "$target/release/poseidon2-bench" "$seconds"

if [[ "${POSEIDON2_NATIVE:-0}" == 1 ]]; then
    RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR="$target-native" cargo build --release --quiet --features asm
    echo "== -C target-cpu=native + ark-ff asm =="
    pin "$target-native/release/poseidon2-bench" "$seconds"
fi
