#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short time on its committed seeds (the CI smoke
# run; scripts/test.sh calls it). A crash or a failed property stops with a non-zero status
# and libFuzzer's report; the input is saved under fuzz/artifacts/<target>/.
#
# Stable toolchain, no sanitizer: see README.md for why. FUZZ_SMOKE_SECONDS sets the time per
# target (default 10).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SMOKE_SECONDS:-10}"
# This workspace is outside the root one, so the root's fmt check does not reach it.
cargo fmt --all --check
build_start=$SECONDS
cargo fuzz build --sanitizer none
echo "fuzz targets built in $((SECONDS - build_start)) s"

# New inputs go to a scratch directory; the committed seeds are only read.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
run_start=$SECONDS
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target"
    echo "--- $target (${seconds} s)"
    if ! cargo fuzz run --sanitizer none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        2>"$scratch/$target.log"; then
        tail -n 60 "$scratch/$target.log" >&2
        echo "error: fuzz target $target failed (input saved under fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units)' "$scratch/$target.log" || true
done
echo "fuzz smoke runs done in $((SECONDS - run_start)) s"
