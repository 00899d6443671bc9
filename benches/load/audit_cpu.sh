#!/usr/bin/env bash
# The CPU the audit trail adds to each decision, measured through the real
# server: two `mandate serve` processes started once, one without and one
# with `--audit-store`, loaded in turn by the same wrk load (the order
# alternates each round, so drift and other load on the machine hit both
# alike). For each run: the server's utime + stime from /proc/PID/stat over
# the run ÷ the requests answered = CPU µs per request. Reported per case:
# the median over the rounds, off and on, the median of the rounds' paired
# differences (on − off: the CPU the trail adds per request) and the median
# throughput ratio on ÷ off.
#
#   benches/load/audit_cpu.sh                    # bearer and pop, 32 connections
#   ROUNDS=7 DURATION=10 CASES=bearer benches/load/audit_cpu.sh
#   AUDIT_ARGS="--audit-mode buffered" benches/load/audit_cpu.sh
#   BUFFERED=1 benches/load/audit_cpu.sh
#       # a third server, buffered (flushed once a second), loaded in the
#       # same rounds: durable minus buffered is what the flush before each
#       # answer costs, apart from the record's own work
#   MANDATE_BIN=/tmp/mandate-a benches/load/audit_cpu.sh   # another build
#   CONNECTIONS=64 WRK_PACE_MS=4 CASES=bearer benches/load/audit_cpu.sh
#       # paced: each connection waits 4 ms between requests, so both servers
#       # answer about the same rate (not each its own maximum) and CPU per
#       # request compares the same work, not a busier server's against an
#       # idler one's thread wake-ups
#
# Environment: ROUNDS (5), DURATION (seconds per run, 8), CONNECTIONS (32),
# THREADS (wrk threads, 2), CASES ("bearer pop": warm bearer requests, and
# requests each with a fresh proof of possession), AUDIT_ARGS (more serve
# flags for the audited server), BUFFERED (1: also a buffered server),
# MANDATE_BIN (the `mandate` to measure;
# default: the release build in CARGO_TARGET_DIR or target/, built if
# missing), KEEP=1 to keep the work folder. Needs wrk and curl; the pop case
# needs the proof signer (`--example load_proofs`, built with the binary).
# Exit status 1 when any answer was not 2xx.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
CASES=${CASES:-bearer pop}
AUDIT_ARGS=${AUDIT_ARGS:-}
BUFFERED=${BUFFERED:-0}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVICE=analytics
OPERATION=read
RESOURCE=/datasets/q3/revenue

say() { printf '== %s\n' "$*" >&2; }
die() {
    printf '\n!! %s\n' "$*" >&2
    exit 2
}
command -v wrk >/dev/null || die "wrk is needed (apt-get install wrk)"
command -v curl >/dev/null || die "curl is needed"

MANDATE=${MANDATE_BIN:-$TARGET/release/mandate}
SIGNER=$TARGET/release/examples/load_proofs
if [[ ! -x $MANDATE || ( $CASES == *pop* && ! -x $SIGNER ) ]]; then
    say "building mandate and the proof signer (release)"
    (cd "$ROOT" && cargo build --release --locked -p mandate-cli --bin mandate --example load_proofs)
fi

WORK=$(mktemp -d -t mandate-audit-cpu.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP:-0} == 1 ]]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
cd "$WORK"

# The tokens of run.sh: bearer (3 blocks) and keyed orchestrator -> analytics
# -> reporter (3 blocks, 3 agents, a proof of possession per request).
for k in root orchestrator analytics reporter; do
    "$MANDATE" keygen --out "$k.key" >/dev/null
done
"$MANDATE" issue --root-key root.key --key-id 1 --principal bob --agent batch-job \
    --right analytics:read --right analytics:list --ttl 2h --out bearer0.token >/dev/null
"$MANDATE" delegate --token @bearer0.token --operation read \
    --resource-prefix /datasets --out bearer1.token >/dev/null
"$MANDATE" delegate --token @bearer1.token --resource-prefix /datasets/q3 \
    --out bearer.token >/dev/null
"$MANDATE" issue --root-key root.key --key-id 1 --principal bob --agent orchestrator \
    --agent-key orchestrator.key.pub --right analytics:read --right analytics:list \
    --ttl 2h --out pop0.token >/dev/null
"$MANDATE" delegate --token @pop0.token --signer-key orchestrator.key \
    --to analytics --to-key analytics.key.pub --operation read \
    --resource-prefix /datasets --out pop1.token >/dev/null
"$MANDATE" delegate --token @pop1.token --signer-key analytics.key \
    --to reporter --to-key reporter.key.pub --resource-prefix /datasets/q3 \
    --out pop.token >/dev/null
printf '{"token":"%s","service":"%s","operation":"%s","resource":"%s"}' \
    "$(tr -d '\n' <bearer.token)" "$SERVICE" "$OPERATION" "$RESOURCE" >bearer.json
printf '{"token":"%s","service":"%s","operation":"%s","resource":"%s","pop":"@POP@"}' \
    "$(tr -d '\n' <pop.token)" "$SERVICE" "$OPERATION" "$RESOURCE" >pop.template

declare -A URL PID
start_server() { # NAME [SERVE FLAGS...]
    local name=$1
    shift
    "$MANDATE" serve --store "$WORK/$name-store" --root-pub "1=$WORK/root.key.pub" \
        --listen 127.0.0.1:0 --pop-window 10m "$@" >"$name.out" 2>"$name.err" &
    PID[$name]=$!
    PIDS+=("$!")
    for _ in $(seq 1 100); do
        URL[$name]=$(grep -o 'http://[0-9.]*:[0-9]*' "$name.out" 2>/dev/null | head -1 || true)
        [[ -n ${URL[$name]} ]] && break
        kill -0 "${PID[$name]}" 2>/dev/null || die "server $name exited: $(cat "$name.err")"
        sleep 0.1
    done
    [[ -n ${URL[$name]} ]] || die "server $name printed no address"
    local answer
    answer=$(curl -sS -H 'Content-Type: application/json' --data-binary @bearer.json "${URL[$name]}/v1/authorize")
    [[ $answer == *'"decision":"allow"'* ]] || die "server $name did not allow the bearer request: $answer"
    say "server $name: pid ${PID[$name]} at ${URL[$name]}"
}
read -r -a audit_extra <<<"$AUDIT_ARGS"
start_server off
start_server on --audit-store "$WORK/audit" "${audit_extra[@]}"
SERVERS=(off on)
if [[ $BUFFERED == 1 ]]; then
    start_server buf --audit-store "$WORK/audit-buffered" --audit-mode buffered
    SERVERS+=(buf)
fi

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# The audit writer thread's CPU ticks (0 when there is none).
writer_ticks() {
    local t sum=0
    for t in /proc/"$1"/task/*; do
        [[ $(cat "$t/comm" 2>/dev/null) == mandate-audit* ]] &&
            sum=$((sum + $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')))
    done
    echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)
field() { grep '^RESULT' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

FAILED=0
results=$WORK/results.txt
: >"$results"
run() { # CASE SERVER ROUND
    local case=$1 name=$2 round=$3 out="$WORK/$1-$2-$3.wrk" args
    if [[ $case == bearer ]]; then
        args=(bearer "$WORK/bearer.json")
    else
        # Enough proofs for the fastest rate seen so far, used once each.
        local n
        n=$(awk -v r="${BEST_RPS:-20000}" -v d="$DURATION" 'BEGIN {printf "%d", r * d * 1.5 + 10000}')
        "$SIGNER" --key reporter.key --token pop.token --out proofs.txt --count "$n" \
            --service "$SERVICE" --operation "$OPERATION" --resource "$RESOURCE"
        args=(pop "$WORK/pop.template" "$WORK/proofs.txt" "$THREADS")
    fi
    local c0 c1 w0 w1
    c0=$(ticks "${PID[$name]}")
    w0=$(writer_ticks "${PID[$name]}")
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s \
        -s "$HERE/authorize.lua" "${URL[$name]}/v1/authorize" -- "${args[@]}" >"$out" 2>&1 || true
    c1=$(ticks "${PID[$name]}")
    w1=$(writer_ticks "${PID[$name]}")
    local req rps bad
    req=$(field "$out" requests)
    rps=$(field "$out" rps)
    bad=$(($(field "$out" non2xx) + $(field "$out" timeouts) + $(field "$out" exhausted_threads)))
    if [[ -z $req ]] || ((bad > 0)); then
        say "ERROR $case $name round $round: $(grep -v '^RESULT' "$out" | tail -3)"
        FAILED=1
    fi
    [[ -n $req && $round != 0 ]] || return 0
    awk -v c="$case" -v s="$name" -v r="$round" -v n="$req" -v rps="$rps" -v t="$((c1 - c0))" \
        -v w="$((w1 - w0))" -v hz="$CLK_TCK" \
        'BEGIN {printf "%s %s %s %.1f %.1f %.1f\n", c, s, r, rps, t / hz * 1e6 / n, w / hz * 1e6 / n}' |
        tee -a "$results" >&2
    BEST_RPS=$(awk -v a="${BEST_RPS:-0}" -v b="$rps" 'BEGIN {print (b > a) ? b : a}')
}

say "rounds: $ROUNDS x ${DURATION}s per server and case, wrk -t$THREADS -c$CONNECTIONS; audit: --audit-store ${AUDIT_ARGS}"
for case in $CASES; do
    # One unmeasured run each: caches, replay cache, the log's first segment.
    DURATION_SAVED=$DURATION
    DURATION=2
    for name in "${SERVERS[@]}"; do run "$case" "$name" 0 >/dev/null 2>&1; done
    DURATION=$DURATION_SAVED
    for round in $(seq 1 "$ROUNDS"); do
        # Each round starts with the next server; with three, odd rounds
        # also run the list backwards, so no server always follows the same
        # one (with two, the rotation alone alternates them).
        n=${#SERVERS[@]}
        order=()
        for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(((round + i) % n))]}"); done
        if ((n > 2 && round % 2)); then
            for ((i = n - 1; i >= 0; i--)); do run "$case" "${order[$i]}" "$round"; done
        else
            for name in "${order[@]}"; do run "$case" "$name" "$round"; done
        fi
    done
done

echo
echo "## audit CPU: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $ROUNDS rounds x ${DURATION}s, wrk -t$THREADS -c$CONNECTIONS"
buf_note=""
[[ $BUFFERED == 1 ]] && buf_note="; buf: --audit-store DIR --audit-mode buffered"
echo "on: --audit-store DIR ${AUDIT_ARGS}${buf_note}; binary: $MANDATE"
echo "medians over the rounds; ratio and added = medians of the rounds' paired (server ÷ off) req/s and (server - off) CPU µs/req; writer = the audit writer thread's µs/req"
printf '%-8s %-6s %10s %10s %8s %10s %10s %10s %10s\n' case server off_req/s req/s ratio off_µs/req µs/req added_µs writer_µs
awk '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { rps[$1, $2] = rps[$1, $2] " " $4; cpu[$1, $2] = cpu[$1, $2] " " $5; wr[$1, $2] = wr[$1, $2] " " $6
      by[$1, $2, $3] = $5; byr[$1, $2, $3] = $4
      if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
      if (!(($1, $2) in has)) { has[$1, $2] = 1; if ($2 != "off") servers[$1] = servers[$1] " " $2 }
      rounds[$1, $3] = 1 }
    END {
        for (i = 1; i <= n; i++) {
            c = order[i]; m = split(servers[c], list, " ")
            for (j = 1; j <= m; j++) {
                s = list[j]; diffs = ""; ratios = ""
                for (k in rounds) { split(k, p, SUBSEP); if (p[1] != c) continue
                    r = p[2]; if (((c, s, r) in by) && ((c, "off", r) in by)) {
                        diffs = diffs " " (by[c, s, r] - by[c, "off", r]); ratios = ratios " " (byr[c, s, r] / byr[c, "off", r]) } }
                printf "%-8s %-6s %10.0f %10.0f %8.2f %10.1f %10.1f %10.1f %10.1f\n", c, s, median(rps[c, "off"]), median(rps[c, s]),
                    median(ratios), median(cpu[c, "off"]), median(cpu[c, s]), median(diffs), median(wr[c, s])
            }
        }
    }' "$results"
exit "$FAILED"
