#!/usr/bin/env bash
# Storage-proof figures (issue 11) for several sample counts, one process each (peak RSS is per count):
# constraints, Groth16 setup time, proving-key size and load time, witness time (built and checked natively),
# proving time on all cores, verification time; and the gas of an on-chain verification (Groth16Verifier on anvil).
#
#   tests/bench/proofs.sh            # 5, 20 and 100 samples
#   SAMPLES="5 20" tests/bench/proofs.sh
#
# Reference (marketplace-facts §8.8): the original's circom circuit proves 10 samples in 4.4 s, 50 in 19.8 s and
# 100 in 41 s with arkworks on an M2 laptop (plus 6-66 s of key loading). Goals: 5 samples <= 3 s, 100 <= 30 s on
# 2 cores, key loading <= 2 s for 5 samples.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}"
cargo build --release --quiet -p codex-protocol --features proofs --example proof_bench
echo "cores: $(nproc)"
for samples in ${SAMPLES:-5 20 100}; do
  "$CARGO_TARGET_DIR/release/examples/proof_bench" "$samples"
done
# On-chain verification gas: the Solidity verifier on anvil against a proof made in Rust (actors/tests/verifier.rs).
cargo test --quiet -p codex-actors --test verifier -- --nocapture 2>/dev/null | grep 'verify gas'
