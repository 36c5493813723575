#!/usr/bin/env bash
# Installs the pinned contract toolchain (package-lock.json): solc (solcjs), Foundry's anvil and OpenZeppelin, into
# contracts/node_modules. Idempotent: does nothing when the installed tree matches the lock file. Needs node ≥ 18
# and npm. Prints the anvil binary's path last.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.codex-lock.sha256
want=$(cat package.json package-lock.json | sha256sum | cut -d" " -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" || ! -x node_modules/.bin/anvil ]]; then
    command -v npm >/dev/null || { echo "setup.sh: npm not found; install Node.js 18 or newer" >&2; exit 1; }
    echo "setup.sh: installing solc, anvil and OpenZeppelin (pinned) into contracts/node_modules" >&2
    # npm ci refuses a lock file without the other platforms' optional anvil binaries (npm drops them when it
    # writes the lock); install keeps the pinned versions of package.json and the lock.
    npm install --no-audit --no-fund --loglevel=error >&2
    echo "$want" >"$stamp"
fi
echo "$PWD/node_modules/.bin/anvil"
