#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) on its committed corpus and
# prints one line per target: `target: N execs, crashes: K`.
#
#   fuzz/run-all.sh 60                  # smoke run
#   fuzz/run-all.sh 3600                # long run (aim for >= 10M execs each)
#   TARGETS="http_bodies" fuzz/run-all.sh 600
#   JOBS=2 fuzz/run-all.sh 3600         # libFuzzer fork mode: keeps going
#                                       # past crashes and counts them all
#   SANITIZER=address fuzz/run-all.sh 600   # with AddressSanitizer
#
#   CORPUS_OUT=/tmp/grown fuzz/run-all.sh 600 # keep each grown corpus in
#                                       # /tmp/grown/<target> (for cmin)
#
# The default is no sanitizer (`-s none`): Mandate forbids `unsafe`, and
# its dependencies' unsafe code is widely used and tested, so ASan adds
# little that a panic, an abort or a stack overflow would not show, and
# costs 2-3x the executions. Panics, stack overflows, OOMs and timeouts are
# caught either way. Use SANITIZER=address for a memory-checked run.
#
# Leak detection is off: the HTTP target's tokio blocking-pool threads
# outlive an iteration by design, which LeakSanitizer reports at exit.
# Crash inputs (and slow units, which are not counted) land in
# fuzz/artifacts/<target>/; new coverage in a scratch
# copy of the corpus (the committed seeds are never modified). Logs are in
# fuzz/logs/<target>.log. Exits 1 when any target crashed.
set -u
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-60}"
TARGETS="${TARGETS:-token_authorize appended_block delegate_flags http_bodies}"
JOBS="${JOBS:-0}"
RSS_MB="${RSS_MB:-2048}"
SANITIZER="${SANITIZER:-none}"

# libFuzzer's -detect_leaks=0 stops leak checks between inputs; LeakSanitizer
# still runs at exit unless ASan is told too.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
cargo +nightly fuzz build --release -s "$SANITIZER" >/dev/null || { echo "build failed"; exit 2; }
mkdir -p logs
status=0
for target in $TARGETS; do
    scratch="$(mktemp -d)"
    cp -r "corpus/$target/." "$scratch/" 2>/dev/null || true
    mkdir -p "artifacts/$target"
    # libFuzzer also writes `slow-unit-*` (over 10 s, not a failure): only
    # crashes, OOMs, timeouts and leaks count.
    failures() {
        find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' \
            -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l
    }
    before="$(failures)"
    extra=()
    if [ "$JOBS" -gt 0 ]; then
        extra=(-fork="$JOBS" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
    fi
    cargo +nightly fuzz run --release -s "$SANITIZER" "$target" "$scratch" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_MB" -timeout=30 -detect_leaks=0 \
        -print_final_stats=1 "${extra[@]}" >"logs/$target.log" 2>&1
    after="$(failures)"
    crashes=$((after - before))
    # Non-fork runs end with `stat::number_of_executed_units: N`; fork mode
    # prints `#N: ... ` progress lines.
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$target.log" \
        | grep -o '[0-9]*$' | awk '{s+=$1} END {print s+0}')"
    if [ "$execs" = "0" ]; then
        execs="$(grep -o '^#[0-9]*' "logs/$target.log" | tail -1 | tr -d '#')"
    fi
    echo "$target: ${execs:-0} execs, crashes: $crashes"
    [ "$crashes" -gt 0 ] && status=1
    if [ -n "${CORPUS_OUT:-}" ]; then
        mkdir -p "$CORPUS_OUT"
        rm -rf "${CORPUS_OUT:?}/$target"
        mv "$scratch" "$CORPUS_OUT/$target"
    else
        rm -rf "$scratch"
    fi
done
exit $status
