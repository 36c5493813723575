#!/usr/bin/env bash
# Swarm benchmark on shaped links (issue 29). Root only: every node runs in its own network namespace on a bridge,
# with its uplink and downlink limited by tc tbf (netem does not work on these machines; tbf does).
#
#   tests/bench/swarm.sh                          # 1 seeder + 8 members, 128 MiB, 50 Mbit/s up, 200 Mbit/s down
#   N=4 SIZE_MIB=32 UP=20 tests/bench/swarm.sh    # other sizes and limits
#   VARIANTS="plain stagger leave slow" tests/bench/swarm.sh
#   ONLY=codex tests/bench/swarm.sh               # skip aria2 (ONLY=aria2: skip the nodes)
#   CODEX_BIN=/path/to/codex tests/bench/swarm.sh # another build (no cargo build)
#
# Variants (each runs the nodes and aria2 in the same topology, one after the other):
#   plain    every member starts fetching at once.
#   stagger  member i starts (i - 1) × STAGGER (default 4) seconds after the first.
#   leave    the seeder is stopped once it has sent LEAVE_AT (default 1.2) × SIZE bytes (about one full copy
#            out); every member must still complete, from the others.
#   slow     member 1's uplink is 10× slower than the others'.
#
# Printed per variant and implementation: the time until the last member holds the file, the mean member's time,
# the seeder's upload (bytes its interface sent, × SIZE), and the physical bound: max(SIZE / seeder uplink,
# N × SIZE / total uplink), since every byte leaves the seeder at least once and every member's copy is uploaded
# by somebody. Then the ratios of the same run: codex / aria2 and codex / bound. Every member's file is compared
# with the original. aria2 runs with a local opentracker and 1 MiB pieces; its leechers keep seeding until the
# last one is done (as our members keep serving), and a member's time is when aria2 calls its completion hook.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}
N=${N:-8}
SIZE_MIB=${SIZE_MIB:-128}
UP=${UP:-50}        # Mbit/s
DOWN=${DOWN:-200}   # Mbit/s
VARIANTS=${VARIANTS:-plain}
ONLY=${ONLY:-codex aria2}
STAGGER=${STAGGER:-4}
LEAVE_AT=${LEAVE_AT:-1.2}
TIMEOUT=${TIMEOUT:-900}
WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/codex-swarm.XXXXXX)}
BIN=${CODEX_BIN:-$CARGO_TARGET_DIR/release/codex}
BUILD=${CODEX_BIN:+no}
unset CODEX_BIN
NET=10.77.0
PIDS=()
TRACKER=

[ "$(id -u)" = 0 ] || { echo "swarm.sh needs root (network namespaces and tc)" >&2; exit 2; }

stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

teardown() {
    for k in $(seq 0 "$N"); do
        ip link del "cxh$k" 2>/dev/null || true
        ip netns del "cxn$k" 2>/dev/null || true
    done
    ip link del cxbr 2>/dev/null || true
}

cleanup() {
    kill "${TRACKER:-}" 2>/dev/null || true
    stop_all
    pkill -f -- "$WORK/" 2>/dev/null || true
    teardown
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

missing=()
for tool in aria2c:aria2 mktorrent:mktorrent opentracker:opentracker bc:bc ethtool:ethtool; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
[ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
[ -n "$BUILD" ] || (cd "$ROOT" && cargo build --release --quiet --bin codex)
mkdir -p "$WORK"
chmod 755 "$WORK"   # opentracker drops privileges and must read its whitelist here

now() { date +%s.%N; }
calc() { echo "$*" | bc -l; }
in_ns() { local k=$1; shift; ip netns exec "cxn$k" "$@"; }
ip_of() { echo "$NET.$((10 + $1))"; }

# shape K UP_MBIT: node K's uplink (egress of its interface) and downlink (egress of the bridge's end)
shape() {
    local k=$1 up=$2
    in_ns "$k" tc qdisc replace dev eth0 root tbf rate "${up}mbit" burst 64kb latency 100ms
    tc qdisc replace dev "cxh$k" root tbf rate "${DOWN}mbit" burst 64kb latency 100ms
}

# topology: a bridge and one namespace per node (0 = the seeder), every link shaped
topology() {
    teardown
    ip link add cxbr type bridge
    ip addr add "$NET.1/24" dev cxbr
    ip link set cxbr up
    for k in $(seq 0 "$N"); do
        ip netns add "cxn$k"
        ip link add "cxh$k" type veth peer name eth0 netns "cxn$k"
        ip link set "cxh$k" master cxbr up
        in_ns "$k" ip addr add "$(ip_of "$k")/24" dev eth0
        in_ns "$k" ip link set eth0 up
        in_ns "$k" ip link set lo up
        # Segmentation offloads would hand tbf 64 KiB packets: shape what goes on the wire.
        in_ns "$k" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true
        ethtool -K "cxh$k" tso off gso off gro off >/dev/null 2>&1 || true
        shape "$k" "$UP"
    done
}

tx_bytes() { in_ns "$1" cat /sys/class/net/eth0/statistics/tx_bytes; }
# retransmitted TCP segments of namespace K since it was made
retrans() { in_ns "$1" nstat -az TcpRetransSegs | awk '/TcpRetransSegs/ {print $2}'; }

api() { echo "http://127.0.0.1:8080/api/codex/v1"; }

# start_node K [SPR]: a node in namespace K, its API on the namespace's loopback
start_node() {
    local k=$1 spr=${2:-}
    local args=(--data-dir "$WORK/node$k" --api-port 8080 --listen-addrs "/ip4/$(ip_of "$k")/tcp/8070" --nat none
        --storage-quota 4GiB --log-format nocolors)
    [ -n "$spr" ] && args+=(--bootstrap-node "$spr")
    # Not through in_ns: $! must be the node itself (ip netns exec execs it), for stop_all to stop it.
    ip netns exec "cxn$k" "$BIN" "${args[@]}" >"$WORK/node$k.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/node$k.pid"
}

wait_api() {
    for _ in $(seq 300); do
        in_ns "$1" curl -fs "$(api)/space" >/dev/null && return 0
        sleep 0.1
    done
    echo "node $1 did not start" >&2
    tail "$WORK/node$1.log" >&2
    exit 1
}

# member_delay I: when member I starts, in seconds after the first
member_delay() {
    case $VARIANT in
        stagger) echo $(( ($1 - 1) * STAGGER )) ;;
        *) echo 0 ;;
    esac
}

# leave_when_copied PID: stops PID once the seeder sent LEAVE_AT × SIZE bytes (variant leave)
leave_when_copied() {
    local pid=$1 base=$2
    local limit
    limit=$(calc "$LEAVE_AT * $SIZE_MIB * 1048576" | cut -d. -f1)
    while kill -0 "$pid" 2>/dev/null; do
        if [ $(( $(tx_bytes 0) - base )) -ge "$limit" ]; then
            kill "$pid" 2>/dev/null || true
            echo "seeder stopped after sending $(( ($(tx_bytes 0) - base) >> 20 )) MiB" >&2
            return 0
        fi
        sleep 0.2
    done
}

# begin_run SEEDER_PID: the counters a run is measured from (T0, TX0, RETRANS0, MEMBER_TX0); in the variant
# leave, a watcher that stops SEEDER_PID once it sent about one copy
begin_run() {
    RETRANS0=$(retrans 0)
    TX0=$(tx_bytes 0)
    for i in $(seq 1 "$N"); do MEMBER_TX0[$i]=$(tx_bytes "$i"); done
    T0=$(now)
    if [ "$VARIANT" = leave ]; then
        leave_when_copied "$1" "$TX0" &
        PIDS+=($!)
    fi
}

# report NAME FILE_PATTERN: the figures of a run since begin_run, from the members' completion stamps
# ($WORK/done.I); each completed member's file (FILE_PATTERN with %s for I) is compared with the original
report() {
    local name=$1 pattern=$2 t0=$T0 tx0=$TX0 last=0 sum=0 count=0 file
    for i in $(seq 1 "$N"); do
        # shellcheck disable=SC2059
        file=$(printf "$pattern" "$i")
        if [ -s "$WORK/done.$i" ] && ! cmp -s "$WORK/file" "$file"; then
            echo "$name member $i: bytes differ" >&2
            exit 1
        fi
    done
    for i in $(seq 1 "$N"); do
        if [ ! -s "$WORK/done.$i" ]; then
            echo "$name: member $i did not complete within ${TIMEOUT}s" >&2
            RESULT[$name]=incomplete
            return 0
        fi
        local t
        t=$(calc "$(cat "$WORK/done.$i") - $t0")
        sum=$(calc "$sum + $t")
        count=$((count + 1))
        [ "$(calc "$t > $last")" = 1 ] && last=$t
    done
    local sent members=0
    sent=$(calc "($(tx_bytes 0) - $tx0) / 1048576")
    for i in $(seq 1 "$N"); do members=$((members + $(tx_bytes "$i") - ${MEMBER_TX0[$i]})); done
    RESULT[$name]=$last
    printf '%-6s last member %7.2f s   mean %7.2f s   seeder sent %6.0f MiB (%.2f× the file), members %6.0f MiB\n' \
        "$name" "$last" "$(calc "$sum / $count")" "$sent" "$(calc "$sent / $SIZE_MIB")" "$((members >> 20))"
    echo "       the seeder retransmitted $(( $(retrans 0) - RETRANS0 )) TCP segments"
}

run_codex() {
    rm -rf "$WORK"/node* "$WORK"/done.* "$WORK"/out.*
    start_node 0
    wait_api 0
    local cid spr
    cid=$(in_ns 0 curl -fs -X POST -H 'Content-Type: application/octet-stream' -T "$WORK/file" "$(api)/data")
    spr=$(in_ns 0 curl -fs -H 'Accept: text/plain' "$(api)/spr")
    for i in $(seq 1 "$N"); do start_node "$i" "$spr"; done
    for i in $(seq 1 "$N"); do wait_api "$i"; done
    sleep 2   # bootstrap: every member's routing table holds the seeder
    local jobs=()
    begin_run "$(cat "$WORK/node0.pid")"
    for i in $(seq 1 "$N"); do
        (
            sleep "$(member_delay "$i")"
            in_ns "$i" curl -fs --max-time "$TIMEOUT" -o "$WORK/out.$i" "$(api)/data/$cid/network/stream" &&
                now >"$WORK/done.$i"
        ) &
        jobs+=($!)
    done
    for job in "${jobs[@]}"; do wait "$job" || true; done
    report codex "$WORK/out.%s"
    stop_all
}

run_aria2() {
    rm -rf "$WORK"/seed "$WORK"/leech.* "$WORK"/done.*
    mkdir -p "$WORK/seed"
    ln "$WORK/file" "$WORK/seed/file"
    local aria=(--enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false
        --file-allocation=none --console-log-level=warn --summary-interval=0 --download-result=hide
        --bt-tracker-connect-timeout=5 --bt-tracker-interval=5 --bt-stop-timeout=0 --check-certificate=false --seed-ratio=0.0
        --listen-port=6881)
    ip netns exec cxn0 aria2c "${aria[@]}" -d "$WORK/seed" --bt-seed-unverified=true "$WORK/file.torrent" \
        >"$WORK/aria-seed.log" 2>&1 &
    local seeder=$!
    PIDS+=($seeder)
    sleep 2
    local jobs=()
    begin_run "$seeder"
    for i in $(seq 1 "$N"); do
        mkdir -p "$WORK/leech.$i"
        printf '#!/bin/sh\ndate +%%s.%%N >%s\n' "$WORK/done.$i" >"$WORK/leech.$i/hook"
        chmod +x "$WORK/leech.$i/hook"
        (
            sleep "$(member_delay "$i")"
            exec ip netns exec "cxn$i" aria2c "${aria[@]}" -d "$WORK/leech.$i" \
                --on-bt-download-complete="$WORK/leech.$i/hook" "$WORK/file.torrent" >"$WORK/aria.$i.log" 2>&1
        ) &
        jobs+=($!)
        PIDS+=($!)
    done
    # Leechers seed on: wait until every one called its hook (or the time is up).
    local deadline
    deadline=$(calc "$T0 + $TIMEOUT")
    while [ "$(calc "$(now) < $deadline")" = 1 ]; do
        local done_count
        done_count=$(find "$WORK" -maxdepth 1 -name 'done.*' -size +0 | wc -l)
        [ "$done_count" -ge "$N" ] && break
        sleep 0.2
    done
    report aria2 "$WORK/leech.%s/file"
    stop_all
}

head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/file"
mktorrent -l 20 -a "http://$NET.1:6969/announce" -o "$WORK/file.torrent" "$WORK/file" >/dev/null
aria2c -S "$WORK/file.torrent" | awk '/Info Hash/ {print $3}' >"$WORK/whitelist"
chmod 644 "$WORK/whitelist"

declare -A RESULT
declare -a MEMBER_TX0
seeder_bound=$(calc "$SIZE_MIB * 8 * 1.048576 / $UP")
for VARIANT in $VARIANTS; do
    topology
    opentracker -i "$NET.1" -p 6969 -P 6969 -w "$WORK/whitelist" >"$WORK/tracker.log" 2>&1 &
    TRACKER=$!
    total_up=$(calc "$UP * ($N + 1)")
    if [ "$VARIANT" = slow ]; then
        shape 1 "$(calc "$UP / 10")"
        total_up=$(calc "$UP * $N + $UP / 10")
    fi
    total_bound=$(calc "$N * $SIZE_MIB * 8 * 1.048576 / $total_up")
    bound=$seeder_bound
    [ "$(calc "$total_bound > $bound")" = 1 ] && bound=$total_bound
    echo "== $VARIANT: 1 seeder + $N members, $SIZE_MIB MiB, uplinks $UP Mbit/s, downlinks $DOWN Mbit/s; bound $(printf '%.2f' "$bound") s =="
    RESULT=()
    for impl in $ONLY; do
        case $impl in
            codex) run_codex ;;
            aria2) run_aria2 ;;
            *) echo "unknown implementation $impl (codex aria2)" >&2; exit 2 ;;
        esac
    done
    if [ -n "${RESULT[codex]:-}" ] && [ "${RESULT[codex]}" != incomplete ]; then
        printf 'codex / bound %.2f×' "$(calc "${RESULT[codex]} / $bound")"
        if [ -n "${RESULT[aria2]:-}" ] && [ "${RESULT[aria2]}" != incomplete ]; then
            printf '   aria2 / bound %.2f×   codex / aria2 %.2f×' "$(calc "${RESULT[aria2]} / $bound")" \
                "$(calc "${RESULT[codex]} / ${RESULT[aria2]}")"
        fi
        echo
    fi
    kill "$TRACKER" 2>/dev/null || true
done
