#!/usr/bin/env bash
# A Codex testnet of N nodes on loopback: each node has its own data dir, API port and libp2p port, and every
# node after the first bootstraps from the first one's SPR.
#
#   deploy/testnet.sh start [N] [--marketplace [--validator]]
#                                   start N nodes (default 3) and print their API URLs
#   deploy/testnet.sh status        which nodes (and anvil) run
#   deploy/testnet.sh stop          SIGTERM every node and anvil, wait for clean exits (SIGKILL after 20 s)
#
# --marketplace: also a local chain. Installs the pinned toolchain (contracts/setup.sh), starts anvil on
# ANVIL_PORT, writes development proving keys to $TESTNET_DIR/circuits (PROOF_SAMPLES cells per proof; kept when
# present), deploys token, verifier and marketplace from anvil's account 0 (funding every account used), saves
# the addresses to $TESTNET_DIR/deployment.json and runs node i with persistence as anvil's account i+1. The
# chain is new at every start, so the nodes' data dirs are emptied first (their chain state would be stale).
# The keys are anvil's public development keys: local testnets only.
#
# --validator (with --marketplace): the durability testnet. node0 is the client (and bootstrap node), node1..N are
# hosts, each offering AVAILABILITY_SIZE (1GiB) for sale (POST /sales/availability: any duration up to 30 days,
# price ≥ 1 per byte-second, AVAILABILITY_COLLATERAL tokens of collateral), and node N+1 is a validator
# (`persistence --validator`), which marks the proofs hosts miss.
#
# Environment: CODEX_BIN (default: $CARGO_TARGET_DIR/release/codex), TESTNET_DIR (/tmp/codex-testnet),
# API_BASE (18080), P2P_BASE (19000), QUOTA (8GiB), CODEX_FLAGS (extra node flags), and with --marketplace
# ANVIL_PORT (18545), PROOF_SAMPLES (5), DEPLOY_FLAGS (extra `codex contracts deploy` flags, e.g.
# "--period 20 --timeout 8 --downtime 16" for faster proof periods).
set -euo pipefail

TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}
BIN=${CODEX_BIN:-$TARGET/release/codex}
DIR=${TESTNET_DIR:-/tmp/codex-testnet}
API_BASE=${API_BASE:-18080}
P2P_BASE=${P2P_BASE:-19000}
QUOTA=${QUOTA:-8GiB}
ANVIL_PORT=${ANVIL_PORT:-18545}
PROOF_SAMPLES=${PROOF_SAMPLES:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

api_url() { echo "http://127.0.0.1:$((API_BASE + $1))/api/codex/v1"; }

node_count() {
    local n=0
    while [ -f "$DIR/node$n.pid" ]; do n=$((n + 1)); done
    echo "$n"
}

stop_all() {
    local n pid i
    n=$(node_count)
    for ((i = 0; i < n; i++)); do
        pid=$(cat "$DIR/node$i.pid")
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < n; i++)); do
        pid=$(cat "$DIR/node$i.pid")
        for _ in $(seq 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "node$i (pid $pid) did not stop within 20 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        else
            echo "node$i stopped"
        fi
        rm -f "$DIR/node$i.pid"
    done
    stop_anvil
}

# Stops the anvil this script started (its pid file), if any.
stop_anvil() {
    local pid
    [ -f "$DIR/anvil.pid" ] || return 0
    pid=$(cat "$DIR/anvil.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "anvil (pid $pid) did not stop within 20 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    else
        echo "anvil stopped"
    fi
    rm -f "$DIR/anvil.pid"
}

# Field $2 (a JSON path such as `.marketplace` or `.private_keys[1]`) of the JSON file $1.
json_field() {
    node -e 'let v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        for (const key of process.argv[2].split(/[.[\]]+/).filter(Boolean)) v = v == null ? undefined : v[key];
        if (v === undefined || v === null) process.exit(1);
        console.log(v)' "$1" "$2"
}

# Writes hex private key $2 to file $1, readable by its owner only (the node refuses other modes).
write_key() {
    (umask 077 && printf '%s\n' "$2" >"$1")
    chmod 600 "$1"
}

# Starts anvil, writes the proving keys and the account keys, deploys the contracts: $DIR/deployment.json.
start_chain() {
    local count=$1 anvil native accounts pid i
    anvil=$("$ROOT/contracts/setup.sh" | tail -1)
    # The npm package's anvil is a node wrapper that spawns the real binary; run the binary itself when it is
    # there, so that the pid file names the process that answers signals.
    for native in "$(dirname "$(readlink -f "$anvil")")"/../anvil-*/bin/anvil; do
        [ -x "$native" ] && anvil=$native
    done
    accounts=$((count + 1 > 10 ? count + 1 : 10))
    rm -f "$DIR/anvil.json"
    "$anvil" --host 127.0.0.1 --port "$ANVIL_PORT" --block-time 1 --accounts "$accounts" \
        --config-out "$DIR/anvil.json" >"$DIR/anvil.log" 2>&1 &
    pid=$!
    echo "$pid" >"$DIR/anvil.pid"
    for _ in $(seq 300); do
        [ -s "$DIR/anvil.json" ] && curl -fs -X POST -H 'Content-Type: application/json' \
            --data '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' \
            "http://127.0.0.1:$ANVIL_PORT" >/dev/null 2>&1 && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "anvil exited during start; its log:" >&2
            tail -20 "$DIR/anvil.log" >&2
            rm -f "$DIR/anvil.pid"
            exit 1
        fi
        sleep 0.1
    done
    if [ -f "$DIR/circuits/keys.sha256" ]; then
        echo "proving keys: $DIR/circuits (kept; delete it to make new ones)"
    else
        echo "writing development proving keys ($PROOF_SAMPLES samples) to $DIR/circuits"
        "$BIN" prover setup --circuit-dir "$DIR/circuits" --proof-samples "$PROOF_SAMPLES" >"$DIR/prover-setup.log" 2>&1 || {
            echo "codex prover setup failed:" >&2
            tail -20 "$DIR/prover-setup.log" >&2
            stop_anvil
            exit 1
        }
    fi
    local fund=(--fund "$(json_field "$DIR/anvil.json" ".available_accounts[0]")")
    write_key "$DIR/deployer.key" "$(json_field "$DIR/anvil.json" ".private_keys[0]")"
    for ((i = 0; i < count; i++)); do
        write_key "$DIR/node$i.key" "$(json_field "$DIR/anvil.json" ".private_keys[$((i + 1))]")"
        fund+=(--fund "$(json_field "$DIR/anvil.json" ".available_accounts[$((i + 1))]")")
    done
    echo "deploying the contracts to anvil (127.0.0.1:$ANVIL_PORT)"
    # shellcheck disable=SC2086 # DEPLOY_FLAGS is a list of flags
    if ! env -u CODEX_BIN -u CODEX_FLAGS "$BIN" contracts deploy --eth-provider "http://127.0.0.1:$ANVIL_PORT" \
        --eth-private-key "$DIR/deployer.key" --circuit-dir "$DIR/circuits" "${fund[@]}" ${DEPLOY_FLAGS:-} \
        >"$DIR/deployment.json" 2>"$DIR/deploy.log"; then
        echo "codex contracts deploy failed:" >&2
        tail -20 "$DIR/deploy.log" >&2
        stop_anvil
        exit 1
    fi
}

start() {
    local count=3 market=false validator=false arg i spr="" port p2p args pid persistence=() hosts role
    for arg in "$@"; do
        case $arg in
            --marketplace) market=true ;;
            --validator) validator=true ;;
            *[!0-9]* | "")
                echo "usage: $0 start [N] [--marketplace [--validator]]" >&2
                exit 2
                ;;
            *) count=$arg ;;
        esac
    done
    if $validator && ! $market; then
        echo "--validator needs --marketplace" >&2
        exit 2
    fi
    hosts=0
    if $validator; then
        # N hosts, one client before them, one validator after them.
        hosts=$count
        count=$((count + 2))
    fi
    if [ ! -x "$BIN" ]; then
        echo "no codex binary at $BIN; build it with: CARGO_TARGET_DIR=$TARGET cargo build --release" >&2
        exit 1
    fi
    if [ "$(node_count)" -gt 0 ] || [ -f "$DIR/anvil.pid" ]; then
        echo "a testnet is already running in $DIR; run '$0 stop' first" >&2
        exit 1
    fi
    mkdir -p "$DIR"
    if $market; then
        start_chain "$count"
    fi
    for ((i = 0; i < count; i++)); do
        port=$((API_BASE + i))
        p2p=$((P2P_BASE + i))
        args=(--data-dir "$DIR/node$i" --api-port "$port" --api-bindaddr 127.0.0.1
            --listen-addrs "/ip4/127.0.0.1/tcp/$p2p" --nat none --log-format nocolors --storage-quota "$QUOTA")
        [ -n "$spr" ] && args+=(--bootstrap-node "$spr")
        persistence=()
        if $market; then
            rm -rf "$DIR/node$i"
            persistence=(persistence --eth-provider "ws://127.0.0.1:$ANVIL_PORT" --eth-private-key "$DIR/node$i.key"
                --marketplace-address "$(json_field "$DIR/deployment.json" .marketplace)")
            if $validator && [ "$i" -eq $((count - 1)) ]; then
                persistence+=(--validator)
            fi
            persistence+=(prover --circuit-dir "$DIR/circuits")
        fi
        # CODEX_BIN and CODEX_FLAGS are this script's; the node would warn about them (they are not options).
        # shellcheck disable=SC2086 # CODEX_FLAGS is a list of flags
        env -u CODEX_BIN -u CODEX_FLAGS "$BIN" "${args[@]}" ${CODEX_FLAGS:-} "${persistence[@]}" >"$DIR/node$i.log" 2>&1 &
        pid=$!
        echo "$pid" >"$DIR/node$i.pid"
        for _ in $(seq 300); do
            curl -fs "$(api_url "$i")/debug/info" >/dev/null 2>&1 && break
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "node$i exited during start; its log:" >&2
                tail -20 "$DIR/node$i.log" >&2
                rm -f "$DIR/node$i.pid"
                stop_all
                exit 1
            fi
            sleep 0.1
        done
        if [ "$i" -eq 0 ]; then
            spr=$(curl -fs -H 'Accept: text/plain' "$(api_url 0)/spr")
        fi
        if [ "$i" -ge 1 ] && [ "$i" -le "$hosts" ]; then
            offer_space "$i"
        fi
    done
    for ((i = 0; i < count; i++)); do
        role=""
        if $validator; then
            role=" role=host"
            [ "$i" -eq 0 ] && role=" role=client"
            [ "$i" -eq $((count - 1)) ] && role=" role=validator"
        fi
        if $market; then
            echo "node$i$role api=$(api_url "$i") account=$(json_field "$DIR/anvil.json" ".available_accounts[$((i + 1))]") peer=$(curl -fs -H 'Accept: text/plain' "$(api_url "$i")/peerid") log=$DIR/node$i.log"
        else
            echo "node$i api=$(api_url "$i") peer=$(curl -fs -H 'Accept: text/plain' "$(api_url "$i")/peerid") log=$DIR/node$i.log"
        fi
    done
    if $market; then
        echo "anvil rpc=http://127.0.0.1:$ANVIL_PORT ws=ws://127.0.0.1:$ANVIL_PORT log=$DIR/anvil.log"
        echo "marketplace=$(json_field "$DIR/deployment.json" .marketplace) token=$(json_field "$DIR/deployment.json" .token) deployment=$DIR/deployment.json"
    fi
}

# Host node $1 offers AVAILABILITY_SIZE bytes for sale.
offer_space() {
    local body
    body="{\"totalSize\": $(numfmt --from=iec "${AVAILABILITY_SIZE:-1G}"), \"duration\": 2592000, \"minPricePerBytePerSecond\": \"1\", \"totalCollateral\": \"${AVAILABILITY_COLLATERAL:-100000000000000}\"}"
    if ! curl -fs -X POST -H 'Content-Type: application/json' -d "$body" "$(api_url "$1")/sales/availability" >/dev/null; then
        echo "node$1 refused the availability $body" >&2
        stop_all
        exit 1
    fi
}

status() {
    local n i pid state
    n=$(node_count)
    if [ "$n" -eq 0 ] && [ ! -f "$DIR/anvil.pid" ]; then
        echo "no testnet in $DIR"
        return
    fi
    for ((i = 0; i < n; i++)); do
        pid=$(cat "$DIR/node$i.pid")
        state=dead
        kill -0 "$pid" 2>/dev/null && state=running
        echo "node$i pid=$pid $state api=$(api_url "$i")"
    done
    if [ -f "$DIR/anvil.pid" ]; then
        pid=$(cat "$DIR/anvil.pid")
        state=dead
        kill -0 "$pid" 2>/dev/null && state=running
        echo "anvil pid=$pid $state rpc=http://127.0.0.1:$ANVIL_PORT marketplace=$(json_field "$DIR/deployment.json" .marketplace 2>/dev/null || echo none)"
    fi
}

case ${1:-} in
    start)
        shift
        start "$@"
        ;;
    stop) stop_all ;;
    status) status ;;
    *)
        echo "usage: $0 start [N] [--marketplace] | status | stop" >&2
        exit 2
        ;;
esac
