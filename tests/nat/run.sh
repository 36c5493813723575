#!/usr/bin/env bash
# Nodes behind real NATs on one machine (issue 9). Needs root (network namespaces, veth pairs, iptables).
#
#   sudo tests/nat/run.sh                    # every scenario, with the debug binary
#   SCENARIOS="punch relay" tests/nat/run.sh # some of them
#   CODEX_BIN=$CARGO_TARGET_DIR/release/codex SIZE_MIB=64 tests/nat/run.sh   # the figures of the README
#
# Topology (documentation address ranges only; nothing leaves the namespaces):
#
#   cxn-pub  203.0.113.10  relay + bootstrap node R        cxn-pub2 203.0.113.20  public node P
#        \__________________ cxn-wan (bridge) ________________/
#            /                                        \
#   cxn-r1 NAT 203.0.113.1 | 192.0.2.1         cxn-r2 NAT 203.0.113.2 | 198.51.100.1
#            |                                        |
#   cxn-h1 192.0.2.10 (A), 192.0.2.11 (A2)     cxn-h2 198.51.100.10 (B), 198.51.100.11 (C)
#
# The routers masquerade (endpoint-independent mapping, as Linux keeps source ports) and drop unsolicited
# inbound packets, as home routers do. NAT 2 can be switched to a random port per flow (`--random-fully`), which
# hole punching cannot cross.
#
# Scenarios:
#   punch    A uploads; B, knowing only R, downloads A's file by CID: direct after hole punching, intact; the relay
#            keeps its default limits (no data relayed). Also the both-public baseline (P → R).
#   relay    NAT 2 maps a random port per flow: hole punching fails, the download goes through R, which allows
#            data (--relay-circuit-bytes 0); R's CPU time and peak memory while relaying.
#   history  the Status community-history flow: control node behind NAT 1, member B behind NAT 2 fetches the
#            index and two archives; the control node stops; member A2 behind NAT 1 fetches them from B.
#   limits   R allows one circuit: B's relayed transfer completes, C's circuit is refused, R's own download
#            from P completes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}
BIN=${CODEX_BIN:-$CARGO_TARGET_DIR/debug/codex}
SIZE_MIB=${SIZE_MIB:-16}
SCENARIOS=${SCENARIOS:-punch relay history limits}
WORK=$(mktemp -d /var/tmp/codex-nat.XXXXXX)
NS=(cxn-wan cxn-pub cxn-pub2 cxn-r1 cxn-h1 cxn-r2 cxn-h2)
declare -A NODE_NS NODE_PORT NODE_PID
FAILED=0

[ "$(id -u)" = 0 ] || { echo "tests/nat/run.sh needs root (network namespaces)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no codex binary at $BIN (cargo build first, or set CODEX_BIN)" >&2; exit 2; }
command -v iptables >/dev/null || apt-get install -y -qq iptables >/dev/null
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null

teardown() {
    local name
    for name in "${!NODE_PID[@]}"; do stop "$name"; done
    wait 2>/dev/null || true
    for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
cleanup() {
    local rc=$?
    teardown
    if [ "$rc" = 0 ] && [ "$FAILED" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "logs kept in $WORK" >&2; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILED=1; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# veth NS_A IF_A NS_B IF_B
veth() { ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"; }

topology() {
    teardown
    for ns in "${NS[@]}"; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
    in_ns cxn-wan ip link add br0 type bridge
    in_ns cxn-wan ip link set br0 up
    local host addr
    for pair in cxn-pub:203.0.113.10 cxn-pub2:203.0.113.20 cxn-r1:203.0.113.1 cxn-r2:203.0.113.2; do
        host=${pair%%:*} addr=${pair#*:}
        veth "$host" wan cxn-wan "p-${host#cxn-}"
        in_ns cxn-wan ip link set "p-${host#cxn-}" master br0 up
        in_ns "$host" ip addr add "$addr/24" dev wan
        in_ns "$host" ip link set wan up
    done
    # Home LANs behind the routers.
    veth cxn-r1 lan cxn-h1 eth0
    in_ns cxn-r1 ip addr add 192.0.2.1/24 dev lan
    in_ns cxn-h1 ip addr add 192.0.2.10/24 dev eth0
    in_ns cxn-h1 ip addr add 192.0.2.11/24 dev eth0
    veth cxn-r2 lan cxn-h2 eth0
    in_ns cxn-r2 ip addr add 198.51.100.1/24 dev lan
    in_ns cxn-h2 ip addr add 198.51.100.10/24 dev eth0
    in_ns cxn-h2 ip addr add 198.51.100.11/24 dev eth0
    for n in 1 2; do
        in_ns "cxn-r$n" ip link set lan up
        in_ns "cxn-h$n" ip link set eth0 up
        in_ns "cxn-r$n" sysctl -qw net.ipv4.ip_forward=1
        in_ns "cxn-r$n" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
        # A home router: nothing unsolicited from outside reaches the LAN or the router itself.
        in_ns "cxn-r$n" iptables -A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
        in_ns "cxn-r$n" iptables -A FORWARD -i wan -j DROP
        in_ns "cxn-r$n" iptables -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
        in_ns "cxn-r$n" iptables -A INPUT -i wan -j DROP
    done
    in_ns cxn-h1 ip route add default via 192.0.2.1
    in_ns cxn-h2 ip route add default via 198.51.100.1
}

# A different public port for every flow on NAT 2: hole punching cannot cross it.
symmetric_nat2() {
    in_ns cxn-r2 iptables -t nat -F POSTROUTING
    in_ns cxn-r2 iptables -t nat -A POSTROUTING -o wan -j MASQUERADE --random-fully
}

# start NAME NS IP API_PORT [flags...]: a node listening on TCP and QUIC port 4001 of IP
start() {
    local name=$1 ns=$2 ip=$3 port=$4
    shift 4
    NODE_NS[$name]=$ns NODE_PORT[$name]=$port
    local pidfile="$WORK/$SCENARIO-$name.pid"
    # `ip netns exec` may fork: the shell writes its own pid and becomes the node.
    in_ns "$ns" sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$BIN" --data-dir "$WORK/$SCENARIO-$name" \
        --api-port "$port" --nat-lan --log-format nocolors ${LOG_LEVEL:+--log-level "$LOG_LEVEL"} \
        --listen-addrs "/ip4/$ip/tcp/4001" --listen-addrs "/ip4/$ip/udp/4001/quic-v1" "$@" \
        >>"$WORK/$SCENARIO-$name.log" 2>&1 &
    for _ in $(seq 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
    NODE_PID[$name]=$(cat "$pidfile")
    for _ in $(seq 300); do
        api "$name" /space >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail "$WORK/$SCENARIO-$name.log" >&2
    fail "node $name did not start"
}
stop() {
    local pid=${NODE_PID[$1]}
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    unset "NODE_PID[$1]"
}
api() { in_ns "${NODE_NS[$1]}" curl -fsS "http://127.0.0.1:${NODE_PORT[$1]}/api/codex/v1$2"; }
info() { api "$1" /debug/info; }
peer_id() { api "$1" /peerid | jq -r .id; }
upload() { in_ns "${NODE_NS[$1]}" curl -fsS -X POST -H 'Content-Type: application/octet-stream' -T "$2" \
    "http://127.0.0.1:${NODE_PORT[$1]}/api/codex/v1/data"; }
# fetch NAME CID OUT -> "ttfb total" seconds of GET /data/{cid}/network/stream. A CID announced a moment ago may
# not be in the DHT yet (its provider record is still being published): a 404 is tried again a few times.
fetch() {
    local try times
    for try in 1 2 3 4 5; do
        if times=$(in_ns "${NODE_NS[$1]}" curl -fsS -o "$3" -w '%{time_starttransfer} %{time_total}' \
            --max-time 600 "http://127.0.0.1:${NODE_PORT[$1]}/api/codex/v1/data/$2/network/stream" 2>"$WORK/curl.err")
        then
            echo "$times"
            return 0
        fi
        grep -q 404 "$WORK/curl.err" || break
        sleep 3
    done
    cat "$WORK/curl.err" >&2
    fail "$1 could not fetch $2"
}

# wait_for NAME JQ_FILTER SECONDS WHAT: until the filter on /debug/info is true
wait_for() {
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(info "$1" | jq -r "$2" 2>/dev/null)" = true ] && return 0
        sleep 1
    done
    info "$1" | jq .nat >&2 || true
    fail "$1: $4 (waited $3 s)"
}
wait_private_and_reserved() {
    wait_for "$1" '.nat.reachability == "private" and (.nat.relayReservations | length) > 0' 90 \
        "private with a relay reservation"
}
connection_to() { info "$1" | jq -r --arg p "$2" '.table.nodes[] | select(.peerId == $p) | .connection // "none"'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/${NODE_PID[$1]}/stat"; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/${NODE_PID[$1]}/status"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/${NODE_PID[$1]}/status"; }
mib_s() { awk -v s="$SIZE_MIB" -v t="$1" 'BEGIN {printf "%.1f", s / t}'; }

# Two files of SIZE_MIB: members share `file`, the public node P has `file2` (so nobody else holds P's dataset).
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/file"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/file2"
SUM=$(sha256sum <"$WORK/file" | cut -d' ' -f1)
SUM2=$(sha256sum <"$WORK/file2" | cut -d' ' -f1)
check_file() { [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$SUM" ] || fail "$2: the downloaded bytes differ"; }
check_file2() { [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$SUM2" ] || fail "$2: the downloaded bytes differ"; }

relay_node() {
    start R cxn-pub 203.0.113.10 8080 "$@"
    RID=$(peer_id R)
    BOOT="/ip4/203.0.113.10/tcp/4001/p2p/$RID"
}

# members: A behind NAT 1 and B behind NAT 2, both knowing only R.
members() {
    start A cxn-h1 192.0.2.10 8081 --bootstrap-node "$BOOT"
    start B cxn-h2 198.51.100.10 8082 --bootstrap-node "$BOOT"
}

scenario_punch() {
    echo "== punch: two members behind endpoint-independent NATs, relay with default limits =="
    topology
    relay_node
    members
    start P cxn-pub2 203.0.113.20 8083 --bootstrap-node "$BOOT"
    wait_private_and_reserved A
    wait_private_and_reserved B
    wait_for R '.nat.reachability == "public"' 90 "public"
    info A | jq -c '.nat.announced' | grep -q p2p-circuit || fail "A does not announce a relayed address"
    info A | jq -r '.nat.announced[].address' | grep -q '192\.0\.2\.' && fail "A announces its private address"
    local cid times
    cid=$(upload A "$WORK/file")
    times=$(fetch B "$cid" "$WORK/punch.out")
    check_file "$WORK/punch.out" punch
    local path
    path=$(connection_to B "$(peer_id A)")
    [ "$path" = direct ] || fail "B reaches A $path, not direct after hole punching"
    grep -q "hole punching succeeded" "$WORK/$SCENARIO-B.log" "$WORK/$SCENARIO-A.log" || fail "no hole punching in the logs"
    echo "NATed A -> NATed B, direct after hole punching: ttfb ${times% *} s, total ${times#* } s ($(mib_s "${times#* }") MiB/s)"
    PUNCH_TOTAL=${times#* }
    # Baseline in the same run: both public.
    cid=$(upload P "$WORK/file2")
    times=$(fetch R "$cid" "$WORK/public.out")
    check_file2 "$WORK/public.out" public
    echo "public P -> public R: ttfb ${times% *} s, total ${times#* } s ($(mib_s "${times#* }") MiB/s)"
    PUBLIC_TOTAL=${times#* }
    echo "direct after hole punching / both public: $(awk -v a="$PUNCH_TOTAL" -v b="$PUBLIC_TOTAL" 'BEGIN {printf "%.2f", a / b}')x"
    teardown
}

scenario_relay() {
    echo "== relay: NAT 2 maps a random port per flow; the relay allows data =="
    topology
    symmetric_nat2
    relay_node --relay-circuit-bytes 0
    members
    wait_private_and_reserved A
    wait_private_and_reserved B
    local cid times ticks0 ticks1 t0 t1 hz
    cid=$(upload A "$WORK/file")
    hz=$(getconf CLK_TCK)
    ticks0=$(cpu_ticks R) t0=$(date +%s.%N)
    times=$(fetch B "$cid" "$WORK/relay.out")
    ticks1=$(cpu_ticks R) t1=$(date +%s.%N)
    check_file "$WORK/relay.out" relay
    local path
    path=$(connection_to B "$(peer_id A)")
    [ "$path" = relayed ] || fail "B reaches A $path; expected relayed across a random-port NAT"
    grep -q "data goes through the relay\|data with this peer goes through the relay" "$WORK/$SCENARIO-B.log" "$WORK/$SCENARIO-A.log" \
        || fail "no log line says the data goes through the relay"
    echo "NATed A -> NATed B through the relay: ttfb ${times% *} s, total ${times#* } s ($(mib_s "${times#* }") MiB/s)"
    echo "relay while relaying: CPU $(awk -v d=$((ticks1 - ticks0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" -v s="$SIZE_MIB" \
        'BEGIN {printf "%.2f s over the %.2f s fetch (%.0f MiB relayed per CPU second)", d / hz, t1 - t0, s / (d / hz + 1e-9)}'), RSS $(rss_mib R) MiB, peak $(hwm_mib R) MiB"
    info R | jq -c '.nat.relay'
    teardown
}

scenario_history() {
    echo "== history: control node and both members behind NATs =="
    topology
    relay_node
    start CTRL cxn-h1 192.0.2.10 8081 --bootstrap-node "$BOOT"
    start B cxn-h2 198.51.100.10 8082 --bootstrap-node "$BOOT"
    wait_private_and_reserved CTRL
    wait_private_and_reserved B
    local cids=() i
    for i in 0 1 2; do
        head -c $((200000 + i * 77777)) /dev/urandom >"$WORK/archive$i"
        cids+=("$(upload CTRL "$WORK/archive$i")")
    done
    printf '{"archives":["%s","%s","%s"]}' "${cids[@]}" >"$WORK/index.json"
    local index
    index=$(upload CTRL "$WORK/index.json")
    fetch B "$index" "$WORK/index.out" >/dev/null
    cmp -s "$WORK/index.json" "$WORK/index.out" || fail "history: the index differs"
    for i in 0 2; do
        [ "$(jq -r ".archives[$i]" "$WORK/index.out")" = "${cids[$i]}" ] || fail "history: index entry $i"
        fetch B "${cids[$i]}" "$WORK/b$i.out" >/dev/null
        cmp -s "$WORK/archive$i" "$WORK/b$i.out" || fail "history: archive $i at B differs"
    done
    stop CTRL
    start A2 cxn-h1 192.0.2.11 8084 --bootstrap-node "$BOOT"
    wait_private_and_reserved A2
    for i in 0 2; do
        fetch A2 "${cids[$i]}" "$WORK/a2$i.out" >/dev/null
        cmp -s "$WORK/archive$i" "$WORK/a2$i.out" || fail "history: archive $i at A2 differs"
    done
    echo "history: the index and archives 0 and 2 went control -> B -> A2 across two NATs, intact"
    teardown
}

scenario_limits() {
    echo "== limits: a relay allowing one circuit =="
    topology
    symmetric_nat2
    relay_node --relay-circuit-bytes 0 --relay-max-circuits 1
    members
    start C cxn-h2 198.51.100.11 8085 --bootstrap-node "$BOOT"
    start P cxn-pub2 203.0.113.20 8083 --bootstrap-node "$BOOT"
    wait_private_and_reserved A
    local aid cid pcid
    aid=$(peer_id A)
    cid=$(upload A "$WORK/file")
    pcid=$(upload P "$WORK/file2")
    fetch B "$cid" "$WORK/limits-b.out" >/dev/null
    check_file "$WORK/limits-b.out" "limits (B through the relay)"
    [ "$(connection_to B "$aid")" = relayed ] || fail "B's connection to A is not the relayed one"
    # B's circuit is still open: C's is one too many.
    if api C "/connect/$aid?addrs=$BOOT/p2p-circuit" >/dev/null 2>&1; then
        fail "C got a second circuit through a relay that allows one"
    fi
    [ "$(info R | jq '.nat.relay.circuitsDenied')" -ge 1 ] || fail "the relay counted no refused circuit"
    fetch R "$pcid" "$WORK/limits-r.out" >/dev/null
    check_file2 "$WORK/limits-r.out" "limits (R's own download)"
    echo "limits: C's circuit refused ($(info R | jq -c '.nat.relay')); B's relayed transfer and R's own download intact"
    teardown
}

for SCENARIO in $SCENARIOS; do
    "scenario_$SCENARIO"
done
echo "all NAT scenarios passed: $SCENARIOS"
