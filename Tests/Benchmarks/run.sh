#!/usr/bin/env bash
# Side-by-side benchmark of myorg-gateway against a bare nginx origin, nghttpx and HAProxy (plain TLS proxies)
# and HAProxy with jwt_verify, in one run, with h2load (HTTP/2 over TLS) and wrk (HTTP/1.1 over TLS).
# Prints one table of req/s, p99 latency and proxy CPU µs per request, with ratios. See README.md beside it.
# With --rounds N the measured rows are repeated N times, interleaved, and the table gives medians and spreads.
#
# Everything listens on 127.0.0.1 on ports found free at start; every process this script starts is stopped
# by its PID on exit; every load run is bounded in time. Not run by CI (too heavy).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH="python3 $HERE/bench.py"

# ------------------------------------------------------------------------------------------------ options
DURATION=8
WARMUP=1
CONNS=16
STREAMS=10
WORKERS=2
ORGS=64
H2LOAD_PROCS=4
FRESH_TOKENS=20000
ONLY="bare,nghttpx,haproxy,gateway,haproxy-jwt,gateway-policy"
GATEWAY_LOG=0
REAL_TIER=0
BUILD=0
KEEP_LOGS=0
GATEWAY_BIN=""
ROUNDS=1

usage() {
    cat <<EOF
usage: Tests/Benchmarks/run.sh [options]
  --quick              ~1 minute: 3 s runs, 5,000 fresh tokens (~1 minute more per extra round)
  --rounds N           measure every row N times, interleaved (round 1 of every row, then round 2, ...), and
                       report the median of each figure with the spread of req/s (default $ROUNDS;
                       use 3 for figures you report)
  --duration S         seconds per measured run (default $DURATION)
  --warmup S           seconds of discarded warm-up before each run (default $WARMUP)
  --conns N            connections (default $CONNS); h2load uses -m $STREAMS streams per connection
  --h2load-procs N     h2load processes (one token each) for the reused-token rows (default $H2LOAD_PROCS)
  --workers N          worker processes/threads/loops for nginx, nghttpx, HAProxy and the gateway (default $WORKERS)
  --only LIST          comma-separated subset of: $ONLY
  --gateway-log        also run the gateway scenarios with event logging to a file (the "log events" check)
  --real-tier          use the tier table's real private_performance figures (160/16 rps: most requests get 429)
                       instead of the same tier raised to 1,000,000 rps so the limiter admits everything
  --fresh-tokens N     tokens minted for each fresh-token run, HTTP/1.1 and HTTP/2 (default $FRESH_TOKENS; each sent once)
  --gateway PATH       the myorg-gateway binary (default: .build/release/myorg-gateway)
  --build              run 'swift build -c release --product myorg-gateway' first
  --keep-logs          keep h2load's per-request logs in the results directory
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) DURATION=3; FRESH_TOKENS=5000 ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --workers) WORKERS=$2; shift ;;
        --h2load-procs) H2LOAD_PROCS=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --gateway-log) GATEWAY_LOG=1 ;;
        --real-tier) REAL_TIER=1 ;;
        --fresh-tokens) FRESH_TOKENS=$2; shift ;;
        --gateway) GATEWAY_BIN=$2; shift ;;
        --build) BUILD=1 ;;
        --keep-logs) KEEP_LOGS=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "run.sh: --rounds needs a positive whole number, not '$ROUNDS'" >&2
    exit 2
fi

want() { [[ ",$ONLY," == *",$1,"* ]]; }

for tool in h2load wrk nginx openssl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 1; }
done

# ------------------------------------------------------------------------------------------------ processes
TMP=$(mktemp -d /tmp/myorg-bench.XXXXXX)
chmod 700 "$TMP"
STARTED=()

stop_pid() {
    local pid=$1 kids i p rest=()
    # Forgotten once stopped: with several rounds servers are started and stopped many times, and a reaped PID
    # may be reused by an unrelated process, which the exit trap must then not signal.
    for p in ${STARTED[@]+"${STARTED[@]}"}; do [ "$p" = "$pid" ] || rest+=("$p"); done
    STARTED=(${rest[@]+"${rest[@]}"})
    kill -0 "$pid" 2>/dev/null || return 0
    # Worker processes (nginx, nghttpx) are remembered before the parent goes, and stopped by PID if left over.
    kids=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
}

TABLE_DONE=0
finish() {
    [ "$TABLE_DONE" = 1 ] && return 0
    TABLE_DONE=1
    [ -n "${OUT:-}" ] && [ -f "$OUT/results.jsonl" ] || return 0
    echo "uptime after: $(uptime)" | tee -a "$OUT/environment.txt"
    echo
    $BENCH table "$OUT" || true
    echo
    echo "Raw outputs, configurations and table: $OUT"
}

MEASURE_PID=""
cleanup() {
    local i
    # bench.py stops its load generators when it gets SIGTERM.
    if [ -n "$MEASURE_PID" ]; then
        kill -TERM "$MEASURE_PID" 2>/dev/null || true
        wait "$MEASURE_PID" 2>/dev/null || true
    fi
    local pids=(${STARTED[@]+"${STARTED[@]}"})
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[$i]}"; done
    rm -rf "$TMP"
    finish
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background with its output in $TMP/NAME.log; sets PID.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PID=$!
    STARTED+=("$PID")
}

# wait_port PORT PID NAME: until something accepts on 127.0.0.1:PORT (10 s); fails if the process died first.
wait_port() {
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "run.sh: $3 exited at start:" >&2
            tail -20 "$TMP/$3.log" >&2 || true
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "run.sh: $3 did not listen on 127.0.0.1:$1 within 10 s" >&2
    tail -20 "$TMP/$3.log" >&2 || true
    return 1
}

# probe NAME URL [HEADER-FILE]: one request with curl before the load, so that a misconfigured scenario says
# why at once instead of filling a run with errors. Headers come from a file: no token on a command line.
probe() {
    command -v curl >/dev/null || return 0
    local name=$1 url=$2 hdr=() code
    [ -n "${3:-}" ] && hdr=(-H "@$3")
    code=$(curl -sk --max-time 5 -o "$TMP/probe.body" -w '%{http_code}' ${hdr[@]+"${hdr[@]}"} "$url" || true)
    if [ "$code" != 200 ]; then
        echo "   warning: $name answered $code to a probe: $(head -c 300 "$TMP/probe.body" 2>/dev/null)" |
            tee -a "$OUT/environment.txt"
    fi
}

# ------------------------------------------------------------------------------------------------ results
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$HERE/results/$STAMP"
# Where this round's raw outputs go: raw/ for a single round, raw/roundN/ with several (bench.py measure --round
# writes to the same place), so that every round's outputs are kept.
RAW="$OUT/raw"
mkdir -p "$OUT/raw" "$OUT/configs"
{
    echo "date: $(date -Is)"
    echo "host: $(uname -srm), $(nproc) cores"
    echo "uptime before: $(uptime)"
    echo "options: duration=${DURATION}s warmup=${WARMUP}s conns=$CONNS streams=$STREAMS workers=$WORKERS" \
        "orgs=$ORGS h2load_procs=$H2LOAD_PROCS fresh_tokens=$FRESH_TOKENS real_tier=$REAL_TIER gateway_log=$GATEWAY_LOG" \
        "rounds=$ROUNDS"
    echo "versions: $(h2load --version | head -1); $(wrk -v 2>&1 | head -1 | cut -c1-40);" \
        "$(nginx -v 2>&1); $(haproxy -v 2>/dev/null | head -1 | cut -c1-40); $(nghttpx --version 2>/dev/null | head -1)"
} | tee "$OUT/environment.txt"

ROUND=1
measure() { # measure ID SCENARIO TOOL MODE URL PIDS [extra args for bench.py measure]
    local id=$1 scenario=$2 tool=$3 mode=$4 url=$5 pids=$6
    shift 6
    local extra=()
    [ "$KEEP_LOGS" = 1 ] && extra+=(--keep-logs)
    # A single round writes exactly what it always did; several rounds tag each result with its round.
    [ "$ROUNDS" -gt 1 ] && extra+=(--round "$ROUND")
    # In the background with a wait, so that a signal reaches the trap at once instead of after the run.
    $BENCH measure --dir "$OUT" --id "$id" --scenario "$scenario" --tool "$tool" --mode "$mode" --url "$url" \
        --pids "$pids" --duration "$DURATION" --warmup "$WARMUP" --conns "$CONNS" --streams "$STREAMS" \
        --h2load-procs "$H2LOAD_PROCS" --lua "$HERE/lua/tokens.lua" ${extra[@]+"${extra[@]}"} "$@" &
    MEASURE_PID=$!
    wait "$MEASURE_PID"
    MEASURE_PID=""
}

# ------------------------------------------------------------------------------------------------ shared setup
CANONICAL=acme.bench.test
CUSTOM=login.bench.test
CLIENT=bench-client
CORS_ORIGIN=https://app.bench.test
BODY='{"id":"org_bench","name":"bench","display_name":"Bench Org"}'
read -r P_ORIGIN_TLS P_ORIGIN_HTTP P_NGHTTPX P_HAPROXY P_HAPROXY_JWT P_GW_CUSTOM P_GW_CANON <<<"$($BENCH ports 7)"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
    -addext "subjectAltName=DNS:$CANONICAL,DNS:$CUSTOM,DNS:localhost,IP:127.0.0.1" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"
mkdir -p "$TMP/nginx-tmp"

# ------------------------------------------------------------------------------------------------ the gateway binary and the signing key
# Done once, before anything is measured; only the tokens themselves are minted again every round (see mint_tokens).
if [ -z "$GATEWAY_BIN" ]; then GATEWAY_BIN="$ROOT/.build/release/myorg-gateway"; fi
if [ "$BUILD" = 1 ]; then
    echo
    echo "== building myorg-gateway (release)"
    (cd "$ROOT" && swift build -c release --product myorg-gateway)
fi
HAVE_GATEWAY=0
if [ -x "$GATEWAY_BIN" ]; then HAVE_GATEWAY=1; fi
if { want gateway || want gateway-policy; } && [ "$HAVE_GATEWAY" = 0 ]; then
    echo
    echo "== gateway: $GATEWAY_BIN not found; build it with" \
        "'swift build -c release --product myorg-gateway' (or pass --build): skipped" | tee -a "$OUT/environment.txt"
fi
NEED_TOKENS=0
if want haproxy-jwt || want gateway-policy; then NEED_TOKENS=1; fi
# The fresh-token rows over HTTP/2 need their own client (h2load cannot vary a header per request).
if [ "$NEED_TOKENS" = 1 ]; then
    if ! cc -O2 -o "$TMP/h2fresh" "$HERE/h2fresh.c" -lnghttp2 -lssl -lcrypto 2>"$TMP/h2fresh-build.log"; then
        echo "run.sh: cannot build h2fresh.c (needs cc, libnghttp2-dev, libssl-dev):" >&2
        cat "$TMP/h2fresh-build.log" >&2
        exit 1
    fi
fi
# The gateway's configuration always names a JWKS file, so its pass-through rows need the key too.
NEED_KEY=$NEED_TOKENS
if want gateway && [ "$HAVE_GATEWAY" = 1 ]; then NEED_KEY=1; fi

ISS="https://$CANONICAL/"
AUD="https://$CANONICAL/my-org/"
SCOPE="read:my_org:details"
KEY="$TMP/signing-key.pem"
# How mint_tokens makes the reused tokens: "cli" (myorg-gateway token, one call per organization), "template"
# (bench.py mint copying one myorg-gateway token) or "claims" (bench.py mint from CLAIMS, no working gateway).
TOKEN_MODE=""
CLAIMS=""
mint_cli() { # mint_cli ORG: one token from the gateway's own command, appended to tokens.txt
    "$GATEWAY_BIN" token --org "$1" --scope "$SCOPE" --client "$CLIENT" --domain "$CANONICAL" --key "$KEY" \
        >>"$TMP/tokens.txt" 2>"$TMP/token-error.log"
}
if [ "$NEED_KEY" = 1 ]; then
    echo
    if [ "$NEED_TOKENS" = 1 ]; then
        again=""
        [ "$ROUNDS" -gt 1 ] && again=", minted again every round"
        echo "== tokens: $ORGS reused tokens over $ORGS organizations, $FRESH_TOKENS fresh ones for each protocol (RS256, 2048-bit key)$again"
    else
        echo "== signing key and JWKS (RS256, 2048-bit key; no token rows)"
    fi
    for i in $(seq 0 $((ORGS - 1))); do printf 'org_bench%07d\n' "$i"; done >"$TMP/orgs.txt"
    : >"$TMP/tokens.txt"
    chmod 600 "$TMP/tokens.txt"
    # The gateway creates the key on its first call (its own key format, PKCS#8).
    if [ "$HAVE_GATEWAY" = 1 ] && mint_cli org_bench0000000; then
        if mint_cli org_bench0000001; then
            TOKEN_MODE=cli
            TOKEN_SOURCE="myorg-gateway token ($ORGS calls)"
        else
            # The first token is the template; the others copy its header and claims.
            head -1 "$TMP/tokens.txt" >"$TMP/template.txt"
            TOKEN_MODE=template
            TOKEN_SOURCE="bench.py mint copying the shape of one myorg-gateway token:"
            TOKEN_SOURCE+=" a second 'token' call with the existing key failed: $(head -c 200 "$TMP/token-error.log")"
        fi
        KID=$($BENCH token-header "$TMP/tokens.txt" kid)
        if "$GATEWAY_BIN" token --print-jwks --key "$KEY" >"$TMP/jwks.json" 2>/dev/null; then
            JWKS_SOURCE="myorg-gateway token --print-jwks"
        else
            $BENCH jwks --key "$KEY" ${KID:+--kid "$KID"} >"$TMP/jwks.json"
            JWKS_SOURCE="bench.py jwks (myorg-gateway token --print-jwks failed)"
        fi
    else
        if [ "$HAVE_GATEWAY" = 1 ]; then
            echo "   myorg-gateway token failed ($(head -c 200 "$TMP/token-error.log")); minting with bench.py"
        fi
        rm -f "$KEY"
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KEY" 2>/dev/null
        KID=bench-key
        CLAIMS="{\"iss\":\"$ISS\",\"aud\":[\"$AUD\"],\"sub\":\"auth0|bench\",\"azp\":\"$CLIENT\",\"scope\":\"$SCOPE\"}"
        $BENCH jwks --key "$KEY" --kid "$KID" >"$TMP/jwks.json"
        TOKEN_MODE=claims
        TOKEN_SOURCE="bench.py mint (no working myorg-gateway token)"
        JWKS_SOURCE="bench.py jwks"
    fi
    openssl pkey -in "$KEY" -pubout -out "$TMP/jwt-public.pem"
    if [ "$NEED_TOKENS" = 1 ]; then
        echo "   tokens: $TOKEN_SOURCE; JWKS: $JWKS_SOURCE" | tee -a "$OUT/environment.txt"
    else
        echo "   JWKS: $JWKS_SOURCE" | tee -a "$OUT/environment.txt"
    fi
fi

# mint_tokens: this round's reused and fresh tokens, signed by the same key (the JWKS does not change).
# Minted every round, right before the first row that needs them: tokens live 600 s (the most the gateway
# accepts), less than a run of several rounds, and every round's fresh tokens are new to its proxies.
mint_tokens() {
    case "$TOKEN_MODE" in
        cli)
            : >"$TMP/tokens.txt"
            while read -r org; do mint_cli "$org"; done <"$TMP/orgs.txt"
            ;;
        template)
            $BENCH mint --key "$KEY" --template "$TMP/template.txt" --orgs "$TMP/orgs.txt" \
                --count "$ORGS" --procs 1 --out "$TMP/tokens.txt"
            ;;
        claims)
            $BENCH mint --key "$KEY" --claims "$CLAIMS" --kid "$KID" --orgs "$TMP/orgs.txt" \
                --count "$ORGS" --procs 1 --out "$TMP/tokens.txt"
            ;;
    esac
    # The fresh ones copy the first reused token's header and claims, with their own org_id, iat, exp and jti.
    $BENCH mint --key "$KEY" --template "$TMP/tokens.txt" --orgs "$TMP/orgs.txt" \
        --count "$FRESH_TOKENS" --out "$TMP/fresh-tokens.txt"
    # A second set for the HTTP/2 rows: a token the HTTP/1.1 row sent is in the gateway's cache.
    $BENCH mint --key "$KEY" --template "$TMP/tokens.txt" --orgs "$TMP/orgs.txt" \
        --count "$FRESH_TOKENS" --out "$TMP/h2-fresh-tokens.txt"
    {
        echo "authorization: Bearer $(head -1 "$TMP/tokens.txt")"
        echo "origin: $CORS_ORIGIN"
    } >"$TMP/probe-headers.txt"
}

if [ "$REAL_TIER" = 1 ]; then
    TENANT_RPS=160
    ORG_RPS=16
else
    TENANT_RPS=1000000
    ORG_RPS=1000000
fi

# ------------------------------------------------------------------------------------------------ the origin
echo
echo "== origin: nginx ($WORKERS workers) on 127.0.0.1:$P_ORIGIN_TLS (TLS, h2) and :$P_ORIGIN_HTTP (http/1.1)"
$BENCH render "$HERE/templates/nginx.conf" "$TMP/nginx.conf" DIR="$TMP" WORKERS="$WORKERS" \
    TLS_PORT="$P_ORIGIN_TLS" HTTP_PORT="$P_ORIGIN_HTTP" BODY="$BODY"
# nginx serves every round (it is the bare row and every proxy's upstream); the proxies restart each round.
start nginx nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf"
NGINX_PID=$PID
wait_port "$P_ORIGIN_TLS" "$NGINX_PID" nginx || exit 1
wait_port "$P_ORIGIN_HTTP" "$NGINX_PID" nginx || exit 1
probe nginx "https://127.0.0.1:$P_ORIGIN_TLS/bench"
cp "$TMP/nginx.conf" "$OUT/configs/"

# ------------------------------------------------------------------------------------------------ the rows
# One function per proxy: each starts its proxy, measures its rows and stops it. A round calls them all.

rows_bare() {
    measure bare-h2load bare h2load plain "https://127.0.0.1:$P_ORIGIN_TLS/bench" "$NGINX_PID"
    measure bare-wrk bare wrk plain "https://127.0.0.1:$P_ORIGIN_TLS/bench" "$NGINX_PID"
}

rows_nghttpx() {
    if ! command -v nghttpx >/dev/null; then
        echo "   (nghttpx not installed: skipped)"
        return 0
    fi
    start nghttpx nghttpx --conf=/dev/null -f"127.0.0.1,$P_NGHTTPX" \
        -b"127.0.0.1,$P_ORIGIN_HTTP;;proto=http/1.1" -n "$WORKERS" \
        --backend-connections-per-host=256 --backend-keep-alive-timeout=60s --no-ocsp --no-via \
        --errorlog-file="$TMP/nghttpx-error.log" --pid-file="$TMP/nghttpx.pid" \
        "$TMP/key.pem" "$TMP/cert.pem"
    NGHTTPX_PID=$PID
    wait_port "$P_NGHTTPX" "$NGHTTPX_PID" nghttpx || exit 1
    probe nghttpx "https://127.0.0.1:$P_NGHTTPX/bench"
    measure nghttpx-h2load nghttpx h2load plain "https://127.0.0.1:$P_NGHTTPX/bench" "$NGHTTPX_PID" \
        --origin-pids "$NGINX_PID"
    measure nghttpx-wrk nghttpx wrk plain "https://127.0.0.1:$P_NGHTTPX/bench" "$NGHTTPX_PID" \
        --origin-pids "$NGINX_PID"
    stop_pid "$NGHTTPX_PID"
}

rows_haproxy() {
    $BENCH render "$HERE/templates/haproxy.cfg" "$TMP/haproxy.cfg" DIR="$TMP" THREADS="$WORKERS" \
        PORT="$P_HAPROXY" ORIGIN_PORT="$P_ORIGIN_HTTP" BACKEND_CONNS=256
    cp "$TMP/haproxy.cfg" "$OUT/configs/"
    start haproxy haproxy -db -f "$TMP/haproxy.cfg"
    HAPROXY_PID=$PID
    wait_port "$P_HAPROXY" "$HAPROXY_PID" haproxy || exit 1
    probe haproxy "https://127.0.0.1:$P_HAPROXY/bench"
    measure haproxy-h2load haproxy h2load plain "https://127.0.0.1:$P_HAPROXY/bench" "$HAPROXY_PID" \
        --origin-pids "$NGINX_PID"
    measure haproxy-wrk haproxy wrk plain "https://127.0.0.1:$P_HAPROXY/bench" "$HAPROXY_PID" \
        --origin-pids "$NGINX_PID"
    stop_pid "$HAPROXY_PID"
}

rows_haproxy_jwt() {
    echo
    echo "== HAProxy with jwt_verify (per-org limit ${ORG_RPS} rps, tenant ${TENANT_RPS} rps)"
    $BENCH render "$HERE/templates/haproxy-jwt.cfg" "$TMP/haproxy-jwt.cfg" DIR="$TMP" THREADS="$WORKERS" \
        PORT="$P_HAPROXY_JWT" ORIGIN_PORT="$P_ORIGIN_HTTP" BACKEND_CONNS=256 ISS="$ISS" AUD="$AUD" \
        CLIENT="$CLIENT" CORS_ORIGIN="$CORS_ORIGIN" TENANT_RPS="$TENANT_RPS" ORG_RPS="$ORG_RPS"
    cp "$TMP/haproxy-jwt.cfg" "$OUT/configs/"
    start haproxy-jwt haproxy -db -f "$TMP/haproxy-jwt.cfg"
    HAPROXY_JWT_PID=$PID
    wait_port "$P_HAPROXY_JWT" "$HAPROXY_JWT_PID" haproxy-jwt || exit 1
    local url="https://127.0.0.1:$P_HAPROXY_JWT/my-org/details"
    probe haproxy-jwt "$url" "$TMP/probe-headers.txt"
    local common=(--origin-pids "$NGINX_PID" --host "$CANONICAL" --origin-header "$CORS_ORIGIN"
        --tokens "$TMP/tokens.txt")
    measure haproxy-jwt-h2load-reused haproxy-jwt h2load reused "$url" "$HAPROXY_JWT_PID" "${common[@]}"
    measure haproxy-jwt-wrk-rotate haproxy-jwt wrk rotate "$url" "$HAPROXY_JWT_PID" "${common[@]}"
    measure haproxy-jwt-wrk-fresh haproxy-jwt wrk fresh "$url" "$HAPROXY_JWT_PID" "${common[@]}" \
        --fresh-tokens "$TMP/fresh-tokens.txt"
    measure haproxy-jwt-h2fresh-fresh haproxy-jwt h2fresh fresh "$url" "$HAPROXY_JWT_PID" "${common[@]}" \
        --fresh-tokens "$TMP/h2-fresh-tokens.txt" --h2fresh "$TMP/h2fresh"
    stop_pid "$HAPROXY_JWT_PID"
}

run_gateway() { # run_gateway SUFFIX SINKS_YAML
    local suffix=$1 sinks=$2 tiers_line="" name="gateway$1"
    if [ "$REAL_TIER" = 0 ]; then
        tiers_line="tiers_file: tiers-bench.yaml"
        cp "$HERE/templates/tiers-bench.yaml" "$TMP/tiers-bench.yaml"
    fi
    $BENCH render "$HERE/templates/gateway.yaml" "$TMP/$name.yaml" CANONICAL="$CANONICAL" CUSTOM="$CUSTOM" \
        TIERS_LINE="$tiers_line" PORT_CUSTOM="$P_GW_CUSTOM" PORT_CANONICAL="$P_GW_CANON" \
        ORIGIN_PORT="$P_ORIGIN_HTTP" BACKEND_CONNS=256 CLIENT="$CLIENT" CORS_ORIGIN="$CORS_ORIGIN" SINKS="$sinks"
    cp "$TMP/$name.yaml" "$OUT/configs/"
    if ! BENCH_CNAME_API_KEY=bench-not-a-secret "$GATEWAY_BIN" check "$TMP/$name.yaml" >"$TMP/$name-check.log" 2>&1; then
        echo "   warning: myorg-gateway check did not pass the benchmark configuration:" | tee -a "$OUT/environment.txt"
        head -20 "$TMP/$name-check.log" | sed 's/^/     /' | tee -a "$OUT/environment.txt"
    fi
    GW_PID=""
    GW_STARTS=0
    # gw_up: (re)starts the gateway when it is not running, so that one crash costs one row, not the rest.
    gw_up() {
        if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then return 0; fi
        if [ -n "$GW_PID" ]; then
            echo "   the gateway (PID $GW_PID) exited; its log: $RAW/$name.$GW_STARTS.log; restarting" |
                tee -a "$OUT/environment.txt"
        fi
        [ "$GW_STARTS" -ge 4 ] && return 1
        GW_STARTS=$((GW_STARTS + 1))
        start "$name.$GW_STARTS" env BENCH_CNAME_API_KEY=bench-not-a-secret "$GATEWAY_BIN" serve \
            --config "$TMP/$name.yaml" --loops "$WORKERS"
        GW_PID=$PID
        wait_port "$P_GW_CUSTOM" "$GW_PID" "$name.$GW_STARTS" || return 1
        wait_port "$P_GW_CANON" "$GW_PID" "$name.$GW_STARTS" || return 1
    }
    gw_measure() { # gw_measure ARGS...: measure with the gateway's current PID
        local id=$1 scenario=$2 tool=$3 mode=$4 url=$5
        shift 5
        gw_up || return 1
        measure "$id" "$scenario" "$tool" "$mode" "$url" "$GW_PID" "$@"
        cp "$TMP/$name.$GW_STARTS.log" "$RAW/$name.$GW_STARTS.log" 2>/dev/null || true
    }
    gw_up || return 1
    # Edge-forwarded requests are not My Organization API calls and write no log event: the logging run
    # measures the policy rows only.
    if want gateway && [ -z "$suffix" ]; then
        local url="https://127.0.0.1:$P_GW_CUSTOM/bench"
        probe "$name (custom domain)" "$url"
        gw_measure "gateway$suffix-h2load" "gateway$suffix" h2load plain "$url" --origin-pids "$NGINX_PID" \
            --host "$CUSTOM"
        gw_measure "gateway$suffix-wrk" "gateway$suffix" wrk plain "$url" --origin-pids "$NGINX_PID" \
            --host "$CUSTOM"
    fi
    if want gateway-policy; then
        local url="https://127.0.0.1:$P_GW_CANON/my-org/details"
        gw_up || return 1
        probe "$name (canonical domain)" "$url" "$TMP/probe-headers.txt"
        local common=(--origin-pids "$NGINX_PID" --host "$CANONICAL" --origin-header "$CORS_ORIGIN"
            --tokens "$TMP/tokens.txt")
        gw_measure "gateway-policy$suffix-h2load-reused" "gateway-policy$suffix" h2load reused "$url" "${common[@]}"
        gw_measure "gateway-policy$suffix-wrk-rotate" "gateway-policy$suffix" wrk rotate "$url" "${common[@]}"
        gw_measure "gateway-policy$suffix-wrk-fresh" "gateway-policy$suffix" wrk fresh "$url" "${common[@]}" \
            --fresh-tokens "$TMP/fresh-tokens.txt"
        gw_measure "gateway-policy$suffix-h2fresh-fresh" "gateway-policy$suffix" h2fresh fresh "$url" \
            "${common[@]}" --fresh-tokens "$TMP/h2-fresh-tokens.txt" --h2fresh "$TMP/h2fresh"
    fi
    stop_pid "$GW_PID"
    cp "$TMP/$name.$GW_STARTS.log" "$RAW/$name.$GW_STARTS.log" 2>/dev/null || true
}

rows_gateway() {
    echo
    echo "== gateway ($GATEWAY_BIN, $WORKERS loops, event logging off)"
    run_gateway "" "[]" || echo "   gateway scenarios failed" | tee -a "$OUT/environment.txt"
    if [ "$GATEWAY_LOG" = 1 ]; then
        echo "== gateway with event logging to a file"
        # Every round's logging run starts with an empty file, so that each one logs under the same conditions.
        rm -f "$TMP/events.jsonl"
        run_gateway "-log" "[{ file: { path: $TMP/events.jsonl, max_bytes: 1073741824, fsync: interval } }]" ||
            echo "   gateway scenarios with file logging failed" | tee -a "$OUT/environment.txt"
        if [ -f "$TMP/events.jsonl" ]; then
            echo "   events written$ROUND_LABEL: $(wc -l <"$TMP/events.jsonl") lines, $(du -h "$TMP/events.jsonl" | cut -f1)" |
                tee -a "$OUT/environment.txt"
        fi
    fi
}

# ------------------------------------------------------------------------------------------------ the rounds
# Interleaved, round 1 of every row, then round 2 of every row, ...: a slow spell of the machine (another
# process, the CPU clock) then lands in one round of many rows instead of every round of one row, and the
# medians leave it out.
echo "   scenario               tool   tokens      req/s     p99            proxy CPU"
ROUND_LABEL=""
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    if [ "$ROUNDS" -gt 1 ]; then
        RAW="$OUT/raw/round$ROUND"
        ROUND_LABEL=" (round $ROUND)"
        mkdir -p "$RAW"
        echo
        echo "== round $ROUND of $ROUNDS"
    fi
    if want bare; then rows_bare; fi
    if want nghttpx; then rows_nghttpx; fi
    if want haproxy; then rows_haproxy; fi
    if [ "$NEED_TOKENS" = 1 ]; then mint_tokens; fi
    if want haproxy-jwt; then rows_haproxy_jwt; fi
    if { want gateway || want gateway-policy; } && [ "$HAVE_GATEWAY" = 1 ]; then rows_gateway; fi
done

finish
