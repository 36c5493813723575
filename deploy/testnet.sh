#!/usr/bin/env bash
# A Codex testnet of N nodes on loopback: each node has its own data dir, API port and libp2p port, and every
# node after the first bootstraps from the first one's SPR.
#
#   deploy/testnet.sh start [N]     start N nodes (default 3) and print their API URLs
#   deploy/testnet.sh status        which nodes run
#   deploy/testnet.sh stop          SIGTERM every node, wait for clean exits (SIGKILL after 20 s)
#
# Environment: CODEX_BIN (default: $CARGO_TARGET_DIR/release/codex), TESTNET_DIR (/tmp/codex-testnet),
# API_BASE (18080), P2P_BASE (19000), QUOTA (8GiB), CODEX_FLAGS (extra node flags).
set -euo pipefail

TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/codex-target}
BIN=${CODEX_BIN:-$TARGET/release/codex}
DIR=${TESTNET_DIR:-/tmp/codex-testnet}
API_BASE=${API_BASE:-18080}
P2P_BASE=${P2P_BASE:-19000}
QUOTA=${QUOTA:-8GiB}

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
}

start() {
    local count=${1:-3} i spr="" port p2p args pid
    if [ ! -x "$BIN" ]; then
        echo "no codex binary at $BIN; build it with: CARGO_TARGET_DIR=$TARGET cargo build --release" >&2
        exit 1
    fi
    if [ "$(node_count)" -gt 0 ]; then
        echo "a testnet is already running in $DIR; run '$0 stop' first" >&2
        exit 1
    fi
    mkdir -p "$DIR"
    for ((i = 0; i < count; i++)); do
        port=$((API_BASE + i))
        p2p=$((P2P_BASE + i))
        args=(--data-dir "$DIR/node$i" --api-port "$port" --api-bindaddr 127.0.0.1
            --listen-addrs "/ip4/127.0.0.1/tcp/$p2p" --nat none --log-format nocolors --storage-quota "$QUOTA")
        [ -n "$spr" ] && args+=(--bootstrap-node "$spr")
        # CODEX_BIN and CODEX_FLAGS are this script's; the node would warn about them (they are not options).
        # shellcheck disable=SC2086 # CODEX_FLAGS is a list of flags
        env -u CODEX_BIN -u CODEX_FLAGS "$BIN" "${args[@]}" ${CODEX_FLAGS:-} >"$DIR/node$i.log" 2>&1 &
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
    done
    for ((i = 0; i < count; i++)); do
        echo "node$i api=$(api_url "$i") peer=$(curl -fs -H 'Accept: text/plain' "$(api_url "$i")/peerid") log=$DIR/node$i.log"
    done
}

status() {
    local n i pid state
    n=$(node_count)
    [ "$n" -eq 0 ] && { echo "no testnet in $DIR"; return; }
    for ((i = 0; i < n; i++)); do
        pid=$(cat "$DIR/node$i.pid")
        state=dead
        kill -0 "$pid" 2>/dev/null && state=running
        echo "node$i pid=$pid $state api=$(api_url "$i")"
    done
}

case ${1:-} in
    start) start "${2:-3}" ;;
    stop) stop_all ;;
    status) status ;;
    *)
        echo "usage: $0 start [N] | status | stop" >&2
        exit 2
        ;;
esac
