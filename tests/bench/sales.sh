#!/usr/bin/env bash
# Selling storage (issue 13), release build, a local anvil (1-second blocks), a client and one host:
#
# 1. StorageRequested → SlotFilled for one slot of a SIZE_MIB (default 100) dataset (2 + 1 slots), split into
#    queue and reservation, download + slot check (slot tree rebuilt and compared), waiting for a period with a
#    stable challenge, the proof (SAMPLES, default 5), and the fill on chain; as ratios to the ingest of the same
#    file on the client (POST /data, the baseline, same run). The wait for the contract's reservation window
#    (up to half the request's EXPIRY, default 120 s, depending on how many bits the host's address shares with
#    the window's) is shown apart.
# 2. Slots processed per minute by the host with REQUESTS (default 8) small (1 MiB) requests queued at once
#    (one slot per request per host; 3 workers), from the first request to the last fill (window waits
#    included) and from the first sale's start to the last fill.
# 3. Memory per active SalesAgent: the host's resident memory with those REQUESTS sales filled and proving,
#    minus before them, divided by REQUESTS (an upper bound: it includes the allocator's growth).
#
#   tests/bench/sales.sh
#   SIZE_MIB=20 REQUESTS=6 tests/bench/sales.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}"
SIZE_MIB="${SIZE_MIB:-100}"
REQUESTS="${REQUESTS:-8}"
SAMPLES="${SAMPLES:-5}"
PERIOD="${PERIOD:-30}"
# Request expiry (s): the contract's window admits every host after half of it.
EXPIRY="${EXPIRY:-120}"
WORK="${BENCH_DIR:-$HOME/.cache/codex-bench-sales}"
CPORT="${PORT:-18290}"
HPORT=$((CPORT + 1))
ANVIL_PORT=$((CPORT + 2))
CAPI="http://127.0.0.1:$CPORT/api/codex/v1"
HAPI="http://127.0.0.1:$HPORT/api/codex/v1"
cargo build --release --quiet --bin codex
BIN="$CARGO_TARGET_DIR/release/codex"
ANVIL=$(contracts/setup.sh)
rm -rf "$WORK" && mkdir -p "$WORK"
PIDS=()
cleanup() {
  status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
  if [ "$status" -ne 0 ]; then
    echo "failed (exit $status); the nodes' last log lines:" >&2
    for log in "$WORK"/*.log; do echo "--- $log" >&2; tail -5 "$log" >&2; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const v=JSON.parse(s);process.stdout.write(String($1))})"; }

"$ANVIL" --port "$ANVIL_PORT" --block-time 1 --accounts 3 --config-out "$WORK/anvil.json" > "$WORK/anvil.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/anvil.json" ] && break; sleep 0.1; done
key() { node -e "const c=require('$WORK/anvil.json'); process.stdout.write(c.private_keys[$1])"; }
addr() { node -e "const c=require('$WORK/anvil.json'); process.stdout.write(c.available_accounts[$1])"; }
(umask 077; key 0 > "$WORK/deployer.key"; key 1 > "$WORK/client.key"; key 2 > "$WORK/host.key")
"$BIN" prover setup --circuit-dir "$WORK/circuits" --proof-samples "$SAMPLES" > /dev/null 2>&1
MARKET=$("$BIN" contracts deploy --eth-provider "http://127.0.0.1:$ANVIL_PORT" --eth-private-key "$WORK/deployer.key" \
  --circuit-dir "$WORK/circuits" --period "$PERIOD" --timeout 5 --downtime 16 --fund "$(addr 1)" --fund "$(addr 2)" \
  2>/dev/null | json v.marketplace)

start() { # name port account-key p2p-port [bootstrap]
  local boot=()
  [ -n "${5:-}" ] && boot=(--bootstrap-node "$5")
  "$BIN" --data-dir "$WORK/$1" --api-port "$2" --listen-addrs "/ip4/127.0.0.1/tcp/$4" --nat none \
    --storage-quota "$(( SIZE_MIB * 4 / 1024 + 4 ))GiB" --log-format json --circuit-dir "$WORK/circuits" "${boot[@]}" \
    persistence --eth-provider "ws://127.0.0.1:$ANVIL_PORT" --eth-private-key "$WORK/$3" \
    --marketplace-address "$MARKET" > "$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$2/api/codex/v1/space" > /dev/null && break; sleep 0.1; done
}
start client "$CPORT" client.key $((CPORT + 3))
SPR=$(curl -sf "$CAPI/spr" | json v.spr)
start host "$HPORT" host.key $((CPORT + 4)) "$SPR"
HOST_PID=${PIDS[-1]}
curl -sf -X POST -d "{\"totalSize\": $(( SIZE_MIB * 3 * 1024 * 1024 )), \"duration\": 36000, \"minPricePerBytePerSecond\": \"1\", \"totalCollateral\": \"1000000000000000\"}" \
  "$HAPI/sales/availability" > /dev/null
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$HOST_PID/status"; }
fills() { grep -c '"to":"SaleFilled"' "$WORK/host.log" || true; }
buy() { # cid expiry → request id
  curl -sf -X POST -d "{\"duration\": 3600, \"pricePerBytePerSecond\": \"1\", \"proofProbability\": \"1\", \"nodes\": 3, \"tolerance\": 1, \"collateralPerByte\": \"1\", \"expiry\": $2}" \
    "$CAPI/storage/request/$1"
}

head -c "$(( SIZE_MIB * 1024 * 1024 ))" < <(openssl enc -aes-128-ctr -pass "pass:$RANDOM$RANDOM" -nosalt -pbkdf2 < /dev/zero 2>/dev/null) > "$WORK/F"
echo "== 1. ${SIZE_MIB} MiB, 2 + 1 slots, ${SAMPLES}-sample proofs, ${PERIOD} s periods =="
t0=$(now); CID=$(curl -sf -X POST -T "$WORK/F" "$CAPI/data"); t1=$(now)
ID=$(buy "$CID" "$EXPIRY")
for _ in $(seq 600); do [ "$(fills)" -ge 1 ] && break; sleep 1; done
python3 - "$t0" "$t1" "$WORK/host.log" "$WORK/client.log" <<'PY'
import json, sys
from datetime import datetime
t0, t1 = map(float, sys.argv[1:3])
def records(path):
    return [json.loads(l) for l in open(path) if l.startswith("{")]
def ts(r):
    return datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
host, client = records(sys.argv[3]), records(sys.argv[4])
requested = ts([r for r in client if r["fields"].get("message") == "storage requested"][0])
def at(to):
    return ts([r for r in host if r["fields"].get("message") == "sale state" and r["fields"].get("to") == to][0])
started = ts([r for r in host if r["fields"].get("message") == "sale started"][0])
downloading, proving, filling, filled = at("SaleDownloading"), at("SaleInitialProving"), at("SaleFilling"), at("SaleFilled")
proof = [r["fields"]["ms"] for r in host if r["fields"].get("message") == "slot proven"][0] / 1000
ingest, total = t1 - t0, filled - requested
parts = [("reservation window (protocol wait)", started - requested),
         ("queue, reservation on chain", downloading - started),
         ("download + slot check", proving - downloading),
         ("waiting for a stable challenge", filling - proving - proof),
         ("proof", proof),
         ("fill on chain", filled - filling)]
print(f"ingest (POST /data, baseline)        : {ingest:.2f} s")
print(f"StorageRequested → SlotFilled         : {total:.2f} s = {total / ingest:.2f}x ingest")
own = total - (started - requested)
print(f"  without the window wait             : {own:.2f} s = {own / ingest:.2f}x ingest")
for name, secs in parts:
    print(f"  {name:<36}: {secs:6.2f} s = {secs / ingest:.2f}x ingest")
PY

echo "== 2. ${REQUESTS} small requests queued at once =="
for i in $(seq "$REQUESTS"); do
  head -c 1048576 < <(openssl enc -aes-128-ctr -pass "pass:$i$RANDOM" -nosalt -pbkdf2 < /dev/zero 2>/dev/null) > "$WORK/s$i"
  SMALL[$i]=$(curl -sf -X POST -T "$WORK/s$i" "$CAPI/data")
done
before_rss=$(rss); before_fills=$(fills)
t2=$(now)
for i in $(seq "$REQUESTS"); do buy "${SMALL[$i]}" "$EXPIRY" > /dev/null; done
for _ in $(seq 400); do [ "$(( $(fills) - before_fills ))" -ge "$REQUESTS" ] && break; sleep 1; done
t3=$(now)
sleep 5
after_rss=$(rss)
done_fills=$(( $(fills) - before_fills ))
python3 - "$t2" "$t3" "$done_fills" "$REQUESTS" "$before_rss" "$after_rss" "$WORK/host.log" <<'PY'
import json, sys
from datetime import datetime
t2, t3 = map(float, sys.argv[1:3]); n, want, before, after = map(int, sys.argv[3:7])
records = [json.loads(l) for l in open(sys.argv[7]) if l.startswith("{")]
def ts(r):
    return datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
first = min(ts(r) for r in records if r["fields"].get("message") == "sale started" and ts(r) >= t2)
minutes = (t3 - t2) / 60
print(f"slots filled by the host             : {n} of {want} in {t3 - t2:.1f} s = {n / minutes:.1f} slots/min")
print(f"  from the first sale's start         : {t3 - first:.1f} s = {n / ((t3 - first) / 60):.1f} slots/min")
print(f"host RSS before / with {n} sales       : {before / 2**20:.1f} MiB / {after / 2**20:.1f} MiB")
print(f"memory per active SalesAgent (bound) : {(after - before) / max(n, 1) / 1024:.0f} KiB")
PY
