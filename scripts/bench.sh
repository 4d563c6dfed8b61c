#!/usr/bin/env bash
# Benchmarks ferroshop on this machine, in one go, and writes the results to
# docs/benchmarks/results.md (included by docs/benchmarks.md) plus its
# charts in docs/benchmarks/. Loopback traffic only; every measurement is
# bounded (BENCH_DURATION seconds, default 10).
#
# The parts, each in scripts/bench/<part>.sh (a function bench_<part>):
#  proxy:     wrk against a minimal backend directly and through the gateway,
#             nginx, HAProxy, a Go httputil.ReverseProxy and a bare hyper proxy.
#  checkout:  bench-checkout (the full saga: stock, payment) through the
#             gateway of `shop`, on SQLite and on a durable PostgreSQL.
#  limit:     pgbench running the SQL of one checkout on the same server: the
#             database's ceiling for the workload.
#  growth:    latency of the index-backed paths as the catalog and the orders
#             grow from 10k to 1M rows, on SQLite and PostgreSQL.
#  footprint: the idle stack's memory, `shop`'s start-up, and the compose
#             stack's images and time to healthy.
#  criterion: the balancer pick benchmark of shop-discovery, --quick.
#
# Usage: scripts/bench.sh [PART...]   (as root to install missing tools)
#        With no PART every part runs and the results land in docs/; with
#        parts, their results are only printed.
# Env:   BENCH_DURATION=10 BENCH_RUNS=3 BENCH_CONNECTIONS=64 BENCH_USERS=32
#        BENCH_KEEP=1 (keep the work directory) CARGO_TARGET_DIR (./target)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ROOT=$(pwd)

ALL_PARTS=(proxy checkout limit growth footprint criterion)
if [ "$#" -gt 0 ]; then PARTS=("$@"); else PARTS=("${ALL_PARTS[@]}"); fi
for part in "${PARTS[@]}"; do
    [ -f "scripts/bench/$part.sh" ] || die "unknown part '$part' (parts: ${ALL_PARTS[*]})"
done

DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
USERS=${BENCH_USERS:-32}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/release"
# Read by the parts (sourced below), like the functions and variables set here.
# shellcheck disable=SC2034
PROXY_CPU=0 CLIENT_CPU=1
export DURATION RUNS CONNS USERS

# --- tools ----------------------------------------------------------------

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
pg_bindir >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
PG_BIN=$(pg_bindir) || die "PostgreSQL server binaries not found"

log "building release binaries into $TARGET (reused when up to date)"
# One build for everything: the same command as scripts/images.sh, so the
# footprint part's images are made from these binaries without a second build.
CARGO_TARGET_DIR="$TARGET" cargo build --release --locked --quiet --workspace --features shop-discovery/etcd --bins

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- housekeeping -----------------------------------------------------------

WORK=$(mktemp -d /tmp/ferroshop-bench.XXXXXX)
chmod 755 "$WORK"
# Charts go to docs/ only in a run of every part.
if [ "${#PARTS[@]}" -eq "${#ALL_PARTS[@]}" ]; then OUT_DIR="$ROOT/docs/benchmarks"; else OUT_DIR="$WORK/benchmarks"; fi
mkdir -p "$OUT_DIR"
PIDS=()
PG_DATAS=()
PG_DATA=""

cleanup() {
    local status=$? data
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for data in "${PG_DATAS[@]}"; do stop_throwaway_pg "$data"; done
    if [ -n "${BENCH_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT INT TERM

# track_pid PID: a process stopped when the script ends.
track_pid() { PIDS+=("$1"); }

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

# wrk's latency (e.g. 1.23ms, 850.00us, 1.02s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# ratio A B: A / B with three decimals, n/a when either is missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b }'; }

# target_row TARGET GOAL MEASURED VERDICT: one row of the generated targets
# table (VERDICT: met, missed or n/a).
target_row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/targets.tsv"; }
: >"$WORK/targets.tsv"

# --- PostgreSQL ---------------------------------------------------------------

# What a production server keeps on: every commit flushed (fsync,
# synchronous_commit) and torn pages guarded (full_page_writes). Tuned only in
# what a real deployment may tune: memory, checkpoint spacing, connections.
BENCH_PG_SETTINGS=(
    -c fsync=on -c synchronous_commit=on -c full_page_writes=on
    -c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=30min
    -c max_connections=400
)

# bench_pg_start NAME [-c SETTING=VALUE...]: a throwaway PostgreSQL with
# production durability in $WORK/pg-NAME; sets PG_DATA, PG_PORT, PG_PID.
bench_pg_start() {
    local name=$1
    shift
    PG_DATA="$WORK/pg-$name"
    PG_PORT=$(free_port)
    PG_DATAS+=("$PG_DATA")
    start_throwaway_pg "$PG_DATA" "$PG_PORT" "${BENCH_PG_SETTINGS[@]}" "$@"
    # shellcheck disable=SC2034
    PG_PID=$(head -n 1 "$PG_DATA/postmaster.pid")
    local setting
    for setting in fsync synchronous_commit full_page_writes; do
        [ "$(pg_setting "$setting")" = on ] || die "PostgreSQL ($name) runs with $setting off"
    done
}

# bench_pg_stop: stops the server bench_pg_start started last.
bench_pg_stop() { stop_throwaway_pg "$PG_DATA"; PG_DATA=""; }

# pg_setting NAME: a setting of the running server.
pg_setting() { run_pg "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -XAtqc "SHOW $1"; }

SERVICES=(users catalog cart orders payments)
# create_dbs PREFIX: one fresh database per service (in this shell, so that
# a failure stops the script).
create_dbs() {
    local service
    for service in "${SERVICES[@]}"; do
        run_pg "$PG_BIN/createdb" -h "$PG_DATA" -p "$PG_PORT" -U postgres "$1_$service"
    done
}
# pg_urls PREFIX TRANSPORT: the database URLs as shop's env settings, over
# PostgreSQL's Unix socket (what a database on the same machine is reached
# by) or over TCP loopback (as across containers).
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

# --- shop ---------------------------------------------------------------------

# start_shop NAME [ENV=VALUE...]: starts `shop` on $WORK/shop-NAME (fresh
# unless SHOP_RESET=0), sets SHOP_PID, SHOP_GATEWAY and READY_MS (launch to
# every /readyz answering 200).
start_shop() {
    local name=$1 data="$WORK/shop-$1" start now addrs addr reset=(--reset)
    shift
    [ "${SHOP_RESET:-1}" = 0 ] && reset=()
    SHOP_PORT=$(free_port)
    start=$(date +%s%N)
    env "$@" SHOP_GATEWAY__RATE_LIMIT__ENABLED=false RUST_LOG=warn \
        "$BIN/shop" --data-dir "$data" "${reset[@]}" --port "$SHOP_PORT" >"$WORK/shop-$name.log" 2>&1 &
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
    # shellcheck disable=SC2034
    READY_MS=$(( (now - start) / 1000000 ))
    # shellcheck disable=SC2034
    SHOP_GATEWAY="http://127.0.0.1:$SHOP_PORT"
}

stop_shop() { kill -TERM "$SHOP_PID" 2>/dev/null || true; wait "$SHOP_PID" 2>/dev/null || true; }

# --- the parts ------------------------------------------------------------------

BENCH_START=$(date +%s)
for part in "${PARTS[@]}"; do
    # shellcheck source=/dev/null
    . "scripts/bench/$part.sh"
    started=$(date +%s)
    log "part $part"
    "bench_$part"
    log "part $part: $(( $(date +%s) - started )) s"
done

# --- report ------------------------------------------------------------------------

RESULTS="$WORK/results.md"
{
    echo "<!-- written by scripts/bench.sh; do not edit by hand -->"
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, load before the run: $LOAD_BEFORE;"
    echo "${DURATION} s per measurement, median of $RUNS runs; the whole run took $(( ($(date +%s) - BENCH_START) / 60 )) min."
    echo
    echo "### Targets"
    echo
    echo "| target | goal | measured | |"
    echo "| --- | --- | --- | --- |"
    awk -F'\t' '{ v = ($4 == "missed") ? "**missed**" : $4; printf "| %s | %s | %s | %s |\n", $1, $2, $3, v }' "$WORK/targets.tsv"
    for part in "${PARTS[@]}"; do
        [ -f "$WORK/$part.md" ] || continue
        echo
        cat "$WORK/$part.md"
    done
} >"$RESULTS"

if [ "${#PARTS[@]}" -eq "${#ALL_PARTS[@]}" ]; then
    cp "$RESULTS" "$OUT_DIR/results.md"
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
    log "written $OUT_DIR/results.md, the charts in $OUT_DIR and the results section of $DOC"
else
    cat "$RESULTS"
    log "charts of this run: $OUT_DIR (BENCH_KEEP=1 keeps them)"
fi
