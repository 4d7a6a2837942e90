#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic, so unlike req/s it does not move with the
# machine's noise, and it shows where the instructions go. One gateway loop runs under valgrind in front of a
# one-worker nginx; h2load sends N requests (default 20,000) after a warm-up, and the count covers exactly those N.
#
#   Tests/Benchmarks/callgrind.sh [--gateway PATH] [--proxy gateway|haproxy|nghttpx] [--requests N] [--log] MODE...
#
# MODE: pass (HTTP/2 pass-through on the custom domain), policy (HTTP/2, full policy on /my-org/details with one
# reused token), pass1 / policy1 (the same over HTTP/1.1 keep-alive, one request at a time per connection),
# fresh1 (policy1, but every request carries a token the gateway has never seen: full RS256 verification and
# claims check each time; wrk with lua/tokens.lua sends them, as h2load cannot vary a header per request).
# fresh1 mints its tokens (cycling over 64 organizations) right before the run, 300 for the warm-up plus N
# (default 6,000 there: each costs an RSA verify under valgrind), and divides by N. rotate1 is policy1 with 64
# tokens over 64 organizations, each reused in turn (wrk, lua/tokens.lua "rotate", as run.sh's rotated rows): a
# 5 s warm-up, then 30 s counted, divided by the requests wrk saw answered (--requests does not apply).
# --log writes every event to a file, as a production gateway would. Prints one line per mode and leaves each
# callgrind file in the work directory for `callgrind_annotate --inclusive=yes FILE`.
# --proxy counts an anchor instead, on the same loads, with one thread or worker as the gateway's one loop:
# haproxy (run.sh's plain TLS proxy for pass and pass1; its jwt_verify configuration for the policy modes) or
# nghttpx (pass and pass1; its worker process is counted). Instructions are not time (no system calls, no cache
# misses in them), but unlike req/s they are the same in every run, so a gap between proxies in user space shows.
#
# Everything listens on 127.0.0.1 on ports found free at start; the processes it starts are stopped by PID on
# exit; the load is bounded by request count. Not run by CI (minutes per mode).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GATEWAY="$ROOT/.build/release/myorg-gateway"
REQUESTS=""
PROXY=gateway
LOG=0
MODES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --gateway) GATEWAY=$2; shift ;;
        --proxy) PROXY=$2; shift ;;
        --requests) REQUESTS=$2; shift ;;
        --log) LOG=1 ;;
        pass | policy | pass1 | policy1 | fresh1 | rotate1) MODES+=("$1") ;;
        -h | --help) sed -n 2,21p "$0"; exit 0 ;;
        *) echo "callgrind.sh: unknown argument $1 (modes: pass policy pass1 policy1 fresh1 rotate1)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#MODES[@]} -gt 0 ] || { echo "callgrind.sh: name at least one mode: pass policy pass1 policy1 fresh1 rotate1" >&2; exit 2; }
[ -z "$REQUESTS" ] || [[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || { echo "callgrind.sh: --requests needs a positive number" >&2; exit 2; }
[ -x "$GATEWAY" ] || { echo "callgrind.sh: no gateway binary at $GATEWAY (swift build -c release)" >&2; exit 2; }
TOOLS=(valgrind callgrind_annotate callgrind_control h2load nginx openssl python3 curl strip)
case "$PROXY" in
    gateway) ;;
    haproxy) TOOLS+=(haproxy) ;;
    nghttpx)
        TOOLS+=(nghttpx)
        for mode in "${MODES[@]}"; do
            case "$mode" in pass | pass1) ;; *) echo "callgrind.sh: nghttpx runs pass and pass1 only" >&2; exit 2 ;; esac
        done
        ;;
    *) echo "callgrind.sh: --proxy is gateway, haproxy or nghttpx, not $PROXY" >&2; exit 2 ;;
esac
case " ${MODES[*]} " in *" fresh1 "* | *" rotate1 "*) TOOLS+=(wrk) ;; esac
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: needs $tool" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/myorg-callgrind.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
read -r P_ORIGIN P_CUSTOM P_CANON <<<"$(python3 "$HERE/bench.py" ports 3)"

cd "$WORK"
# valgrind cannot read the debug info of a cross-module-optimized build: profile a copy without it.
cp "$GATEWAY" gateway-under-test
strip -g gateway-under-test
GATEWAY="$WORK/gateway-under-test"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=login.prof.test" \
    -addext "subjectAltName=DNS:login.prof.test,DNS:acme.prof.test" -keyout key.pem -out cert.pem 2>/dev/null
"$GATEWAY" token --print-jwks --key sign.pem >jwks.json
# The anchors' forms of the same keys: HAProxy reads certificate and key from one file, and jwt_verify a PEM key.
cat cert.pem key.pem >haproxy.pem
openssl pkey -in sign.pem -pubout -out jwt-public.pem 2>/dev/null
TOKEN=$("$GATEWAY" token --key sign.pem --org org_bench0000000 --client bench-client --domain acme.prof.test)
# fresh1's template (the tokens copy its header and claims) and organizations, as run.sh's fresh rows.
(umask 077 && printf '%s\n' "$TOKEN" >template-token.txt)
for i in $(seq 0 63); do printf 'org_bench%07d\n' "$i"; done >orgs.txt
cp "$HERE/templates/tiers-bench.yaml" tiers.yaml

cat >nginx.conf <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-body;
  server { listen 127.0.0.1:$P_ORIGIN; keepalive_requests 1000000;
           location / { default_type application/json; return 200 '{"id":"org_x"}'; } }
}
EOF
nginx -c "$WORK/nginx.conf"
sleep 0.3
PIDS+=("$(cat "$WORK/nginx.pid")")

if [ "$LOG" = 1 ]; then
    LOGGING="logging: { sinks: [{ file: { path: $WORK/events.jsonl, max_bytes: 1073741824, fsync: interval } }], access_log: false, level: warning }"
else
    LOGGING="logging: { sinks: [], access_log: false, level: warning }"
fi
cat >gateway.yaml <<EOF
tenant:
  name: prof
  canonical_domain: acme.prof.test
  custom_domains: [login.prof.test]
  tier: private_performance
  tiers_file: tiers.yaml
  jwks: { file: jwks.json }
listeners:
  - address: 127.0.0.1:$P_CUSTOM
    domain: login.prof.test
    tls: { certificates: [{ cert: cert.pem, key: key.pem }], alpn: [h2, http/1.1] }
  - address: 127.0.0.1:$P_CANON
    domain: acme.prof.test
    tls: { certificates: [{ cert: cert.pem, key: key.pem }], alpn: [h2, http/1.1] }
upstream:
  acme.prof.test: { url: "http://127.0.0.1:$P_ORIGIN", max_connections: 64 }
  login.prof.test:
    url: "http://127.0.0.1:$P_ORIGIN"
    max_connections: 64
    cname_api_key: { env: BENCH_CNAME_API_KEY }
access: { user_flows: require_client_grant, client_credentials: deny_all }
clients:
  - client_id: bench-client
    allowed_origins: [https://app.example]
    grant_scopes: [read:my_org:details]
    my_organization_configuration: { allowed_strategies: [okta], connection_deletion_behavior: allow_if_empty }
rate_limits: { store: local, burst_s: 1.0 }
$LOGGING
EOF
export BENCH_CNAME_API_KEY=callgrind-edge-key
"$GATEWAY" check gateway.yaml >/dev/null

# Sends callgrind_control OPTION (-z: zero, -d: dump) to every process of the proxy under test: nghttpx's worker
# is a child of the process started.
control_counts() {
    local pid
    for pid in "$VG" $(pgrep -P "$VG" || true); do callgrind_control "$1" "$pid" >/dev/null 2>&1 || true; done
}

# Dumps the counts, stops the gateway under valgrind and sets `total`, the instructions counted since the reset.
stop_and_count() {
    control_counts -d
    sleep 1
    kill "$VG"
    wait "$VG" 2>/dev/null || true
    total=0
    local file count
    # One file per process: nghttpx's master and its worker (the master's share is a few hundred instructions).
    for file in "$WORK/cg-$mode".*out.1; do
        count=$(callgrind_annotate "$file" 2>/dev/null | grep "PROGRAM TOTALS" | tr -d , | awk '{print $1}')
        total=$((total + ${count:-0}))
        cgfile=$file
    done
    # Swift's reference counting: each call is an atomic read-modify-write (a locked instruction), which costs
    # far more time than its instruction count says. Counted from the calls callgrind recorded.
    refcounts=$(awk '/^cfn=/ { hit = $0 ~ /^cfn=(\([0-9]+\) )?swift_(retain|release|retain_n|release_n|unownedRetainStrong)(.[0-9]+)?$/ }
        /^calls=/ && hit { split($0, a, /[= ]/); n += a[2]; hit = 0 } END { print n + 0 }' "$WORK/cg-$mode".*out.1)
}

# ", N reference-count operations per request" for the gateway (the anchors are C), divided by $1.
refcount_note() {
    [ "$PROXY" = gateway ] && printf ', %s reference-count operations per request' "$((refcounts / $1))"
    return 0
}

# Starts the proxy under test for MODE under callgrind, sets VG (the PID callgrind_control addresses) and waits
# until it answers on the port MODE's load goes to.
start_proxy() {
    local mode=$1 port
    case "$mode" in pass*) port=$P_CUSTOM ;; *) port=$P_CANON ;; esac
    local vg=(valgrind --tool=callgrind --dump-instr=no --compress-strings=no)
    case "$PROXY" in
        gateway)
            "${vg[@]}" --callgrind-out-file="$WORK/cg-$mode.out" \
                "$GATEWAY" serve --config gateway.yaml --loops 1 >"$WORK/gateway-$mode.log" 2>&1 &
            ;;
        haproxy)
            case "$mode" in
                pass*) python3 "$HERE/bench.py" render "$HERE/templates/haproxy.cfg" haproxy.cfg DIR="$WORK" \
                    THREADS=1 PORT="$port" ORIGIN_PORT="$P_ORIGIN" BACKEND_CONNS=64 ;;
                *) python3 "$HERE/bench.py" render "$HERE/templates/haproxy-jwt.cfg" haproxy.cfg DIR="$WORK" \
                    THREADS=1 PORT="$port" ORIGIN_PORT="$P_ORIGIN" BACKEND_CONNS=64 \
                    ISS="https://acme.prof.test/" AUD="https://acme.prof.test/my-org/" CLIENT=bench-client \
                    CORS_ORIGIN=https://app.example TENANT_RPS=100000000 ORG_RPS=100000000 ;;
            esac
            "${vg[@]}" --callgrind-out-file="$WORK/cg-$mode.out" haproxy -db -f haproxy.cfg \
                >"$WORK/haproxy-$mode.log" 2>&1 &
            ;;
        nghttpx)
            # The master forks the worker that does the work: callgrind follows it into a file of its own.
            "${vg[@]}" --trace-children=yes --callgrind-out-file="$WORK/cg-$mode.%p.out" \
                nghttpx --conf=/dev/null -f"127.0.0.1,$port" -b"127.0.0.1,$P_ORIGIN;;proto=http/1.1" -n 1 \
                --backend-connections-per-host=64 --backend-keep-alive-timeout=60s --no-ocsp --no-via \
                --errorlog-file="$WORK/nghttpx-$mode.log" key.pem cert.pem >/dev/null 2>&1 &
            ;;
    esac
    VG=$!
    PIDS+=("$VG")
    for _ in $(seq 120); do
        curl -sk -o /dev/null "https://127.0.0.1:$port/x" && break
        sleep 0.5
    done
}

# Sets `answered` and `statuses` from the wrk summary in FILE.
wrk_summary() {
    local out
    out=$(cat "$1")
    answered=$(sed -nE 's/^ *([0-9]+) requests in .*/\1/p' <<<"$out")
    statuses=$(grep -E "^statuses" <<<"$out" || true)
}

for mode in "${MODES[@]}"; do
    start_proxy "$mode"
    label=$mode
    [ "$PROXY" = gateway ] || label="$PROXY $mode"
    if [ "$mode" = rotate1 ]; then
        python3 "$HERE/bench.py" mint --key sign.pem --template template-token.txt --orgs orgs.txt \
            --count 64 --out rotate-tokens.txt
        url="https://127.0.0.1:$P_CANON/my-org/details"
        rotate() {
            wrk -t 1 -c 4 -d "$1" --timeout 60s -s "$HERE/lua/tokens.lua" "$url" -- rotate-tokens.txt rotate \
                https://app.example acme.prof.test 1 >"$2"
        }
        rotate 5s wrk-warm.txt
        control_counts -z
        rotate 30s wrk-rotate.txt
        stop_and_count
        wrk_summary wrk-rotate.txt
        # Requests still in flight when wrk stopped add their partial cost: at most 4 in thousands.
        printf '%-8s %s requests, %s instructions per request%s (%s; %s)\n' "$label" "$answered" \
            "$((total / answered))" "$(refcount_note "$answered")" "$statuses" "$cgfile"
        continue
    fi
    if [ "$mode" = fresh1 ]; then
        n=${REQUESTS:-6000}
        # Minted now: tokens live 600 s. Each is sent once, so the verified-token caches never hit.
        python3 "$HERE/bench.py" mint --key sign.pem --template template-token.txt --orgs orgs.txt \
            --count 300 --out fresh-warm.txt
        python3 "$HERE/bench.py" mint --key sign.pem --template template-token.txt --orgs orgs.txt \
            --count "$n" --out fresh-tokens.txt
        url="https://127.0.0.1:$P_CANON/my-org/details"
        # fresh FILE OUT: wrk sends FILE's tokens. tokens.lua stops its thread when they run out, but wrk itself
        # waits out -d: once the gateway has been idle for two seconds, SIGINT ends wrk's wait and it prints its
        # summary (the up to three requests in flight on the other connections then are not counted).
        fresh() {
            wrk -t 1 -c 4 -d 600s --timeout 60s -s "$HERE/lua/tokens.lua" "$url" -- "$1" fresh \
                https://app.example acme.prof.test 1 >"$2" &
            local wrk_pid=$! last=-1 idle=0 ticks
            PIDS+=("$wrk_pid")
            sleep 2
            while kill -0 "$wrk_pid" 2>/dev/null && [ "$idle" -lt 2 ]; do
                sleep 1
                ticks=$(awk '{print $14 + $15}' "/proc/$VG/stat")
                if [ "$last" -ge 0 ] && [ $((ticks - last)) -lt 5 ]; then idle=$((idle + 1)); else idle=0; fi
                last=$ticks
            done
            kill -INT "$wrk_pid" 2>/dev/null || true
            wait "$wrk_pid" || true
        }
        fresh fresh-warm.txt wrk-warm.txt
        control_counts -z
        fresh fresh-tokens.txt wrk-fresh.txt
        stop_and_count
        # Every token reaches the gateway (wrk writes a request as soon as the script returns it), so the count
        # is the number of tokens; wrk's own count misses the answers still in flight when its thread stopped.
        wrk_summary wrk-fresh.txt
        printf '%-8s %s requests, %s instructions per request%s (%s answered, %s; %s)\n' "$label" "$n" \
            "$((total / n))" "$(refcount_note "$n")" "$answered" "$statuses" "$cgfile"
        continue
    fi
    case "$mode" in
        pass*) url="https://127.0.0.1:$P_CUSTOM/bench"; auth="x-bench: 1" ;;
        *) url="https://127.0.0.1:$P_CANON/my-org/details"; auth="authorization: Bearer $TOKEN" ;;
    esac
    h1=(-m 10)
    case "$mode" in *1) h1=(--h1 -m 1) ;; esac
    common=(-c 4 "${h1[@]}" -H "$auth" -H "origin: https://app.example" "$url")
    h2load -n 2000 "${common[@]}" >/dev/null
    control_counts -z
    statuses=$(h2load -n "${REQUESTS:-20000}" "${common[@]}" | grep -E "^status codes")
    stop_and_count
    printf '%-8s %s requests, %s instructions per request%s (%s; %s)\n' "$label" "${REQUESTS:-20000}" \
        "$((total / ${REQUESTS:-20000}))" "$(refcount_note "${REQUESTS:-20000}")" "$statuses" "$cgfile"
done
