#!/usr/bin/env bash
# Network benchmarks (issues 3 and 8). Every figure is printed with its baseline, measured in the same run.
#
#   tests/bench/network.sh                       # every part
#   RUNS=5 tests/bench/network.sh                # medians of 5 (default 3)
#   ONLY="pair swarm" tests/bench/network.sh     # some parts
#   CODEX_BIN=/path/to/codex tests/bench/network.sh   # another build (no cargo build)
#   TRANSPORT=tcp tests/bench/network.sh         # nodes listen on TCP only, or quic: QUIC only (default both)
#   NO_SENDME=1 tests/bench/network.sh           # without iroh's sendme (not installed, not run)
#
# Parts:
#   pair       1 GiB from node A to node B over loopback (GET /data/{cid}/network/stream into a file), against
#              curl from python's static http.server, aria2 BitTorrent (seeder -> leecher through a local
#              opentracker, 1 MiB pieces) and iroh's sendme (--relay disabled): medians of RUNS.
#   swarm      one seeder and 8 fresh nodes fetching the same SWARM_MIB (256) MiB at once: time until all 8 hold
#              it, against aria2 with one seeder and 8 leechers, and 8 curls at once from http.server.
#   providers  one downloader fetching PROVIDERS_MIB (512) MiB held by three nodes, against the same from one.
#   big        BIG_GIB (10) GiB from A to B: sha256 of the bytes and each node's peak RSS (VmHWM).
#   ttfb       time to first byte for a dataset held by one node of a 10-node testnet, from a fresh node.
#
# Needs aria2, mktorrent and opentracker (Debian packages; installed with apt-get when missing) and sendme
# (`cargo install sendme --version 0.37.1 --locked`, installed when missing). Every block the nodes fetch is verified against
# the dataset root before it is stored or served: nothing here turns that off.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}
RUNS=${RUNS:-3}
BIG_GIB=${BIG_GIB:-10}
SWARM_MIB=${SWARM_MIB:-256}
PROVIDERS_MIB=${PROVIDERS_MIB:-512}
ONLY=${ONLY:-pair swarm providers big ttfb}
TRANSPORT=${TRANSPORT:-both}
QUOTA=${QUOTA:-20GiB}
WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/codex-netbench.XXXXXX)}
BIN=${CODEX_BIN:-$CARGO_TARGET_DIR/release/codex}
BUILD=${CODEX_BIN:+no}
unset CODEX_BIN   # not a node option: the nodes would warn about it
PIDS=()

cleanup() {
    stop_all
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

need_tools() {
    local missing=()
    for tool in aria2c:aria2 mktorrent:mktorrent opentracker:opentracker bc:bc; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    export PATH=$HOME/.cargo/bin:$PATH
    [ -n "${NO_SENDME:-}" ] || command -v sendme >/dev/null ||
        CARGO_TARGET_DIR=$WORK/sendme-build cargo install sendme --version 0.37.1 --locked --quiet
}

need_tools
mkdir -p "$WORK"
chmod 755 "$WORK"   # opentracker drops privileges and must read its whitelist here
printf '#!/bin/sh\ndate +%%s.%%N >"$(dirname "$3")/done"\n' >"$WORK/done-hook"
chmod +x "$WORK/done-hook"
[ -n "$BUILD" ] || (cd "$ROOT" && cargo build --release --quiet)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
ratio() { echo "$1 / $2" | bc -l; }
# med ARRAY -> the median of the array's figures
med() { local -n _med_of=$1; printf '%s\n' "${_med_of[@]}" | median; }
# timed ARRAY COMMAND... -> runs COMMAND and appends its seconds to ARRAY
timed() {
    local -n _timed_into=$1
    shift
    local t0
    t0=$(now)
    "$@"
    _timed_into+=("$(since "$t0")")
}
# all_at_once COUNT COMMAND... -> runs COMMAND with each of 1..COUNT appended, all at once; waits for all
all_at_once() {
    local n=$1 jobs=() job i
    shift
    for i in $(seq 1 "$n"); do
        "$@" "$i" &
        jobs+=($!)
    done
    for job in "${jobs[@]}"; do wait "$job"; done
}
# stop_all: stops every process this part started
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    PIDS=()
    wait 2>/dev/null || true
}

# start_node NAME API_PORT P2P_PORT [SPR] -> starts a node, waits for its API
start_node() {
    local name=$1 api=$2 p2p=$3 spr=${4:-}
    local listen=()
    [ "$TRANSPORT" = quic ] || listen+=(--listen-addrs "/ip4/127.0.0.1/tcp/$p2p")
    [ "$TRANSPORT" = tcp ] || listen+=(--listen-addrs "/ip4/127.0.0.1/udp/$p2p/quic-v1")
    local args=(--data-dir "$WORK/$name" --api-port "$api" "${listen[@]}" --nat none
        --storage-quota "$QUOTA" --log-format nocolors)
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

stop_nodes() {
    for name in "$@"; do kill "$(cat "$WORK/$name.pid")" 2>/dev/null || true; done
    for name in "$@"; do
        while kill -0 "$(cat "$WORK/$name.pid")" 2>/dev/null; do sleep 0.1; done
        rm -rf "${WORK:?}/$name"
    done
}

api() { echo "http://127.0.0.1:$1/api/codex/v1"; }
spr() { curl -fs -H 'Accept: text/plain' "$(api "$1")/spr"; }
upload() { curl -fs -X POST -H 'Content-Type: application/octet-stream' -T "$2" "$(api "$1")/data"; }
fetch() { curl -fs -o "$3" "$(api "$1")/data/$2/network/stream"; }
# cpu_s PID... -> CPU seconds (user + system) the running processes have used so far
cpu_s() {
    local ticks=0 pid
    for pid in "$@"; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    echo "$ticks / $(getconf CLK_TCK)" | bc -l
}
# child_cpu FILE COMMAND... -> runs COMMAND; its CPU seconds (user + system) go to FILE.s. A function
# COMMAND runs its program under "${WRAP[@]}".
WRAP=()
child_cpu() {
    local file=$1
    shift
    WRAP=(/usr/bin/time -f '%U + %S' -o "$file")
    if [ "$(type -t "$1")" = function ]; then "$@"; else "${WRAP[@]}" "$@"; fi
    WRAP=()
    bc -l <"$file" >"$file.s"
}
pid_of() { cat "$WORK/$1.pid"; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$(cat "$WORK/$1.pid")/status"; }
same() { cmp -s "$1" "$2" || { echo "downloaded bytes differ: $2" >&2; exit 1; }; }

# start_tracker TORRENT: opentracker on loopback (Debian builds it with a whitelist: the torrent's info hash)
start_tracker() {
    aria2c -S "$1" | awk '/Info Hash/ {print $3}' >"$WORK/whitelist"
    chmod 644 "$WORK/whitelist"
    opentracker -i 127.0.0.1 -p 16969 -P 16969 -w "$WORK/whitelist" >"$WORK/tracker.log" 2>&1 &
    PIDS+=($!)
    sleep 0.5
}

# make_torrent FILE -> FILE.torrent (1 MiB pieces, the local tracker)
make_torrent() {
    rm -f "$1.torrent"
    mktorrent -l 20 -a http://127.0.0.1:16969/announce -o "$1.torrent" "$1" >/dev/null
}

ARIA=(--enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false
    --file-allocation=none --console-log-level=warn --summary-interval=0 --download-result=hide
    --bt-tracker-connect-timeout=5 --bt-stop-timeout=0 --check-certificate=false)

# start_seeder TORRENT DIR PORT: an aria2 seeder of a file already in DIR
start_seeder() {
    aria2c "${ARIA[@]}" -d "$2" --listen-port="$3" --seed-ratio=0.0 --bt-seed-unverified=true "$1" \
        >"$WORK/seeder.$3.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/seeder.$3.pid"
    sleep 1
}

# leech TORRENT DIR PORT: an aria2 leecher that exits once it holds the file; the time the download completed
# is written to DIR/done by aria2's hook (its exit waits another second for the tracker, not counted)
leech() {
    "${WRAP[@]}" aria2c "${ARIA[@]}" -d "$2" --listen-port="$3" --seed-time=0 --on-download-complete="$WORK/done-hook" "$1" \
        >"$WORK/leech.$3.log" 2>&1
}

# start_sendme FILE DIR: `sendme send` of FILE (its ticket: sendme_ticket)
start_sendme() {
    (cd "$2" && exec sendme send --relay disabled --ticket-type addresses --no-progress "$1" >"$WORK/sendme.out" 2>&1) &
    PIDS+=($!)
    echo $! >"$WORK/sendme.pid"
}

# sendme_ticket -> waits for the ticket `sendme send` prints once it imported the file
sendme_ticket() {
    for _ in $(seq 600); do
        local ticket
        ticket=$(grep -so 'blob[a-z0-9]\{20,\}' "$WORK/sendme.out" | head -1 || true)
        [ -n "$ticket" ] && { echo "$ticket"; return 0; }
        sleep 0.1
    done
    echo "sendme printed no ticket" >&2
    cat "$WORK/sendme.out" >&2
    exit 1
}

# sendme_receive TICKET DIR: `sendme receive` into DIR
sendme_receive() {
    (cd "$2" && exec "${WRAP[@]}" sendme receive --relay disabled --no-progress "$1" >"$WORK/sendme-recv.log" 2>&1)
}

# fetch_leecher CID I: leecher I of the swarm fetches CID into $WORK/lI.out
fetch_leecher() { fetch $((18380 + $2)) "$1" "$WORK/l$2.out"; }
# leech_swarm I: aria2 leecher I of the swarm
leech_swarm() { mkdir -p "$WORK/t$1" && leech "$WORK/src/file.torrent" "$WORK/t$1" $((16881 + $1)); }
# curl_swarm I: plain download I of the swarm's baseline
curl_swarm() { curl -fs -o "$WORK/c$1.out" http://127.0.0.1:18290/file; }

pair() {
    echo "== 1 GiB from A to B over loopback (median of $RUNS; transport $TRANSPORT) =="
    mkdir -p "$WORK/src" "$WORK/out"
    head -c $((1 << 30)) /dev/urandom >"$WORK/src/file"
    start_node a 18280 18270
    start_node b 18281 18271 "$(spr 18280)"
    local cid
    cid=$(upload 18280 "$WORK/src/file")
    (cd "$WORK/src" && exec python3 -m http.server 18290 --bind 127.0.0.1 >/dev/null 2>&1) &
    PIDS+=($!)
    make_torrent "$WORK/src/file"
    start_tracker "$WORK/src/file.torrent"
    start_seeder "$WORK/src/file.torrent" "$WORK/src" 16881
    local ticket=
    if [ -z "${NO_SENDME:-}" ]; then
        start_sendme "$WORK/src/file" "$WORK/src"
        ticket=$(sendme_ticket)
    fi
    sleep 1
    # CPU per delivered GiB: sender + receiver + the client writing the file (for us the curl reading B's
    # stream; aria2 and sendme write their own file).
    local curls=() ours=() arias=() sendmes=() our_cpu=() aria_cpu=() sendme_cpu=() t0 c0
    for _ in $(seq "$RUNS"); do
        timed curls curl -fs -o "$WORK/out/file" http://127.0.0.1:18290/file
        same "$WORK/src/file" "$WORK/out/file"
        rm -f "$WORK/out/file"

        c0=$(cpu_s "$(pid_of a)" "$(pid_of b)")
        timed ours child_cpu "$WORK/cpu" curl -fs -o "$WORK/out/file" "$(api 18281)/data/$cid/network/stream"
        our_cpu+=("$(echo "$(cpu_s "$(pid_of a)" "$(pid_of b)") - $c0 + $(cat "$WORK/cpu.s")" | bc -l)")
        same "$WORK/src/file" "$WORK/out/file"
        rm -f "$WORK/out/file"
        curl -fs -X DELETE "$(api 18281)/data/$cid" >/dev/null

        t0=$(now)
        c0=$(cpu_s "$(pid_of seeder.16881)")
        child_cpu "$WORK/cpu" leech "$WORK/src/file.torrent" "$WORK/out" 16882
        aria_cpu+=("$(echo "$(cpu_s "$(pid_of seeder.16881)") - $c0 + $(cat "$WORK/cpu.s")" | bc -l)")
        arias+=("$(echo "$(cat "$WORK/out/done") - $t0" | bc -l)")
        same "$WORK/src/file" "$WORK/out/file"
        rm -rf "$WORK/out" && mkdir -p "$WORK/out"

        if [ -n "$ticket" ]; then
            c0=$(cpu_s "$(pid_of sendme)")
            timed sendmes child_cpu "$WORK/cpu" sendme_receive "$ticket" "$WORK/out"
            sendme_cpu+=("$(echo "$(cpu_s "$(pid_of sendme)") - $c0 + $(cat "$WORK/cpu.s")" | bc -l)")
            same "$WORK/src/file" "$WORK/out/file"
            rm -rf "$WORK/out" && mkdir -p "$WORK/out"
        fi
        sleep 0.5
    done
    local c o a s
    c=$(med curls)
    o=$(med ours)
    a=$(med arias)
    s=$(med sendmes)
    [ -n "$s" ] || s=nan
    printf 'codex A->B             %6.2f s (%4.0f MiB/s)  runs: %s\n' "$o" "$(ratio 1024 "$o")" "${ours[*]}"
    printf 'curl from http.server  %6.2f s  codex/curl   %.2fx (goal <= 1.5x)\n' "$c" "$(ratio "$o" "$c")"
    printf 'aria2 BitTorrent       %6.2f s  codex/aria2  %.2fx (goal <= 0.5x)\n' "$a" "$(ratio "$o" "$a")"
    [ -z "$ticket" ] || printf 'iroh sendme            %6.2f s  codex/sendme %.2fx (goal <= 0.5x)\n' "$s" "$(ratio "$o" "$s")"
    printf 'CPU per delivered GiB (sender + receiver + client, median): codex %.2f s (goal <= 6 s), aria2 %.2f s' \
        "$(med our_cpu)" "$(med aria_cpu)"
    [ -z "$ticket" ] || printf ', sendme %.2f s' "$(med sendme_cpu)"
    echo
    echo "peak RSS: A $(hwm_mib a) MiB, B $(hwm_mib b) MiB"
    stop_all
    rm -rf "$WORK/a" "$WORK/b" "$WORK/src" "$WORK/out"
}

swarm() {
    local n=8
    echo "== one seeder, $n fresh nodes fetching $SWARM_MIB MiB at once (median of $RUNS) =="
    mkdir -p "$WORK/src"
    head -c $((SWARM_MIB << 20)) /dev/urandom >"$WORK/src/file"
    make_torrent "$WORK/src/file"
    start_tracker "$WORK/src/file.torrent"
    (cd "$WORK/src" && exec python3 -m http.server 18290 --bind 127.0.0.1 >/dev/null 2>&1) &
    PIDS+=($!)
    local ours=() arias=() curls=() t0
    for _ in $(seq "$RUNS"); do
        # codex: a seeder and n fresh nodes bootstrapped off it
        start_node seed 18380 18370
        local cid seedspr names=()
        cid=$(upload 18380 "$WORK/src/file")
        seedspr=$(spr 18380)
        for i in $(seq 1 $n); do
            start_node "l$i" $((18380 + i)) $((18370 + i)) "$seedspr"
            names+=("l$i")
        done
        sleep 2
        timed ours all_at_once $n fetch_leecher "$cid"
        for i in $(seq 1 $n); do same "$WORK/src/file" "$WORK/l$i.out"; rm -f "$WORK/l$i.out"; done
        stop_nodes seed "${names[@]}"

        # aria2: a seeder and n leechers
        start_seeder "$WORK/src/file.torrent" "$WORK/src" 16881
        t0=$(now)
        all_at_once $n leech_swarm
        arias+=("$(echo "$(cat "$WORK"/t*/done | sort -n | tail -1) - $t0" | bc -l)")
        for i in $(seq 1 $n); do same "$WORK/src/file" "$WORK/t$i/file"; rm -rf "$WORK/t$i"; done
        kill "$(cat "$WORK/seeder.16881.pid")"

        # n plain transfers at once
        timed curls all_at_once $n curl_swarm
        for i in $(seq 1 $n); do same "$WORK/src/file" "$WORK/c$i.out"; rm -f "$WORK/c$i.out"; done
        sleep 1
    done
    local o a c
    o=$(med ours)
    a=$(med arias)
    c=$(med curls)
    printf 'codex 1 -> %d            %6.2f s  runs: %s\n' $n "$o" "${ours[*]}"
    printf 'aria2 1 seeder, %d leechers %6.2f s  codex/aria2 %.2fx (goal < 1x)\n' $n "$a" "$(ratio "$o" "$a")"
    printf 'curl x %d from http.server  %6.2f s  codex/curl  %.2fx\n' $n "$c" "$(ratio "$o" "$c")"
    stop_all
    rm -rf "$WORK/src"
}

# fresh_fetch ARRAY SPR CID: a fresh node bootstrapped off SPR fetches CID (checked against $WORK/pfile), then
# stops; the fetch's seconds are appended to ARRAY
fresh_fetch() {
    start_node d 18483 18473 "$2"
    timed "$1" fetch 18483 "$3" "$WORK/d.out"
    same "$WORK/pfile" "$WORK/d.out"
    stop_nodes d
    rm -f "$WORK/d.out"
}

providers() {
    echo "== $PROVIDERS_MIB MiB from three providers vs one (median of $RUNS) =="
    head -c $((PROVIDERS_MIB << 20)) /dev/urandom >"$WORK/pfile"
    start_node p1 18480 18470
    local spr1 cid
    spr1=$(spr 18480)
    start_node p2 18481 18471 "$spr1"
    start_node p3 18482 18472 "$spr1"
    cid=$(upload 18480 "$WORK/pfile")
    fetch 18481 "$cid" /dev/null
    fetch 18482 "$cid" /dev/null
    sleep 2
    local ones=() threes=()
    for _ in $(seq "$RUNS"); do
        # three providers: a fresh downloader finds all three (the download looks up the providers)
        fresh_fetch threes "$spr1" "$cid"
        # one provider: p2 and p3 are stopped
        kill -STOP "$(cat "$WORK/p2.pid")" "$(cat "$WORK/p3.pid")"
        fresh_fetch ones "$spr1" "$cid"
        kill -CONT "$(cat "$WORK/p2.pid")" "$(cat "$WORK/p3.pid")"
        sleep 1
    done
    local one three
    one=$(med ones)
    three=$(med threes)
    printf 'one provider    %6.2f s  runs: %s\n' "$one" "${ones[*]}"
    printf 'three providers %6.2f s  runs: %s  three/one %.2fx (goal < 1x)\n' "$three" "${threes[*]}" \
        "$(ratio "$three" "$one")"
    stop_nodes p1 p2 p3
    rm -f "$WORK/pfile"
}

big() {
    echo "== $BIG_GIB GiB from A to B =="
    start_node a 18580 18570
    start_node b 18581 18571 "$(spr 18580)"
    head -c $((BIG_GIB << 30)) /dev/urandom >"$WORK/big"
    local want cid t0 got t
    want=$(sha256sum "$WORK/big" | cut -d' ' -f1)
    cid=$(upload 18580 "$WORK/big")
    rm -f "$WORK/big"
    t0=$(now)
    got=$(curl -fs "$(api 18581)/data/$cid/network/stream" | sha256sum | cut -d' ' -f1)
    t=$(since "$t0")
    [ "$got" = "$want" ] || { echo "sha256 differs" >&2; exit 1; }
    printf '%s GiB in %.1f s (%.0f MiB/s), sha256 matches\n' "$BIG_GIB" "$t" "$(ratio "$BIG_GIB * 1024" "$t")"
    echo "peak RSS (VmHWM): A $(hwm_mib a) MiB, B $(hwm_mib b) MiB (goal <= 150 MB = 143 MiB each)"
    stop_nodes a b
}

ttfb() {
    echo "== time to first byte in a 10-node testnet =="
    start_node n0 18680 18670
    local spr0
    spr0=$(spr 18680)
    for i in $(seq 1 9); do start_node "n$i" $((18680 + i)) $((18670 + i)) "$spr0"; done
    head -c $((64 << 20)) /dev/urandom >"$WORK/small"
    local cid
    cid=$(upload 18687 "$WORK/small")   # held by n7 only
    sleep 2                             # the announcement reaches the DHT
    start_node fresh 18699 18669 "$(spr 18683)"   # bootstrapped off n3
    curl -fs -o /dev/null -w 'TTFB %{time_starttransfer} s, whole 64 MiB %{time_total} s\n' \
        "$(api 18699)/data/$cid/network/stream"
    stop_nodes n0 n1 n2 n3 n4 n5 n6 n7 n8 n9 fresh
}

for part in $ONLY; do
    case $part in
        pair | swarm | providers | big | ttfb) $part ;;
        *) echo "unknown part $part (pair swarm providers big ttfb)" >&2; exit 2 ;;
    esac
done
