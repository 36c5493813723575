#!/usr/bin/env bash
# Network benchmarks (issue 3). Prints figures as ratios to baselines measured in the same run.
#
#   tests/bench/network.sh            # all three
#   RUNS=5 BIG_GIB=10 tests/bench/network.sh
#   ONLY=transfer|big|ttfb tests/bench/network.sh
#
# 1. transfer: 1 GiB of random data from node A to node B over loopback via GET /data/{cid}/network/stream
#    into a file, against curl fetching the same file from python's static http.server (median of RUNS).
# 2. big: BIG_GIB GiB from A to B; checks the bytes (sha256) and reports each node's peak RSS (VmHWM).
# 3. ttfb: time to first byte for a dataset held by one node of a 10-node testnet, from a fresh node
#    bootstrapped off another.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}
RUNS=${RUNS:-3}
BIG_GIB=${BIG_GIB:-10}
ONLY=${ONLY:-all}
WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/codex-netbench.XXXXXX)}
BIN=$CARGO_TARGET_DIR/release/codex
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release --quiet)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# start_node NAME API_PORT P2P_PORT [SPR] -> starts a node, waits for its API
start_node() {
    local name=$1 api=$2 p2p=$3 spr=${4:-}
    local args=(--data-dir "$WORK/$name" --api-port "$api" --listen-addrs "/ip4/127.0.0.1/tcp/$p2p" --nat none
        --storage-quota 40GiB --log-format nocolors)
    [ -n "$spr" ] && args+=(--bootstrap-node "$spr")
    "$BIN" "${args[@]}" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/$name.pid"
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:$api/api/codex/v1/space" >/dev/null && return 0
        sleep 0.1
    done
    echo "node $name did not start" >&2
    tail "$WORK/$name.log" >&2
    exit 1
}

api() { echo "http://127.0.0.1:$1/api/codex/v1"; }
spr() { curl -fs -H 'Accept: text/plain' "$(api "$1")/spr"; }
upload() { curl -fs -X POST -H 'Content-Type: application/octet-stream' -T "$2" "$(api "$1")/data"; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$(cat "$WORK/$1.pid")/status"; }
now() { date +%s.%N; }

transfer() {
    echo "== 1 GiB from A to B over loopback (median of $RUNS) =="
    head -c $((1 << 30)) /dev/urandom >"$WORK/file"
    start_node a 18280 18270
    start_node b 18281 18271 "$(spr 18280)"
    local cid
    cid=$(upload 18280 "$WORK/file")
    (cd "$WORK" && exec python3 -m http.server 18290 --bind 127.0.0.1 >/dev/null 2>&1) &
    PIDS+=($!)
    sleep 1
    local base=() ours=()
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(now)
        curl -fs -o "$WORK/base.out" http://127.0.0.1:18290/file
        t1=$(now)
        base+=("$(echo "$t1 - $t0" | bc -l)")
        rm -f "$WORK/base.out"
        t0=$(now)
        curl -fs -o "$WORK/ours.out" "$(api 18281)/data/$cid/network/stream"
        t1=$(now)
        ours+=("$(echo "$t1 - $t0" | bc -l)")
        cmp -s "$WORK/file" "$WORK/ours.out" || { echo "downloaded bytes differ" >&2; exit 1; }
        rm -f "$WORK/ours.out"
        curl -fs -X DELETE "$(api 18281)/data/$cid" >/dev/null
        sleep 0.5
    done
    local b o
    b=$(printf '%s\n' "${base[@]}" | median)
    o=$(printf '%s\n' "${ours[@]}" | median)
    printf 'curl from http.server: %.2f s   codex A->B: %.2f s (%.0f MiB/s)   ratio: %.2fx (goal <= 1.5x)\n' \
        "$b" "$o" "$(echo "1024 / $o" | bc -l)" "$(echo "$o / $b" | bc -l)"
    echo "peak RSS: A $(hwm_mib a) MiB, B $(hwm_mib b) MiB"
    kill "$(cat "$WORK/a.pid")" "$(cat "$WORK/b.pid")"
    sleep 1
    rm -rf "$WORK/a" "$WORK/b" "$WORK/file"
}

big() {
    echo "== $BIG_GIB GiB from A to B =="
    start_node a 18380 18370
    start_node b 18381 18371 "$(spr 18380)"
    head -c $((BIG_GIB << 30)) /dev/urandom >"$WORK/big"
    local want cid t0 got t1
    want=$(sha256sum "$WORK/big" | cut -d' ' -f1)
    cid=$(upload 18380 "$WORK/big")
    rm -f "$WORK/big"
    t0=$(now)
    got=$(curl -fs "$(api 18381)/data/$cid/network/stream" | sha256sum | cut -d' ' -f1)
    t1=$(now)
    [ "$got" = "$want" ] || { echo "sha256 differs" >&2; exit 1; }
    printf '%s GiB in %.1f s (%.0f MiB/s), sha256 matches\n' "$BIG_GIB" "$(echo "$t1 - $t0" | bc -l)" \
        "$(echo "$BIG_GIB * 1024 / ($t1 - $t0)" | bc -l)"
    echo "peak RSS (VmHWM): A $(hwm_mib a) MiB, B $(hwm_mib b) MiB (goal <= 150 MB each)"
    kill "$(cat "$WORK/a.pid")" "$(cat "$WORK/b.pid")"
    sleep 1
    rm -rf "$WORK/a" "$WORK/b"
}

ttfb() {
    echo "== time to first byte in a 10-node testnet =="
    start_node n0 18480 18470
    local spr0
    spr0=$(spr 18480)
    for i in $(seq 1 9); do start_node "n$i" $((18480 + i)) $((18470 + i)) "$spr0"; done
    head -c $((64 << 20)) /dev/urandom >"$WORK/small"
    local cid
    cid=$(upload 18487 "$WORK/small")   # held by n7 only
    sleep 2                             # the announcement reaches the DHT
    start_node fresh 18499 18469 "$(spr 18483)"   # bootstrapped off n3
    curl -fs -o /dev/null -w 'TTFB %{time_starttransfer} s, whole 64 MiB %{time_total} s\n' \
        "$(api 18499)/data/$cid/network/stream"
}

case $ONLY in
    transfer) transfer ;;
    big) big ;;
    ttfb) ttfb ;;
    all) transfer; big; ttfb ;;
esac
