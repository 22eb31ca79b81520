#!/usr/bin/env bash
# A long run of one fuzz target (README.md, "Long runs"): `fuzz/long.sh <target> [seconds]`.
# Builds the targets, copies the target's binary aside (so a rebuild during the run does not
# touch it), runs it under `nice -n 10` for `seconds` (default 600) on a working corpus under
# target/long/ seeded from corpus/<target>, and prints the figures README.md records: wall
# time, executions, libFuzzer's final coverage line, corpus size, findings.
set -euo pipefail
cd "$(dirname "$0")"

target="${1:?usage: fuzz/long.sh <target> [seconds]}"
seconds="${2:-600}"
[ -n "${FUZZ_NO_BUILD:-}" ] || cargo fuzz build --sanitizer none "$target"

long="target/long"
mkdir -p "$long/bin" "$long/corpus/$target" "$long/logs" "artifacts/$target"
cp "target/x86_64-unknown-linux-gnu/release/$target" "$long/bin/$target"
log="$long/logs/$target.log"

start=$(date +%s)
status=0
nice -n 10 "$long/bin/$target" "$long/corpus/$target" "corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
wall=$(( $(date +%s) - start ))

execs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" || echo "?")
final=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
files=$(find "$long/corpus/$target" -type f | wc -l)
bytes=$(du -sb "$long/corpus/$target" | cut -f1)
findings=$(find "artifacts/$target" -type f | wc -l)
echo "$target: status $status, wall ${wall} s, ${execs} execs, corpus ${files} files / ${bytes} B, ${findings} artifacts"
echo "$target: last status line: $final"
exit "$status"
