#!/usr/bin/env bash
# Load benchmark of `mandate serve --store` with wrk: see benches/load/README.md.
#
#   benches/load/run.sh quick        # 10 s per case, to check the script
#   benches/load/run.sh full         # 30 s per case
#   benches/load/run.sh soak [SECS]  # bearer load for SECS (default 600), RSS every 10 s
#
# Environment: THREADS (2), CONNECTIONS (32), DURATION (per case, seconds),
# POP_WINDOW (5m), POP_FACTOR (1.5), EVAL_WORKERS (serve --eval-workers;
# default: the server's, one per core), SERVER_ARGS (more serve flags),
# SERVER_PRELOAD (LD_PRELOAD for the server alone, e.g. an allocator),
# SERVER_ENV_VARS (NAME=VALUE ... for the server alone, e.g. MALLOC_ARENA_MAX=2), WARMUP (soak warm-up, 60 s),
# SAMPLE (soak RSS sampling interval, 10 s), KEEP=1 (keep the work folder),
# CARGO_TARGET_DIR, MANDATE_BIN (a `mandate` binary to measure instead of the
# one built here), and EXT_AUTHZ_* (see the ext_authz section below).
#
# Exit status: 0 when every case ran without a single error answer, 1 when
# the server answered anything but 2xx, a socket failed, the server died or
# the proofs ran out; 2 on a usage or setup error.
set -euo pipefail

usage() {
    echo "usage: $0 quick|full|soak [SECONDS]" >&2
    exit 2
}

MODE=${1:-quick}
SOAK_SECONDS=600
case "$MODE" in
quick) DURATION=${DURATION:-10} ;;
full) DURATION=${DURATION:-30} ;;
soak)
    SOAK_SECONDS=${2:-600}
    [[ $SOAK_SECONDS =~ ^[0-9]+$ ]] || usage
    ;;
*) usage ;;
esac
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
POP_WINDOW=${POP_WINDOW:-5m}
POP_FACTOR=${POP_FACTOR:-1.5}
WARMUP=${WARMUP:-60}
SAMPLE=${SAMPLE:-10}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

# The request every case makes: bob's reporter agent reads one dataset.
SERVICE=analytics
OPERATION=read
RESOURCE=/datasets/q3/revenue

# ext_authz: another endpoint is being added (token in `Authorization:
# Mandate <token>`, proof in `Mandate-PoP`). How it maps an HTTP request to
# service, operation and resource is its own design; these say what the
# proofs must sign and what to send. EXT_AUTHZ_HEADERS: extra headers,
# separated by `;` ("Name: value;Name: value").
EXT_AUTHZ_METHOD=${EXT_AUTHZ_METHOD:-GET}
EXT_AUTHZ_PATH=${EXT_AUTHZ_PATH:-/v1/ext_authz/$SERVICE$RESOURCE}
EXT_AUTHZ_SERVICE=${EXT_AUTHZ_SERVICE:-$SERVICE}
EXT_AUTHZ_OPERATION=${EXT_AUTHZ_OPERATION:-$OPERATION}
EXT_AUTHZ_RESOURCE=${EXT_AUTHZ_RESOURCE:-$RESOURCE}
EXT_AUTHZ_HEADERS=${EXT_AUTHZ_HEADERS:-}

say() { printf '== %s\n' "$*" >&2; }
die() {
    printf '\n!! %s\n' "$*" >&2
    exit 2
}

ERRORS=()
error() {
    printf '\n!!!!!!!! ERROR: %s\n\n' "$*" >&2
    ERRORS+=("$*")
}

# --- 1. tools ---------------------------------------------------------------

if ! command -v wrk >/dev/null; then
    say "installing wrk from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null
fi
command -v curl >/dev/null || die "curl is needed"

if [[ -n ${MANDATE_BIN:-} && -x $TARGET/release/examples/load_proofs ]]; then
    # A/B runs of prepared binaries: no build, which on a shared target
    # folder can wait minutes for cargo's lock.
    say "using $MANDATE_BIN (no build)"
else
    say "building mandate and the proof signer (release)"
    (cd "$ROOT" && cargo build --release --locked -p mandate-cli --bin mandate --example load_proofs)
fi
# MANDATE_BIN: another build of `mandate` to measure (an A/B comparison).
MANDATE=${MANDATE_BIN:-$TARGET/release/mandate}
SIGNER=$TARGET/release/examples/load_proofs
[[ -x $MANDATE && -x $SIGNER ]] || die "built binaries not found under $TARGET/release"

# --- 2. keys, tokens, server ------------------------------------------------

WORK=$(mktemp -d -t mandate-load.XXXXXX)
SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "work folder kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
cd "$WORK"

say "keys and tokens in $WORK"
for k in root orchestrator analytics reporter; do
    "$MANDATE" keygen --out "$k.key" >/dev/null
done

# Bearer: no agent key, narrowed twice offline (3 blocks).
"$MANDATE" issue --root-key root.key --key-id 1 --principal bob --agent batch-job \
    --right analytics:read --right analytics:list --ttl 2h --out bearer0.token >/dev/null
"$MANDATE" delegate --token @bearer0.token --operation read \
    --resource-prefix /datasets --out bearer1.token >/dev/null
"$MANDATE" delegate --token @bearer1.token --resource-prefix /datasets/q3 \
    --out bearer.token >/dev/null

# Keyed: orchestrator -> analytics -> reporter, two signed hops (3 blocks,
# 3 agents); the reporter acts and proves possession of its key.
"$MANDATE" issue --root-key root.key --key-id 1 --principal bob --agent orchestrator \
    --agent-key orchestrator.key.pub --right analytics:read --right analytics:list \
    --ttl 2h --out pop0.token >/dev/null
"$MANDATE" delegate --token @pop0.token --signer-key orchestrator.key \
    --to analytics --to-key analytics.key.pub --operation read \
    --resource-prefix /datasets --out pop1.token >/dev/null
"$MANDATE" delegate --token @pop1.token --signer-key analytics.key \
    --to reporter --to-key reporter.key.pub --resource-prefix /datasets/q3 \
    --out pop.token >/dev/null

for t in bearer pop; do
    "$MANDATE" inspect --token "@$t.token" --root-pub 1=root.key.pub >"$t.inspect"
    printf '   %-6s token: %d bytes, %d blocks, chain %s\n' "$t" "$(tr -d '\n' <"$t.token" | wc -c)" \
        "$(($(grep -c '^block ' "$t.inspect") + 1))" "$(sed -n 's/^chain: *//p' "$t.inspect")"
done

json_body() { # TOKEN_FILE [PROOF]: the AuthorizeRequest JSON
    local token
    token=$(tr -d '\n' <"$1")
    if [[ $# -ge 2 ]]; then
        printf '{"token":"%s","service":"%s","operation":"%s","resource":"%s","pop":"%s"}' \
            "$token" "$SERVICE" "$OPERATION" "$RESOURCE" "$2"
    else
        printf '{"token":"%s","service":"%s","operation":"%s","resource":"%s"}' \
            "$token" "$SERVICE" "$OPERATION" "$RESOURCE"
    fi
}
json_body bearer.token >bearer.json
json_body pop.token '@POP@' >pop.template

# The proxy endpoint's mapping: GET /analytics/datasets/... is analytics /
# read / /datasets/..., the request the authorize cases make.
cat >routes.toml <<EOF
[[route]]
service = "$SERVICE"
path = "/$SERVICE/datasets/**"
methods = ["GET"]
operation = "$OPERATION"
resource = "/datasets/{**}"
EOF

SERVER_FLAGS=(--pop-window "$POP_WINDOW" --ext-authz-mapping "$WORK/routes.toml")
[[ -n ${EVAL_WORKERS:-} ]] && SERVER_FLAGS+=(--eval-workers "$EVAL_WORKERS")
if [[ -n ${SERVER_ARGS:-} ]]; then
    read -r -a extra <<<"$SERVER_ARGS"
    SERVER_FLAGS+=("${extra[@]}")
fi
SERVER_ENV=()
if [[ -n ${SERVER_ENV_VARS:-} ]]; then
    read -r -a SERVER_ENV <<<"$SERVER_ENV_VARS"
fi
[[ -n ${SERVER_PRELOAD:-} ]] && SERVER_ENV+=("LD_PRELOAD=$SERVER_PRELOAD")
say "starting ${SERVER_ENV[*]:+${SERVER_ENV[*]} }mandate serve --store ${SERVER_FLAGS[*]}"
env "${SERVER_ENV[@]}" "$MANDATE" serve --store "$WORK/store" --root-pub "1=$WORK/root.key.pub" \
    --listen 127.0.0.1:0 "${SERVER_FLAGS[@]}" >server.out 2>server.err &
SERVER_PID=$!
URL=""
for _ in $(seq 1 100); do
    URL=$(grep -o 'http://[0-9.]*:[0-9]*' server.out 2>/dev/null | head -1 || true)
    [[ -n $URL ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || {
        cat server.err >&2
        die "the server exited"
    }
    sleep 0.1
done
[[ -n $URL ]] || die "the server printed no address: $(cat server.out server.err)"
say "server pid $SERVER_PID at $URL"

# One request of each kind before any load: a 200 that allows, and a replayed
# proof refused (so proofs really are one use each).
post() { # BODY_FILE -> "STATUS BODY"
    curl -sS -o post.out -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$1" "$URL/v1/authorize"
    printf ' %s' "$(head -c 400 post.out)"
}
answer=$(post bearer.json)
[[ $answer == "200 "*'"decision":"allow"'* ]] || die "bearer request not allowed: $answer"
proof=$("$MANDATE" pop --key reporter.key --token @pop.token \
    --service "$SERVICE" --operation "$OPERATION" --resource "$RESOURCE")
json_body pop.token "$proof" >one-pop.json
answer=$(post one-pop.json)
[[ $answer == "200 "*'"decision":"allow"'* ]] || die "request with proof not allowed: $answer"
answer=$(post one-pop.json)
[[ $answer == "403 "* ]] || die "a replayed proof was not refused with 403: $answer"
say "sanity: bearer 200, proof 200, replayed proof 403"

# --- 3. measuring -----------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)
server_ticks() { sed 's/.*) //' "/proc/$SERVER_PID/stat" | awk '{print $12 + $13}'; }
server_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
server_threads() { awk '/^Threads:/ {print $2}' "/proc/$SERVER_PID/status"; }
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; } # total idle
seconds() { awk -v t="$1" 'BEGIN {printf "%.2f", t}'; }

# `times` in a subshell reports that subshell's reaped children: wrk alone.
run_wrk() { # OUTFILE DURATION SCRIPT URL [ARGS...]
    local out=$1 duration=$2 script=$3 url=$4
    shift 4
    (
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "${duration}s" --timeout 10s --latency \
            -s "$HERE/$script" "$url" -- "$@"
        # Not in a pipeline: a forked pipeline member has no reaped children.
        times >"$out.times"
        tail -1 "$out.times" | awk '{
            n = split($1, u, /[ms]/); m = split($2, s, /[ms]/)
            printf "WRKCPU %.3f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
    ) >"$out" 2>&1
}

field() { # FILE KEY: a value of the RESULT line
    grep '^RESULT' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'
}

TABLE=()
# NAME OUTFILE CPU_BEFORE CPU_AFTER MACHINE_BEFORE MACHINE_AFTER
record() {
    local name=$1 out=$2 c0=$3 c1=$4 m0=$5 m1=$6
    if ! grep -q '^RESULT' "$out"; then
        cat "$out" >&2
        error "$name: wrk printed no result"
        return
    fi
    local req rps p50 p99 max non2xx sock exhausted dur wrkcpu
    req=$(field "$out" requests)
    dur=$(field "$out" duration_s)
    rps=$(field "$out" rps)
    p50=$(field "$out" p50_us)
    p99=$(field "$out" p99_us)
    max=$(field "$out" max_us)
    non2xx=$(field "$out" non2xx)
    sock=$(($(field "$out" connect_errors) + $(field "$out" read_errors) + $(field "$out" write_errors) + $(field "$out" timeouts)))
    exhausted=$(field "$out" exhausted_threads)
    wrkcpu=$(awk '/^WRKCPU/ {print $2}' "$out")
    local ok_rps server_cpu_s us_per_req server_pct wrk_pct machine_pct other_pct
    server_cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / hz}')
    us_per_req=$(awk -v s="$server_cpu_s" -v n="$req" 'BEGIN {printf "%.1f", (n > 0) ? s * 1e6 / n : 0}')
    ok_rps=$(awk -v n="$req" -v bad="$non2xx" -v d="$dur" 'BEGIN {printf "%.1f", (n - bad) / d}')
    server_pct=$(awk -v s="$server_cpu_s" -v d="$dur" 'BEGIN {printf "%.0f", 100 * s / d}')
    wrk_pct=$(awk -v s="${wrkcpu:-0}" -v d="$dur" 'BEGIN {printf "%.0f", 100 * s / d}')
    # Machine: busy share of all cores, in "% of one core" like the others;
    # "other" is what neither the server nor wrk used (other processes).
    read -r t0 i0 <<<"$m0"
    read -r t1 i1 <<<"$m1"
    machine_pct=$(awk -v t0="$t0" -v t1="$t1" -v i0="$i0" -v i1="$i1" -v hz="$CLK_TCK" -v d="$dur" \
        'BEGIN {printf "%.0f", 100 * ((t1 - t0) - (i1 - i0)) / hz / d}')
    other_pct=$((machine_pct - server_pct - wrk_pct))
    ((other_pct < 0)) && other_pct=0
    TABLE+=("$(printf '%-22s %9.0f %9.0f %8.2f %8.2f %8.2f %8s %6s %9s %7s %5s %6s' \
        "$name" "$rps" "$ok_rps" "$(awk -v v="$p50" 'BEGIN{print v/1000}')" \
        "$(awk -v v="$p99" 'BEGIN{print v/1000}')" "$(awk -v v="$max" 'BEGIN{print v/1000}')" \
        "$non2xx" "$sock" "$us_per_req" "$server_pct%" "$wrk_pct%" "$other_pct%")")
    LAST_RPS=$rps
    LAST_OK_RPS=$ok_rps
    LAST_P99=$p99
    LAST_BAD=$((non2xx + sock))
    if ((non2xx > 0)); then
        error "$name: $non2xx answers were not 2xx ($(grep '^ERROR_STATUSES' "$out" | cut -d' ' -f2-)); first: $(grep '^FIRST_ERROR' "$out" | cut -d' ' -f2-)"
    fi
    ((sock == 0)) || error "$name: $sock socket errors or timeouts"
    ((exhausted == 0)) || error "$name: $exhausted wrk threads ran out of proofs (raise POP_FACTOR)"
    kill -0 "$SERVER_PID" 2>/dev/null || error "$name: the server died: $(tail -5 server.err)"
}

run_case() { # NAME SCRIPT URL [ARGS...]
    local name=$1 script=$2 url=$3
    shift 3
    local out="$WORK/$name.wrk" c0 c1 m0 m1
    say "case $name: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s $url"
    c0=$(server_ticks)
    m0=$(machine_ticks)
    run_wrk "$out" "$DURATION" "$script" "$url" "$@" || true
    c1=$(server_ticks)
    m1=$(machine_ticks)
    grep -v '^\(RESULT\|WRKCPU\)' "$out" >&2 || true
    record "$name" "$out" "$c0" "$c1" "$m0" "$m1"
}

sign_proofs() { # TOKEN_FILE OUT COUNT SERVICE OPERATION RESOURCE
    say "signing $3 proofs of possession (one use each)"
    "$SIGNER" --key reporter.key --token "$1" --out "$2" --count "$3" \
        --service "$4" --operation "$5" --resource "$6"
}

proof_count() { # RPS DURATION: proofs for DURATION at POP_FACTOR x RPS
    awk -v r="$1" -v d="$2" -v f="$POP_FACTOR" 'BEGIN {printf "%d", r * d * f + 20000}'
}

header_args=()
if [[ -n $EXT_AUTHZ_HEADERS ]]; then
    IFS=';' read -r -a header_args <<<"$EXT_AUTHZ_HEADERS"
fi

print_table() {
    local title=$1
    echo
    echo "## $title"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "server: ${SERVER_ENV[*]:+${SERVER_ENV[*]} }mandate serve --store ${SERVER_FLAGS[*]}; load: wrk -t$THREADS -c$CONNECTIONS on the same machine, ${DURATION}s per case"
    echo "latency in ms; CPU µs/req = server utime+stime / requests; server/wrk/other = share of one core"
    printf '%-22s %9s %9s %8s %8s %8s %8s %6s %9s %7s %5s %6s\n' \
        case req/s 2xx/s p50 p99 max non-2xx sock µs/req server wrk other
    for row in "${TABLE[@]}"; do echo "$row"; done
}

finish() {
    if ((${#ERRORS[@]} > 0)); then
        printf '\nFAILED: %d error(s):\n' "${#ERRORS[@]}" >&2
        printf '  - %s\n' "${ERRORS[@]}" >&2
        exit 1
    fi
    echo
    echo "no errors: every answer was 2xx"
}

# --- soak ---------------------------------------------------------------------

if [[ $MODE == soak ]]; then
    ((SOAK_SECONDS > WARMUP)) || die "a soak must last longer than the warm-up ($WARMUP s)"
    say "soak: bearer (warm) load for ${SOAK_SECONDS}s, RSS every ${SAMPLE}s, warm-up ${WARMUP}s"
    rss_start=$(server_rss_kb)
    c0=$(server_ticks)
    m0=$(machine_ticks)
    run_wrk "$WORK/soak.wrk" "$SOAK_SECONDS" authorize.lua "$URL/v1/authorize" bearer "$WORK/bearer.json" &
    WRK_JOB=$!
    echo "elapsed_s rss_kb threads" >rss.txt
    start=$(date +%s)
    rss_warm=""
    while kill -0 "$WRK_JOB" 2>/dev/null; do
        sleep "$SAMPLE"
        kill -0 "$SERVER_PID" 2>/dev/null || break
        elapsed=$(($(date +%s) - start))
        rss=$(server_rss_kb)
        nthreads=$(server_threads)
        kill -0 "$WRK_JOB" 2>/dev/null || break # only samples under load
        echo "$elapsed $rss $nthreads" >>rss.txt
        printf '   t=%4ss RSS %s kB, %s threads\n' "$elapsed" "$rss" "$nthreads" >&2
        [[ -z $rss_warm ]] && ((elapsed >= WARMUP)) && rss_warm=$rss
    done
    wait "$WRK_JOB" || true
    c1=$(server_ticks)
    m1=$(machine_ticks)
    DURATION=$SOAK_SECONDS
    grep -v '^\(RESULT\|WRKCPU\)' "$WORK/soak.wrk" >&2 || true
    record soak-bearer-warm "$WORK/soak.wrk" "$c0" "$c1" "$m0" "$m1"
    rss_end=$(tail -1 rss.txt | awk '{print $2}')
    rss_max=$(awk 'NR > 1 && $2 > m {m = $2} END {print m}' rss.txt)
    [[ -n $rss_warm ]] || {
        error "no RSS sample after the warm-up"
        rss_warm=$rss_end
    }
    growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN {printf "%.1f", 100 * (b - a) / a}')
    print_table "soak, ${SOAK_SECONDS}s"
    echo
    echo "RSS: before load ${rss_start} kB, after warm-up (${WARMUP}s) ${rss_warm} kB, end ${rss_end} kB, max ${rss_max} kB; growth after warm-up ${growth}%"
    echo "samples (elapsed_s:rss_kB:threads):"
    tail -n +2 rss.txt | awk '{printf "%s:%s:%s%s", $1, $2, $3, (NR % 8 == 0) ? "\n" : "  "} END {print ""}'
    awk -v g="$growth" 'BEGIN {exit !(g <= 5)}' &&
        echo "goal RSS growth <= 5%: met" ||
        echo "goal RSS growth <= 5%: MISSED ($growth%)"
    finish
    exit 0
fi

# --- quick / full -------------------------------------------------------------

run_case bearer-warm authorize.lua "$URL/v1/authorize" bearer "$WORK/bearer.json"
BEARER_RPS=${LAST_RPS:-1000}
BEARER_OK_RPS=${LAST_OK_RPS:-0}
BEARER_BAD=${LAST_BAD:-1}
BEARER_P99=${LAST_P99:-0}

n=$(proof_count "$BEARER_RPS" "$DURATION")
sign_proofs pop.token proofs.txt "$n" "$SERVICE" "$OPERATION" "$RESOURCE"
run_case pop-one-use authorize.lua "$URL/v1/authorize" pop "$WORK/pop.template" "$WORK/proofs.txt" "$THREADS"
rm -f proofs.txt

# ext_authz, when the server has it.
ext_url="$URL$EXT_AUTHZ_PATH"
ext_status=$(curl -sS -o ext.out -w '%{http_code}' -X "$EXT_AUTHZ_METHOD" \
    -H "Authorization: Mandate $(tr -d '\n' <bearer.token)" \
    "${header_args[@]/#/-H}" "$ext_url" || echo 000)
if [[ $ext_status == 404 ]]; then
    say "ext_authz: SKIPPED — $EXT_AUTHZ_METHOD $EXT_AUTHZ_PATH answers 404 (endpoint not in this build)"
    TABLE+=("$(printf '%-22s %s' ext_authz "skipped: $EXT_AUTHZ_PATH answered 404")")
elif [[ $ext_status != 2* ]]; then
    error "ext_authz probe: $EXT_AUTHZ_METHOD $EXT_AUTHZ_PATH answered $ext_status: $(head -c 300 ext.out)"
else
    run_case ext-authz-bearer ext_authz.lua "$ext_url" bearer "$WORK/bearer.token" - "$THREADS" \
        "$EXT_AUTHZ_METHOD" "${header_args[@]}"
    n=$(proof_count "$LAST_RPS" "$DURATION")
    sign_proofs pop.token ext-proofs.txt "$n" "$EXT_AUTHZ_SERVICE" "$EXT_AUTHZ_OPERATION" "$EXT_AUTHZ_RESOURCE"
    run_case ext-authz-pop ext_authz.lua "$ext_url" pop "$WORK/pop.token" "$WORK/ext-proofs.txt" "$THREADS" \
        "$EXT_AUTHZ_METHOD" "${header_args[@]}"
    rm -f ext-proofs.txt
fi

print_table "$MODE"
echo
awk -v r="$BEARER_OK_RPS" -v p="$BEARER_P99" -v bad="$BEARER_BAD" 'BEGIN {exit !(r >= 10000 && p <= 5000 && bad == 0)}' &&
    echo "goal bearer warm >= 10000 req/s at p99 <= 5 ms, no errors: met" ||
    echo "goal bearer warm >= 10000 req/s at p99 <= 5 ms, no errors: MISSED ($(printf '%.0f' "$BEARER_OK_RPS") 2xx/s, p99 $(awk -v p="$BEARER_P99" 'BEGIN{print p/1000}') ms, $BEARER_BAD errors)"
finish
