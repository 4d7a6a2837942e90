#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic, so unlike req/s it does not move with the
# machine's noise, and it shows where the instructions go. One gateway loop runs under valgrind in front of a
# one-worker nginx; h2load sends N requests after a warm-up, and the count covers exactly those N.
#
#   Tests/Benchmarks/callgrind.sh [--gateway PATH] [--requests N] [--log] MODE...
#
# MODE: pass (HTTP/2 pass-through on the custom domain), policy (HTTP/2, full policy on /my-org/details with one
# reused token), pass1 / policy1 (the same over HTTP/1.1 keep-alive, one request at a time per connection).
# --log writes every event to a file, as a production gateway would. Prints one line per mode and leaves each
# callgrind file in the work directory for `callgrind_annotate --inclusive=yes FILE`.
#
# Everything listens on 127.0.0.1 on ports found free at start; the processes it starts are stopped by PID on
# exit; the load is bounded by request count. Not run by CI (minutes per mode).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GATEWAY="$ROOT/.build/release/myorg-gateway"
REQUESTS=20000
LOG=0
MODES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --gateway) GATEWAY=$2; shift ;;
        --requests) REQUESTS=$2; shift ;;
        --log) LOG=1 ;;
        pass | policy | pass1 | policy1) MODES+=("$1") ;;
        -h | --help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "callgrind.sh: unknown argument $1 (modes: pass policy pass1 policy1)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#MODES[@]} -gt 0 ] || { echo "callgrind.sh: name at least one mode: pass policy pass1 policy1" >&2; exit 2; }
[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || { echo "callgrind.sh: --requests needs a positive number" >&2; exit 2; }
[ -x "$GATEWAY" ] || { echo "callgrind.sh: no gateway binary at $GATEWAY (swift build -c release)" >&2; exit 2; }
for tool in valgrind callgrind_annotate callgrind_control h2load nginx openssl python3 curl strip; do
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
TOKEN=$("$GATEWAY" token --key sign.pem --org org_bench0000000 --client bench-client --domain acme.prof.test)
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

for mode in "${MODES[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-$mode.out" --dump-instr=no --compress-strings=no \
        "$GATEWAY" serve --config gateway.yaml --loops 1 >"$WORK/gateway-$mode.log" 2>&1 &
    VG=$!
    PIDS+=("$VG")
    for _ in $(seq 120); do
        curl -sk -o /dev/null "https://127.0.0.1:$P_CANON/x" && break
        sleep 0.5
    done
    case "$mode" in
        pass*) url="https://127.0.0.1:$P_CUSTOM/bench"; auth="x-bench: 1" ;;
        *) url="https://127.0.0.1:$P_CANON/my-org/details"; auth="authorization: Bearer $TOKEN" ;;
    esac
    h1=(-m 10)
    case "$mode" in *1) h1=(--h1 -m 1) ;; esac
    common=(-c 4 "${h1[@]}" -H "$auth" -H "origin: https://app.example" "$url")
    h2load -n 2000 "${common[@]}" >/dev/null
    callgrind_control -z "$VG" >/dev/null 2>&1
    statuses=$(h2load -n "$REQUESTS" "${common[@]}" | grep -E "^status codes")
    callgrind_control -d "$VG" >/dev/null 2>&1
    sleep 1
    kill "$VG"
    wait "$VG" 2>/dev/null || true
    total=$(callgrind_annotate "$WORK/cg-$mode.out.1" 2>/dev/null | grep "PROGRAM TOTALS" | tr -d , | awk '{print $1}')
    printf '%-8s %s requests, %s instructions per request (%s; %s)\n' "$mode" "$REQUESTS" \
        "$((total / REQUESTS))" "$statuses" "$WORK/cg-$mode.out.1"
done
