#!/usr/bin/env bash
# Poseidon2 speed: our permutation (codex-protocol) vs taceo-poseidon2 from crates.io, on one core, same run;
# then block digests/s for ours. Usage: tests/bench/poseidon2.sh [seconds per measurement, default 2]
set -euo pipefail
cd "$(dirname "$0")/../../bench/poseidon2"
export CARGO_TARGET_DIR="${POSEIDON2_BENCH_TARGET:-$HOME/.cache/codex-bench-poseidon2}"
cargo build --release --quiet
# One core: pin to CPU 0 when taskset exists.
bin="$CARGO_TARGET_DIR/release/poseidon2-bench"
if command -v taskset >/dev/null; then exec taskset -c 0 "$bin" "${1:-2}"; else exec "$bin" "${1:-2}"; fi
