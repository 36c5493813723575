#!/usr/bin/env bash
# Rebuilds contracts/out/*.json from contracts/src/*.sol with the pinned solc. `build.sh --check` only compares
# (CI fails when the committed artifacts are stale).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh >/dev/null
node build.mjs "$@"
