#!/usr/bin/env bash
# Benchmarks ferroshop on this machine, in one go, and writes the results to
# docs/benchmarks/results.md (included by docs/benchmarks.md) plus a chart,
# docs/benchmarks/proxy.png. Loopback traffic only; every measurement is
# bounded (BENCH_DURATION seconds, default 10); the whole run takes ~6 min.
#
#  1. proxy:     wrk against a minimal backend (crates/bench, bench-backend)
#                directly, through shop-gateway (plain proxy, and with token
#                verification), through nginx, through HAProxy and through
#                bench-hyper-proxy (a bare axum + hyper proxy: the floor of
#                the gateway's HTTP stack), each keeping connections to the
#                backend alive. Rounds alternate
#                the contenders; the table shows the median of BENCH_RUNS.
#  2. checkout:  bench-checkout (crates/bench) through the gateway of `shop`,
#                on SQLite and on a throwaway PostgreSQL (over its Unix
#                socket, then over TCP loopback).
#  3. footprint: VmRSS of each process idle and under load; time from
#                starting `shop` to every service's /readyz answering 200.
#  4. criterion: the balancer pick benchmark of shop-discovery, --quick.
#
# CPU arrangement (2 cores): each proxy runs on core 0 with one worker
# (nginx worker_processes 1, HAProxy nbthread 1, the gateway with
# TOKIO_WORKER_THREADS=1); wrk and the backend share core 1. The checkout
# runs are not pinned: the whole stack, PostgreSQL and the client share both.
#
# Usage: scripts/bench.sh            (as root to install missing tools)
# Env:   BENCH_DURATION=10 BENCH_RUNS=3 BENCH_CONNECTIONS=64 BENCH_USERS=32
#        BENCH_SKIP_CRITERION=1 CARGO_TARGET_DIR (default ./target)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ROOT=$(pwd)

DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
USERS=${BENCH_USERS:-32}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/release"
PROXY_CPU=0
CLIENT_CPU=1
OUT_DIR="$ROOT/docs/benchmarks"

# --- tools ----------------------------------------------------------------

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
pg_bindir >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
PG_BIN=$(pg_bindir) || die "PostgreSQL server binaries not found"

log "building release binaries into $TARGET (reused when up to date)"
# Two builds, not one: built together, shop-bench's dependencies would unify
# features with the services' and rebuild them all.
CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet -p shop -p shop-gateway -p shop-users
CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet -p shop-bench

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- housekeeping -----------------------------------------------------------

WORK=$(mktemp -d /tmp/ferroshop-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
PG_DATA=""

cleanup() {
    local status=$?
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    stop_throwaway_pg "$PG_DATA"
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

# wait_ok URL [TRIES]: until URL answers 2xx (0.05 s apart).
wait_ok() {
    local tries=${2:-200}
    for _ in $(seq 1 "$tries"); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# rss_kib PID...: summed VmRSS of the processes (and their children).
rss_kib() {
    local total=0 pid kib
    for pid in "$@"; do
        for p in "$pid" $(pgrep -P "$pid" 2>/dev/null || true); do
            kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
            total=$((total + ${kib:-0}))
        done
    done
    printf '%s\n' "$total"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- 1. proxy -----------------------------------------------------------------

BACKEND_PORT=$(free_port)
log "starting bench-backend on 127.0.0.1:$BACKEND_PORT (core $CLIENT_CPU)"
taskset -c "$CLIENT_CPU" "$BIN/bench-backend" --listen "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_ok "http://127.0.0.1:$BACKEND_PORT/ping" || die "bench-backend did not start"

USERS_PORT=$(free_port)
log "starting shop-users on 127.0.0.1:$USERS_PORT (token issuer for the auth run)"
SHOP_HTTP__HOST=127.0.0.1 SHOP_HTTP__PORT="$USERS_PORT" SHOP_ADMIN__HOST=127.0.0.1 SHOP_ADMIN__PORT=0 \
    SHOP_DATABASE__URL="sqlite:$WORK/users.db" \
    RUST_LOG=warn "$BIN/shop-users" >"$WORK/users.log" 2>&1 &
USERS_PID=$!
PIDS+=("$USERS_PID")
wait_ok "http://127.0.0.1:$USERS_PORT/readyz" || die "shop-users did not start"
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$USERS_PORT/api/users" -H 'content-type: application/json' \
    -d '{"username":"benchproxy","email":"benchproxy@example.com","password":"bench password 1234"}'
TOKEN=$(curl -fsS -X POST "http://127.0.0.1:$USERS_PORT/api/sessions" -H 'content-type: application/json' \
    -d '{"login":"benchproxy","password":"bench password 1234"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || die "no token from shop-users"

GATEWAY_PORT=$(free_port)
cat >"$WORK/gateway.toml" <<EOF
[http]
host = "127.0.0.1"
port = $GATEWAY_PORT

# /metrics, unused here: any free loopback port.
[admin]
host = "127.0.0.1"
port = 0

[rate_limit]
enabled = false

[registry]
backend = "static"
[[registry.instances]]
service = "catalog"
address = "127.0.0.1:$BACKEND_PORT"
[[registry.instances]]
service = "cart"
address = "127.0.0.1:$BACKEND_PORT"
[[registry.instances]]
service = "users"
address = "127.0.0.1:$USERS_PORT"
EOF
log "starting shop-gateway on 127.0.0.1:$GATEWAY_PORT (core $PROXY_CPU, 1 worker thread)"
TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c "$PROXY_CPU" \
    "$BIN/shop-gateway" --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=("$GATEWAY_PID")
wait_ok "http://127.0.0.1:$GATEWAY_PORT/healthz" || { cat "$WORK/gateway.log" >&2; die "shop-gateway did not start"; }

NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
log "starting nginx on 127.0.0.1:$NGINX_PORT (core $PROXY_CPU, 1 worker)"
taskset -c "$PROXY_CPU" "$NGINX" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_ok "http://127.0.0.1:$NGINX_PORT/ping" || { cat "$WORK/nginx.log" "$WORK/nginx/error.log" >&2; die "nginx did not start"; }

HAPROXY_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend backend
backend backend
    server b1 127.0.0.1:$BACKEND_PORT
EOF
log "starting HAProxy on 127.0.0.1:$HAPROXY_PORT (core $PROXY_CPU, 1 thread)"
taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
wait_ok "http://127.0.0.1:$HAPROXY_PORT/ping" || { cat "$WORK/haproxy.log" >&2; die "HAProxy did not start"; }

HYPER_PORT=$(free_port)
log "starting bench-hyper-proxy on 127.0.0.1:$HYPER_PORT (core $PROXY_CPU, 1 worker thread)"
TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" "$BIN/bench-hyper-proxy" \
    --listen "127.0.0.1:$HYPER_PORT" --backend "127.0.0.1:$BACKEND_PORT" >"$WORK/hyper-proxy.log" 2>&1 &
HYPER_PID=$!
PIDS+=("$HYPER_PID")
wait_ok "http://127.0.0.1:$HYPER_PORT/ping" || { cat "$WORK/hyper-proxy.log" >&2; die "bench-hyper-proxy did not start"; }

# The same request everywhere: the gateway routes /api/products/* to
# "catalog", which is the backend; the backend answers any path.
PATH_PLAIN=/api/products/0190a0c8-0000-7000-8000-000000000001
declare -A URL=(
    [direct]="http://127.0.0.1:$BACKEND_PORT$PATH_PLAIN"
    [gateway]="http://127.0.0.1:$GATEWAY_PORT$PATH_PLAIN"
    [gateway-auth]="http://127.0.0.1:$GATEWAY_PORT/api/cart"
    [nginx]="http://127.0.0.1:$NGINX_PORT$PATH_PLAIN"
    [haproxy]="http://127.0.0.1:$HAPROXY_PORT$PATH_PLAIN"
    [hyper-proxy]="http://127.0.0.1:$HYPER_PORT$PATH_PLAIN"
)
declare -A PROC=(
    [direct]="$BACKEND_PID" [gateway]="$GATEWAY_PID" [gateway-auth]="$GATEWAY_PID"
    [nginx]="$NGINX_PID" [haproxy]="$HAPROXY_PID" [hyper-proxy]="$HYPER_PID"
)
CONTENDERS=(direct gateway nginx haproxy hyper-proxy gateway-auth)
for name in "${CONTENDERS[@]}"; do
    curl -fsS -o /dev/null -H "authorization: Bearer $TOKEN" "${URL[$name]}" || die "$name: ${URL[$name]} does not answer 200"
done

declare -A IDLE_RSS
for name in "${CONTENDERS[@]}"; do IDLE_RSS[$name]=$(rss_kib "${PROC[$name]}"); done

# wrk's latency (e.g. 1.23ms, 850.00us, 1.02s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# run_wrk NAME ROUND: one wrk run, results appended to $WORK/proxy.tsv.
run_wrk() {
    local name=$1 round=$2 out="$WORK/wrk-$1-$2.txt" rps p50 p99 non2xx errors peak
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
        -H "authorization: Bearer $TOKEN" "${URL[$name]}" >"$out" &
    local wrk_pid=$!
    sleep $((DURATION / 2))
    peak=$(rss_kib "${PROC[$name]}")
    wait "$wrk_pid"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
    errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$rps" "$p50" "$p99" "$((${non2xx:-0} + ${errors:-0}))" "$peak" >>"$WORK/proxy.tsv"
    log "  $name: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors ${non2xx:-0}+${errors:-0}"
}

: >"$WORK/proxy.tsv"
for round in $(seq 1 "$RUNS"); do
    log "proxy round $round/$RUNS: wrk -t1 -c$CONNS -d${DURATION}s"
    for name in "${CONTENDERS[@]}"; do run_wrk "$name" "$round"; done
done

field_median() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$WORK/proxy.tsv" | median; }
declare -A RPS P50 P99 ERR PEAK_RSS
for name in "${CONTENDERS[@]}"; do
    RPS[$name]=$(field_median "$name" 3)
    P50[$name]=$(field_median "$name" 4)
    P99[$name]=$(field_median "$name" 5)
    ERR[$name]=$(awk -F'\t' -v n="$name" '$1 == n { s += $6 } END { print s + 0 }' "$WORK/proxy.tsv")
    PEAK_RSS[$name]=$(field_median "$name" 7)
done
# Ratios per round (side by side), then their median.
ratio_median() {
    awk -F'\t' -v a="$1" -v b="$2" '
        $1 == a { x[$2] = $3 } $1 == b { y[$2] = $3 }
        END { for (r in x) if (y[r] > 0) printf "%.3f\n", x[r] / y[r] }' "$WORK/proxy.tsv" | median
}
GW_NGINX=$(ratio_median gateway nginx)
GW_HAPROXY=$(ratio_median gateway haproxy)

GW_HYPER=$(ratio_median gateway hyper-proxy)

for pid in "$GATEWAY_PID" "$NGINX_PID" "$HAPROXY_PID" "$HYPER_PID" "$USERS_PID"; do kill -TERM "$pid" 2>/dev/null || true; done

# --- 2 and 3. shop: start-up, footprint, checkout ------------------------------

# start_shop NAME [ENV=VALUE...]: starts `shop` on fresh data, sets SHOP_PID,
# SHOP_GATEWAY and READY_MS (launch to every /readyz answering 200).
start_shop() {
    local name=$1 data="$WORK/shop-$1" start now addrs addr
    shift
    SHOP_PORT=$(free_port)
    start=$(date +%s%N)
    env "$@" SHOP_GATEWAY__RATE_LIMIT__ENABLED=false RUST_LOG=warn \
        "$BIN/shop" --data-dir "$data" --reset --port "$SHOP_PORT" >"$WORK/shop-$name.log" 2>&1 &
    SHOP_PID=$!
    PIDS+=("$SHOP_PID")
    for _ in $(seq 1 600); do
        grep -q 'gateway .*http://' "$WORK/shop-$name.log" 2>/dev/null && break
        kill -0 "$SHOP_PID" 2>/dev/null || { cat "$WORK/shop-$name.log" >&2; die "shop ($name) exited"; }
        sleep 0.01
    done
    addrs=$(sed -n 's|^ *[a-z0-9-]* *http://\([0-9.:]*\)$|\1|p' "$WORK/shop-$name.log")
    [ -n "$addrs" ] || { cat "$WORK/shop-$name.log" >&2; die "shop ($name) printed no addresses"; }
    for addr in $addrs; do
        for _ in $(seq 1 1000); do
            curl -fsS -o /dev/null "http://$addr/readyz" 2>/dev/null && break
            sleep 0.005
        done
        curl -fsS -o /dev/null "http://$addr/readyz" || die "shop ($name): $addr never ready"
    done
    now=$(date +%s%N)
    READY_MS=$(( (now - start) / 1000000 ))
    SHOP_GATEWAY="http://127.0.0.1:$SHOP_PORT"
}

stop_shop() { kill -TERM "$SHOP_PID" 2>/dev/null || true; wait "$SHOP_PID" 2>/dev/null || true; }

# checkout NAME PIDS...: RUNS checkout runs; medians into CK_* [NAME].
declare -A CK_RATE CK_P99 CK_ERR CK_IDLE CK_LOAD
checkout() {
    local name=$1 out rates="" p99s="" errs=0 peak=0 rss
    shift
    sleep 1
    CK_IDLE[$name]=$(rss_kib "$@")
    for round in $(seq 1 "$RUNS"); do
        out="$WORK/checkout-$name-$round.txt"
        "$BIN/bench-checkout" --base "$SHOP_GATEWAY" --users "$USERS" --duration-secs "$DURATION" \
            --prefix "b${round}u" >"$out" 2>"$out.err" &
        local pid=$!
        sleep $((DURATION / 2 + 4))
        rss=$(rss_kib "$@")
        [ "$rss" -gt "$peak" ] && peak=$rss
        wait "$pid" || { cat "$out.err" >&2; die "bench-checkout ($name) failed"; }
        log "  $name round $round: $(cat "$out")"
        # An error is a finding: show what it was.
        grep -h 'first error' "$out.err" >&2 || true
        rates+="$(sed -n 's/.*orders_per_s=\([0-9.]*\).*/\1/p' "$out")"$'\n'
        p99s+="$(sed -n 's/.*order_p99_ms=\([0-9.]*\).*/\1/p' "$out")"$'\n'
        errs=$((errs + $(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$out")))
    done
    CK_RATE[$name]=$(printf '%s' "$rates" | median)
    CK_P99[$name]=$(printf '%s' "$p99s" | median)
    CK_ERR[$name]=$errs
    CK_LOAD[$name]=$peak
}

READY_RUNS=()
for _ in $(seq 1 "$RUNS"); do
    start_shop ready
    READY_RUNS+=("$READY_MS")
    stop_shop
done
READY_MEDIAN=$(printf '%s\n' "${READY_RUNS[@]}" | median)
log "shop ready after ${READY_RUNS[*]} ms"

log "checkout on SQLite: $USERS users, ${DURATION}s x $RUNS"
start_shop sqlite
checkout sqlite "$SHOP_PID"
stop_shop

log "starting a throwaway PostgreSQL"
PG_DATA="$WORK/pg"
PG_PORT=$(free_port)
start_throwaway_pg "$PG_DATA" "$PG_PORT"
PG_PID=$(head -n 1 "$PG_DATA/postmaster.pid")
SERVICES=(users catalog cart orders)
# create_dbs PREFIX: one fresh database per service (in this shell, so that
# a failure stops the script).
create_dbs() {
    local service
    for service in "${SERVICES[@]}"; do
        run_pg "$PG_BIN/createdb" -h "$PG_DATA" -p "$PG_PORT" -U postgres "$1_$service"
    done
}
# pg_urls PREFIX TRANSPORT: the four database URLs as shop's env settings,
# over PostgreSQL's Unix socket (what a database on the same machine is
# reached by) or over TCP loopback (as across containers).
pg_urls() {
    local db service
    for service in "${SERVICES[@]}"; do
        db="$1_$service"
        if [ "$2" = socket ]; then
            printf 'SHOP_%s__DATABASE__URL=postgres://postgres@localhost/%s?host=%s&port=%s\n' \
                "${service^^}" "$db" "$PG_DATA" "$PG_PORT"
        else
            printf 'SHOP_%s__DATABASE__URL=postgres://postgres@127.0.0.1:%s/%s\n' "${service^^}" "$PG_PORT" "$db"
        fi
    done
}
log "checkout on PostgreSQL (Unix socket): $USERS users, ${DURATION}s x $RUNS"
create_dbs bench
mapfile -t PG_ENV < <(pg_urls bench socket)
start_shop postgres "${PG_ENV[@]}"
PG_READY_MS=$READY_MS
PG_IDLE_SERVER=$(rss_kib "$PG_PID")
checkout postgres "$SHOP_PID"
PG_LOAD_SERVER=$(rss_kib "$PG_PID")
stop_shop
log "checkout on PostgreSQL (TCP loopback): $USERS users, ${DURATION}s x $RUNS"
create_dbs benchtcp
mapfile -t PG_ENV < <(pg_urls benchtcp tcp)
start_shop postgres-tcp "${PG_ENV[@]}"
checkout postgres-tcp "$SHOP_PID"
stop_shop

# --- 4. criterion ----------------------------------------------------------------

CRITERION="(skipped: BENCH_SKIP_CRITERION set)"
if [ -z "${BENCH_SKIP_CRITERION:-}" ]; then
    log "criterion: cargo bench -p shop-discovery --bench pick -- --quick"
    CARGO_TARGET_DIR="$TARGET" cargo bench --quiet -p shop-discovery --bench pick -- --quick \
        >"$WORK/criterion.txt" 2>"$WORK/criterion.err" || { cat "$WORK/criterion.err" >&2; die "cargo bench failed"; }
    # A name is on the line of its `time:` or, when long, on the line before.
    CRITERION=$(awk '
        /time:/ {
            if ($1 != "time:") name = $1
            match($0, /\[[^]]*\]/)
            split(substr($0, RSTART + 1, RLENGTH - 2), p, " ")
            printf "| `%s` | %s %s |\n", name, p[3], p[4]
            next
        }
        /^[a-z_0-9\/-]+$/ { name = $0 }' "$WORK/criterion.txt")
fi

# --- report ------------------------------------------------------------------------

mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/results.md"
{
    echo "<!-- written by scripts/bench.sh; do not edit by hand -->"
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, load before the run: $LOAD_BEFORE."
    echo "${DURATION} s per measurement, median of $RUNS runs; wrk -t1 -c$CONNS on core $CLIENT_CPU with the backend, each proxy alone on core $PROXY_CPU with one worker."
    echo
    echo "### Proxy (same backend, same request)"
    echo
    echo "| contender | requests/s | p50 ms | p99 ms | errors | RSS idle MiB | RSS under load MiB |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for name in "${CONTENDERS[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" \
            "${ERR[$name]}" "$(mib "${IDLE_RSS[$name]}")" "$(mib "${PEAK_RSS[$name]}")"
    done
    echo
    echo "gateway / nginx requests/s: **$GW_NGINX** (median of per-round ratios); gateway / HAProxy: **$GW_HAPROXY**; gateway / bare hyper proxy: **$GW_HYPER**."
    echo "\`direct\` is wrk straight to the backend (both on core $CLIENT_CPU); \`hyper-proxy\` is \`bench-hyper-proxy\`, the least an axum + hyper proxy does (no middleware); \`gateway-auth\` is \`GET /api/cart\` with a bearer token the gateway verifies."
    echo
    echo "### Checkout (through the gateway of \`shop\`, $USERS users, unpinned)"
    echo
    echo "| store | orders/s | order p99 ms | errors | shop RSS idle MiB | shop RSS under load MiB |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for name in sqlite postgres postgres-tcp; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "${CK_RATE[$name]}" "${CK_P99[$name]}" "${CK_ERR[$name]}" \
            "$(mib "${CK_IDLE[$name]}")" "$(mib "${CK_LOAD[$name]}")"
    done
    echo
    echo "\`postgres\` reaches PostgreSQL over its Unix socket, \`postgres-tcp\` over TCP loopback (fresh databases each). PostgreSQL server processes (around the socket runs): $(mib "$PG_IDLE_SERVER") MiB idle, $(mib "$PG_LOAD_SERVER") MiB after the load."
    echo
    echo "### Start-up"
    echo
    echo "\`shop --reset\` (SQLite) launch to every service's \`/readyz\` = 200: **${READY_MEDIAN} ms** (runs: ${READY_RUNS[*]} ms); on PostgreSQL: ${PG_READY_MS} ms."
    echo
    echo "### Criterion: balancer pick (\`cargo bench -p shop-discovery --bench pick -- --quick\`)"
    echo
    echo "| benchmark | median time |"
    echo "| --- | ---: |"
    echo "$CRITERION"
} >"$RESULTS"

# The chart: requests/s and p99 per proxy contender.
for name in "${CONTENDERS[@]}"; do printf '%s %s %s\n' "$name" "${RPS[$name]}" "${P99[$name]}"; done >"$WORK/chart.dat"
gnuplot <<EOF
set terminal pngcairo size 900,420 font "DejaVu Sans,10"
set output "$OUT_DIR/proxy.png"
set multiplot layout 1,2 title "Proxy benchmark: wrk -c$CONNS, ${DURATION}s, median of $RUNS (higher / lower is better)"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
unset key
set xtics rotate by -20
set title "requests/s"
plot "$WORK/chart.dat" using 0:2:xtic(1) with boxes lc rgb "#4477aa", "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.7
set title "p99 latency (ms)"
plot "$WORK/chart.dat" using 0:3:xtic(1) with boxes lc rgb "#cc6677", "" using 0:3:(sprintf("%.2f", \$3)) with labels offset 0,0.7
unset multiplot
EOF

# docs/benchmarks.md shows the latest results between its two markers.
DOC="$ROOT/docs/benchmarks.md"
if grep -q '<!-- results:start -->' "$DOC" 2>/dev/null; then
    awk -v results="$RESULTS" '
        /<!-- results:end -->/ { skipping = 0 }
        !skipping { print }
        /<!-- results:start -->/ { while ((getline line < results) > 0) print line; skipping = 1 }' \
        "$DOC" >"$WORK/benchmarks.md"
    cat "$WORK/benchmarks.md" >"$DOC"
fi

cat "$RESULTS"
log "written $RESULTS, $OUT_DIR/proxy.png and the results section of $DOC"
