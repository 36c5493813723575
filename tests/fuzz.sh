#!/usr/bin/env bash
# Fuzzing in CI: installs cargo-fuzz (pinned) if missing, builds every target of fuzz/ on the stable toolchain and
# runs each for a bounded time, failing if any input crashes a decoder. See fuzz/README.md.
#
#   FUZZ_SECONDS   seconds per target (default 20)
#   FUZZ_TARGETS   space-separated targets to run (default: all, from `cargo fuzz list`)
#   FUZZ_TARGET_DIR   build directory (default ~/.cache/codex-fuzz-target, outside the clone, reused across runs)
#   FUZZ_CORPUS_DIR   where each target's corpus grows (default ~/.cache/codex-fuzz-corpus; kept between runs so
#                     coverage accumulates; the committed seeds in fuzz/seeds/ are read every run)
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_CORPUS_DIR="${FUZZ_CORPUS_DIR:-$HOME/.cache/codex-fuzz-corpus}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/codex-fuzz-target}"

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cd fuzz
# `-s none`: AddressSanitizer needs a nightly compiler; the decoders are safe Rust, whose bounds and overflow
# checks (on in fuzz builds) turn every bug we look for into a panic, which libFuzzer reports as a crash.
echo "== cargo fuzz build (stable, no sanitizer)"
cargo fuzz build -s none

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
failed=()
for target in $targets; do
    echo "== fuzz $target for ${FUZZ_SECONDS}s"
    mkdir -p "$FUZZ_CORPUS_DIR/$target"
    set +e
    cargo fuzz run -s none "$target" "$FUZZ_CORPUS_DIR/$target" "seeds/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
        grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)'
    status="${PIPESTATUS[0]}"
    set -e
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/; reproduce with"
    echo "  cargo fuzz run -s none <target> fuzz/artifacts/<target>/<file>)"
    exit 1
fi
echo "fuzzing: no crashes"
