#!/usr/bin/env bash
# Durability benchmarks (issue #10). Figures are ratios to baselines measured in the same run.
#
#   tests/bench/durability.sh              # 1 GiB, both parts
#   SIZE_MIB=256 tests/bench/durability.sh # quicker
#   ONLY=protect|download tests/bench/durability.sh
#   KEEP=1 BENCH_DIR=/tmp/d tests/bench/durability.sh   # keep the nodes' logs
#
# - ingest: POST /data of a SIZE_MIB random file (the baseline);
# - protect (POST /data/{cid}/protect, 3 + 2): the node logs each phase; erasure encoding is compared with the
#   ingest time (goal <= 0.3x);
# - slot building (Poseidon2 over every encoded block): seconds, MB/s, and the ratio to the limit
#   "cores x one-core rate" where the one-core rate is the block-digest rate of tests/bench/poseidon2.sh's binary
#   measured in the same run (goal >= 0.9); peak RSS of the node (VmHWM).
# - download: five nodes host one slot each of the protected dataset; a fresh node streams the unprotected
#   original from the uploader (the baseline); the uploader stops; a fresh node streams the protected dataset with
#   no slot missing, then (two data-slot holders stopped) another fresh node streams it with M = 2 slots missing,
#   every missing block decoded: times, ratios to the baseline and to each other, bytes checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}"
SIZE_MIB="${SIZE_MIB:-1024}"
WORK="${BENCH_DIR:-$HOME/.cache/codex-bench-durability}"
PORT="${PORT:-18090}"
API="http://127.0.0.1:$PORT/api/codex/v1"
CORES=$(nproc)

ONLY="${ONLY:-all}"
cargo build --release --quiet --bin codex
BIN="$CARGO_TARGET_DIR/release/codex"
BENCH_TARGET="$HOME/.cache/codex-bench-poseidon2"
(cd bench/poseidon2 && CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release --quiet)
rm -rf "$WORK" && mkdir -p "$WORK"
NODE_PID=""
PIDS=()
cleanup() {
  [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
py() { python3 -c "$1"; }

random_file() { head -c "$(( SIZE_MIB * 1024 * 1024 ))" < <(openssl enc -aes-128-ctr -pass "pass:$RANDOM$RANDOM" -nosalt -pbkdf2 < /dev/zero 2>/dev/null) > "$1"; }

protect_part() {
echo "== one-core Poseidon2 rate (bench/poseidon2, same run) =="
"$BENCH_TARGET/release/poseidon2-bench" 2 | tee "$WORK/p2.txt"
digests_per_s=$(python3 - "$WORK/p2.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r'block digests/s[^:]*: ([0-9.]+) = ', text)
print(m.group(1) if m else "")
PY
)

random_file "$WORK/F"
"$BIN" --data-dir "$WORK/node" --api-port "$PORT" --storage-quota "$(( SIZE_MIB * 4 / 1024 + 2 ))GiB" --log-format json > "$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 200); do curl -sf "$API/space" >/dev/null && break; sleep 0.05; done

echo "== ${SIZE_MIB} MiB: ingest, then protect 3 + 2 =="
t0=$(now); CID=$(curl -sf -X POST -T "$WORK/F" "$API/data"); t1=$(now)
ingest=$(py "print(f'{$t1 - $t0:.3f}')")
t0=$(now); curl -sf -X POST -d '{"nodes": 5, "tolerance": 2}' "$API/data/$CID/protect" > "$WORK/protected.json"; t1=$(now)
protect=$(py "print(f'{$t1 - $t0:.3f}')")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$NODE_PID/status")
line=$(grep '"dataset protected"' "$WORK/node.log" | tail -1)
blocks=$(grep '"slots built"' "$WORK/node.log" | tail -1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["fields"]["blocks"])')
python3 - "$line" "$ingest" "$protect" "$blocks" "$CORES" "${digests_per_s:-0}" "$hwm_kb" <<'PY'
import json, sys
fields = json.loads(sys.argv[1])["fields"]
ingest, protect, blocks, cores, rate, hwm = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
enc = fields["encode_ms"] / 1000
slots = fields["slots_ms"] / 1000
print(f"ingest (POST /data)            : {ingest:.2f} s")
print(f"protect total (POST .../protect): {protect:.2f} s  (link {fields['link_ms']} ms, encode {fields['encode_ms']} ms, tree {fields['tree_ms']} ms, slots {fields['slots_ms']} ms)")
print(f"erasure encoding / ingest      : {enc / ingest:.2f}x  (goal <= 0.3x)")
mb = blocks * 65536 / 1e6
print(f"slot building                  : {slots:.1f} s for {blocks} encoded blocks = {mb / slots:.1f} MB/s")
if rate > 0:
    limit = cores * rate
    print(f"  vs limit {cores} cores x {rate:.0f} digests/s/core = {limit:.0f}/s: achieved {blocks / slots:.0f}/s = {blocks / slots / limit:.2f} of the limit  (goal >= 0.9)")
print(f"node peak RSS (VmHWM)          : {hwm // 1024} MiB")
PY
curl -sf "$API/space"; echo
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=""
rm -rf "$WORK/node" "$WORK/F"
}

# start_node NAME API_PORT P2P_PORT [SPR]
start_node() {
  local name=$1 port=$2 p2p=$3 spr=${4:-}
  local args=(--data-dir "$WORK/$name" --api-port "$port" --listen-addrs "/ip4/127.0.0.1/tcp/$p2p" --nat none
    --storage-quota "$(( SIZE_MIB * 3 / 1024 + 2 ))GiB" --log-format nocolors --log-level "${LOG_LEVEL:-info}")
  [ -n "$spr" ] && args+=(--bootstrap-node "$spr")
  "$BIN" "${args[@]}" > "$WORK/$name.log" 2>&1 &
  PIDS+=($!); echo $! > "$WORK/$name.pid"
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/api/codex/v1/space" > /dev/null && return; sleep 0.1; done
  echo "node $name did not start" >&2; exit 1
}
api_of() { echo "http://127.0.0.1:$1/api/codex/v1"; }
spr_of() { curl -sf -H 'Accept: text/plain' "$(api_of "$1")/spr"; }
# cpu_s NAME...: CPU seconds (user + system) the named running nodes have used so far.
cpu_s() {
  local total=0 name
  for name in "$@"; do
    [ -e "/proc/$(cat "$WORK/$name.pid")/stat" ] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$(cat "$WORK/$name.pid")/stat") ))
  done
  py "print(f'{$total / $(getconf CLK_TCK):.2f}')"
}
stop_named() { local pid; pid=$(cat "$WORK/$1.pid"); kill "$pid"; wait "$pid" 2>/dev/null || true; }

download_part() {
  echo "== ${SIZE_MIB} MiB protected (3 + 2) across 5 slot holders: download with 0 and with 2 slots missing =="
  random_file "$WORK/D"
  local want; want=$(sha256sum "$WORK/D" | cut -d' ' -f1)
  start_node up 18400 18500
  local cid protected spr
  cid=$(curl -sf -X POST -T "$WORK/D" "$(api_of 18400)/data")
  protected=$(curl -sf -X POST -d '{"nodes": 5, "tolerance": 2}' "$(api_of 18400)/data/$cid/protect" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cid"])')
  spr=$(spr_of 18400)
  for i in 0 1 2 3 4; do start_node "h$i" $((18401 + i)) $((18501 + i)) "$spr"; done
  local t0 t1; t0=$(now)
  local fetches=()
  for i in 0 1 2 3 4; do
    curl -sf -X POST "$(api_of $((18401 + i)))/data/$protected/slots/$i/network" > "$WORK/slot$i.json" &
    fetches+=($!)
  done
  for pid in "${fetches[@]}"; do wait "$pid" || { echo "a slot could not be hosted" >&2; exit 1; }; done
  t1=$(now)
  echo "5 nodes fetched and checked one slot each: $(py "print(f'{$t1 - $t0:.1f}')") s"
  # Same-run baseline: a plain (unprotected) download of the original from the uploader.
  start_node rp 18409 18509 "$spr"
  local c0 c1; c0=$(cpu_s up rp h0 h1 h2 h3 h4)
  t0=$(now); curl -sf -o "$WORK/outp" "$(api_of 18409)/data/$cid/network/stream"; t1=$(now)
  c1=$(cpu_s up rp h0 h1 h2 h3 h4)
  local plain; plain=$(py "print(f'{$t1 - $t0:.3f}')"); local plain_cpu; plain_cpu=$(py "print(f'{$c1 - $c0:.2f}')")
  [ "$(sha256sum "$WORK/outp" | cut -d' ' -f1)" = "$want" ] || { echo "bytes differ (plain)" >&2; exit 1; }
  rm -f "$WORK/outp"; stop_named rp
  stop_named up
  local spr1; spr1=$(spr_of 18402)
  start_node r0 18410 18510 "$spr1"
  c0=$(cpu_s r0 h0 h1 h2 h3 h4)
  t0=$(now); curl -sf -o "$WORK/out0" "$(api_of 18410)/data/$protected/network/stream"; t1=$(now)
  c1=$(cpu_s r0 h0 h1 h2 h3 h4)
  local none; none=$(py "print(f'{$t1 - $t0:.3f}')"); local none_cpu; none_cpu=$(py "print(f'{$c1 - $c0:.2f}')")
  [ "$(sha256sum "$WORK/out0" | cut -d' ' -f1)" = "$want" ] || { echo "bytes differ (none missing)" >&2; exit 1; }
  rm -f "$WORK/out0"
  stop_named h0; stop_named h2
  start_node r2 18412 18512 "$spr1"
  c0=$(cpu_s r0 r2 h1 h3 h4)
  t0=$(now); curl -sf -o "$WORK/out2" "$(api_of 18412)/data/$protected/network/stream"; t1=$(now)
  c1=$(cpu_s r0 r2 h1 h3 h4)
  local two; two=$(py "print(f'{$t1 - $t0:.3f}')"); local two_cpu; two_cpu=$(py "print(f'{$c1 - $c0:.2f}')")
  [ "$(sha256sum "$WORK/out2" | cut -d' ' -f1)" = "$want" ] || { echo "bytes differ (2 missing)" >&2; exit 1; }
  grep -h 'every erasure group decodable' "$WORK/r0.log" "$WORK/r2.log" | sed 's/^.*INFO/  reader:/' || true
  echo "plain download of the original (baseline, from the uploader): ${plain} s ($(py "print(f'{$SIZE_MIB / $plain:.0f}')") MiB/s), nodes' CPU ${plain_cpu} s"
  echo "stream, no slot missing        : ${none} s ($(py "print(f'{$SIZE_MIB / $none:.0f}')") MiB/s) = $(py "print(f'{$none / $plain:.2f}')")x the baseline, nodes' CPU ${none_cpu} s"
  echo "stream, 2 data slots missing   : ${two} s ($(py "print(f'{$SIZE_MIB / $two:.0f}')") MiB/s) = $(py "print(f'{$two / $plain:.2f}')")x the baseline, $(py "print(f'{$two / $none:.2f}')")x no slot missing, nodes' CPU ${two_cpu} s (bytes checked: sha256 equal)"
}

[ "$ONLY" = all ] || [ "$ONLY" = protect ] && protect_part
[ "$ONLY" = all ] || [ "$ONLY" = download ] && download_part
true
