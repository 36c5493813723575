#!/usr/bin/env bash
# The marketplace soak (issue 22): a client, a validator and HOSTS hosts (default 4) on anvil with 1-second blocks
# and SOAK_PERIOD-second proof periods (default 90, longer than any cut); the hosts reach the chain through a fault proxy. For SOAK_MINUTES (default 60) the client
# buys storage for a fresh 1–4 MiB file every REQUEST_EVERY seconds (default 40) and every FAULT_EVERY seconds
# (default 60) one fault is injected at random (a host killed and restarted, a host stopped and restarted, the
# hosts' endpoint cut for 15–MAX_CUT s, default 40). Once every request has ended it prints: requests and how they ended, fills,
# proofs submitted, proofs marked missing, slots lost (forced frees), token drift (goal 0, asserted) and peak RSS
# per node. The schedule is reproducible with SOAK_SEED.
#
#   tests/bench/market_soak.sh
#   SOAK_MINUTES=10 HOSTS=3 tests/bench/market_soak.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}"
export SOAK_MINUTES="${SOAK_MINUTES:-60}"
cargo test --test market_soak -- --ignored --nocapture --test-threads 1
