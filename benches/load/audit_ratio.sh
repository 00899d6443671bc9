#!/usr/bin/env bash
# Throughput with the audit trail on ÷ off, measured with run.sh, the runs
# interleaved (off, on, off, on, ...) so that other load on the machine hits
# both alike: the ratio within one run is what counts.
#
#   benches/load/audit_ratio.sh            # durable audit, 8 and 64 connections
#   AUDIT_ARGS="--audit-mode buffered" benches/load/audit_ratio.sh
#   AUDIT_STORE=postgres://postgres@127.0.0.1:5432/bench benches/load/audit_ratio.sh
#
# Environment: ROUNDS (off/on pairs per connection count, 2), CONNS ("8 64"),
# MODE (run.sh mode, quick), AUDIT_ARGS (more serve flags with audit on),
# AUDIT_STORE (a postgres:// database to keep the trail in, instead of a
# fresh folder; each run writes a log of its own with a fresh key),
# and whatever run.sh reads (MANDATE_BIN, CARGO_TARGET_DIR, DURATION, ...).
# Prints one line per run, then per connection count and case: the mean
# 2xx answers/s off and on (answers refused as overloaded do not count), their
# ratio, and server CPU µs per request off and on.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-8 64}
MODE=${MODE:-quick}
AUDIT_ARGS=${AUDIT_ARGS:-}
OUT=$(mktemp -d -t mandate-audit-ratio.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

results=$OUT/results.txt
: >"$results"
for c in $CONNS; do
    for round in $(seq 1 "$ROUNDS"); do
        for audit in off on; do
            args=""
            if [[ $audit == on ]]; then
                store=$(mktemp -d -t mandate-audit-store.XXXXXX)
                if [[ -n ${AUDIT_STORE:-} ]]; then
                    args="--audit-store $AUDIT_STORE --audit-key $store/audit.key $AUDIT_ARGS"
                else
                    args="--audit-store $store/audit $AUDIT_ARGS"
                fi
            fi
            log=$OUT/c$c-r$round-$audit
            if ! CONNECTIONS=$c SERVER_ARGS="$args" "$HERE/run.sh" "$MODE" >"$log.out" 2>"$log.err"; then
                echo "run c=$c round=$round audit=$audit reported errors (see below)" >&2
                tail -5 "$log.err" >&2
            fi
            [[ $audit == on ]] && rm -rf "$store"
            # Table rows: case req/s 2xx/s p50 p99 max non-2xx sock µs/req ...
            awk -v c="$c" -v r="$round" -v a="$audit" \
                '$1 ~ /^(bearer-warm|pop-one-use|ext-authz-bearer|ext-authz-pop)$/ && NF >= 9 {
                    print c, r, a, $1, $3, $9 }' "$log.out" | tee -a "$results"
        done
    done
done

echo
echo "connections case off_2xx/s on_2xx/s on/off off_µs/req on_µs/req (means of $ROUNDS round(s); AUDIT_ARGS='$AUDIT_ARGS')"
awk '{
        key = $1 " " $4
        if (!(key in seen)) { order[++n] = key; seen[key] = 1 }
        rps[key, $3] += $5; cpu[key, $3] += $6; runs[key, $3]++
    }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]
            off = rps[k, "off"] / runs[k, "off"]; on = rps[k, "on"] / runs[k, "on"]
            printf "%-3s %-18s %9.0f %9.0f %6.2f %8.1f %8.1f\n", substr(k, 1, index(k, " ") - 1),
                substr(k, index(k, " ") + 1), off, on, on / off,
                cpu[k, "off"] / runs[k, "off"], cpu[k, "on"] / runs[k, "on"]
        }
    }' "$results"
