#!/usr/bin/env bash
# Single-node benchmarks (issue #2). Prints figures as ratios to baselines measured in the same run.
#
#   tests/bench/single_node.sh            # 1 GiB ingest/download, 10 GiB RSS + delete
#   BIG_GIB=2 RUNS=1 tests/bench/single_node.sh   # quicker
#
# - ingest: POST /data of a 1 GiB random file (curl -T, streamed) vs `dd if=F of=G bs=1M conv=fdatasync`
#   on the same disk (goal <= 1.3x);
# - download: GET /data/{cid} to /dev/null, MB/s, vs `cat F > /dev/null`;
# - peak RSS (VmHWM) of the node while ingesting a BIG_GIB (10) GiB file (goal <= 150 MB);
# - DELETE of that dataset (goal <= 1 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}"
RUNS="${RUNS:-3}"
BIG_GIB="${BIG_GIB:-10}"
WORK="${BENCH_DIR:-$HOME/.cache/codex-bench}"
PORT="${PORT:-18080}"
API="http://127.0.0.1:$PORT/api/codex/v1"

cargo build --release --quiet --bin codex
BIN="$CARGO_TARGET_DIR/release/codex"
rm -rf "$WORK" && mkdir -p "$WORK"
NODE_PID=""
cleanup() { [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }

# Random bytes fast: AES-CTR keystream of a random key.
random_file() { # path, MiB
  head -c "$(( $2 * 1024 * 1024 ))" < <(openssl enc -aes-128-ctr -pass "pass:$RANDOM$RANDOM" -nosalt -pbkdf2 < /dev/zero 2>/dev/null) > "$1"
}

start_node() {
  rm -rf "$WORK/node"
  "$BIN" --data-dir "$WORK/node" --api-port "$PORT" --storage-quota "$(( BIG_GIB + 4 ))GiB" --log-format none &
  NODE_PID=$!
  for _ in $(seq 200); do curl -sf "$API/space" >/dev/null && return; sleep 0.05; done
  echo "node did not start" >&2; exit 1
}
stop_node() { kill -TERM "$NODE_PID"; wait "$NODE_PID" || true; NODE_PID=""; }

echo "== 1 GiB ingest and download ($RUNS runs each, medians) =="
random_file "$WORK/F" 1024
cat "$WORK/F" > /dev/null
dd_times=(); up_times=(); down_times=(); cat_times=()
for run in $(seq "$RUNS"); do
  t0=$(now); dd if="$WORK/F" of="$WORK/G" bs=1M conv=fdatasync status=none; t1=$(now)
  dd_times+=("$(elapsed "$t0" "$t1")"); rm -f "$WORK/G"; sync
  start_node
  t0=$(now); CID=$(curl -sf -X POST -T "$WORK/F" -H 'Content-Type: application/octet-stream' "$API/data"); t1=$(now)
  up_times+=("$(elapsed "$t0" "$t1")")
  t0=$(now); curl -sf -o /dev/null "$API/data/$CID"; t1=$(now)
  down_times+=("$(elapsed "$t0" "$t1")")
  t0=$(now); cat "$WORK/F" > /dev/null; t1=$(now)
  cat_times+=("$(elapsed "$t0" "$t1")")
  stop_node; sync
done
dd_m=$(median "${dd_times[@]}"); up_m=$(median "${up_times[@]}")
down_m=$(median "${down_times[@]}"); cat_m=$(median "${cat_times[@]}")
echo "dd bs=1M conv=fdatasync : ${dd_m}s  (runs: ${dd_times[*]})"
echo "REST ingest (POST /data): ${up_m}s  (runs: ${up_times[*]})  -> $(ratio "$up_m" "$dd_m")x dd  (goal <= 1.3x)"
echo "REST download (GET)     : ${down_m}s = $(python3 -c "print(f'{1024/$down_m:.0f}')") MiB/s  (runs: ${down_times[*]})"
echo "cat F > /dev/null       : ${cat_m}s  -> download is $(ratio "$down_m" "$cat_m")x cat"
rm -f "$WORK/F"

echo "== ${BIG_GIB} GiB ingest: peak RSS; delete =="
random_file "$WORK/BIG" $(( BIG_GIB * 1024 ))
start_node
t0=$(now); CID=$(curl -sf -X POST -T "$WORK/BIG" "$API/data"); t1=$(now)
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$NODE_PID/status")
echo "ingest of ${BIG_GIB} GiB: $(elapsed "$t0" "$t1")s; node peak RSS (VmHWM): $(( hwm_kb / 1024 )) MiB  (goal <= 150 MB)"
curl -sf "$API/space"; echo
t0=$(now); curl -sf -X DELETE "$API/data/$CID"; t1=$(now)
echo "DELETE of the ${BIG_GIB} GiB dataset: $(elapsed "$t0" "$t1")s  (goal <= 1 s)"
curl -sf "$API/space"; echo
stop_node
