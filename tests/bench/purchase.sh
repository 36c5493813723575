#!/usr/bin/env bash
# Buying storage (issue 12): the time from POST /storage/request/{cid} to the request mined, for a SIZE_MIB
# (default 100) dataset, split into erasure coding, slot building and chain, as ratios to the ingest of the same
# file (POST /data, the baseline, same run). A local anvil (pinned, from contracts/setup.sh) with BLOCK_TIME
# (default 1) second blocks; the chain part is two transactions (token approval, requestStorage), each waiting
# for its block.
#
#   tests/bench/purchase.sh
#   SIZE_MIB=20 BLOCK_TIME=2 tests/bench/purchase.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}"
SIZE_MIB="${SIZE_MIB:-100}"
BLOCK_TIME="${BLOCK_TIME:-1}"
WORK="${BENCH_DIR:-$HOME/.cache/codex-bench-purchase}"
PORT="${PORT:-18190}"
ANVIL_PORT="${ANVIL_PORT:-18191}"
API="http://127.0.0.1:$PORT/api/codex/v1"
cargo build --release --quiet --bin codex
BIN="$CARGO_TARGET_DIR/release/codex"
ANVIL=$(contracts/setup.sh)
rm -rf "$WORK" && mkdir -p "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null; rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }

"$ANVIL" --port "$ANVIL_PORT" --block-time "$BLOCK_TIME" --accounts 3 --config-out "$WORK/anvil.json" > "$WORK/anvil.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/anvil.json" ] && break; sleep 0.1; done
key() { node -e "const c=require('$WORK/anvil.json'); process.stdout.write(c.private_keys[$1])"; }
addr() { node -e "const c=require('$WORK/anvil.json'); process.stdout.write(c.available_accounts[$1])"; }
(umask 077; key 0 > "$WORK/deployer.key"; key 1 > "$WORK/client.key")
"$BIN" prover setup --circuit-dir "$WORK/circuits" --proof-samples 1 > /dev/null 2>&1
MARKET=$("$BIN" contracts deploy --eth-provider "http://127.0.0.1:$ANVIL_PORT" --eth-private-key "$WORK/deployer.key" \
  --circuit-dir "$WORK/circuits" --fund "$(addr 1)" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).marketplace))')

"$BIN" --data-dir "$WORK/node" --api-port "$PORT" --storage-quota "$(( SIZE_MIB * 4 / 1024 + 2 ))GiB" --log-format json \
  persistence --eth-provider "ws://127.0.0.1:$ANVIL_PORT" --eth-private-key "$WORK/client.key" \
  --marketplace-address "$MARKET" prover --circuit-dir "$WORK/circuits" > "$WORK/node.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do curl -sf "$API/space" > /dev/null && break; sleep 0.1; done

head -c "$(( SIZE_MIB * 1024 * 1024 ))" < <(openssl enc -aes-128-ctr -pass "pass:$RANDOM$RANDOM" -nosalt -pbkdf2 < /dev/zero 2>/dev/null) > "$WORK/F"
echo "== ${SIZE_MIB} MiB: ingest (baseline), then POST /storage/request (3 + 1 nodes, ${BLOCK_TIME} s blocks) =="
t0=$(now); CID=$(curl -sf -X POST -T "$WORK/F" "$API/data"); t1=$(now)
BODY='{"duration": 3600, "pricePerBytePerSecond": "1", "proofProbability": "1", "nodes": 4, "tolerance": 1, "collateralPerByte": "1", "expiry": 600}'
t2=$(now); ID=$(curl -sf -X POST -d "$BODY" "$API/storage/request/$CID"); t3=$(now)
state=$(curl -sf "$API/storage/purchases/$ID" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).state))')
python3 - "$t0" "$t1" "$t2" "$t3" "$state" "$WORK/node.log" <<'PY'
import json, sys
t0, t1, t2, t3 = map(float, sys.argv[1:5])
lines = [json.loads(l) for l in open(sys.argv[6]) if l.startswith("{")]
def last(message):
    return [l["fields"] for l in lines if l.get("fields", {}).get("message") == message][-1]
p, r = last("dataset protected"), last("storage requested")
ingest, total = t1 - t0, t3 - t2
parts = [("erasure coding", (p["link_ms"] + p["encode_ms"]) / 1000), ("encoded tree", p["tree_ms"] / 1000),
         ("slot building", p["slots_ms"] / 1000), ("chain (approve + requestStorage mined)", r["chain_ms"] / 1000)]
print(f"ingest (POST /data, baseline)     : {ingest:.2f} s")
print(f"POST /storage/request → mined      : {total:.2f} s = {total / ingest:.2f}x ingest (purchase state: {sys.argv[5]})")
for name, secs in parts:
    print(f"  {name:<38}: {secs:6.2f} s = {secs / ingest:.2f}x ingest")
print(f"  rest (store commit, REST)          : {total - sum(s for _, s in parts):6.2f} s")
PY
