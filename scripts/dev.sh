#!/usr/bin/env bash
# Runs ferroshop as separate local processes — gateway, users, catalog, two
# carts, orders, payments and the storefront (web) — finding each other
# through a local etcd, each with its own SQLite database under ./data/dev
# (web has none). catalog, cart and payments check the internal service
# token that orders presents; the gateway checks the one web presents.
#
# Ports: each service's default (users 8081, catalog 8082, cart-1 8083,
# orders 8084, payments 8086, web 8087, gateway 8080), cart-2 8085; admin
# listeners at port + 1000. Open http://127.0.0.1:8080/ for the shop. For
# people who want to see real separate processes without containers.
# Ctrl-C stops everything.
#
# Usage: scripts/dev.sh [--release]
# Needs etcd and protoc (installed with apt when missing and run as root).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PROFILE=debug
CARGO_FLAGS=()
if [ "${1:-}" = "--release" ]; then PROFILE=release; CARGO_FLAGS=(--release); fi


missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler libprotobuf-dev)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "please install: ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "building the service binaries with etcd discovery"
cargo build "${CARGO_FLAGS[@]}" --workspace --all-features --bins
BIN="target/$PROFILE"

DATA=./data/dev
mkdir -p "$DATA"
ETCD_CLIENT=${ETCD_PORT:-23791}
ETCD_PEER=$((ETCD_CLIENT + 1))
PIDS=()

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    wait 2>/dev/null
    log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting etcd on 127.0.0.1:$ETCD_CLIENT (data in $DATA/etcd)"
etcd --name ferroshop-dev --data-dir "$DATA/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "ferroshop-dev=http://127.0.0.1:$ETCD_PEER" >"$DATA/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$ETCD_CLIENT/health" >/dev/null 2>&1 && break
    sleep 0.1
done

KEY_ENV=()
if [ ! -f "$DATA/signing-key.pem" ] && command -v openssl >/dev/null 2>&1; then
    openssl genpkey -algorithm ed25519 -out "$DATA/signing-key.pem" 2>/dev/null
    chmod 600 "$DATA/signing-key.pem"
fi
# Without a key file users generates a temporary key (tokens then end with it).
[ -f "$DATA/signing-key.pem" ] && KEY_ENV=(SHOP_AUTH__SIGNING_KEY_FILE="$DATA/signing-key.pem")
if [ ! -f "$DATA/service-token" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/service-token"
fi
SERVICE_TOKEN=$(cat "$DATA/service-token")

export SHOP_REGISTRY__BACKEND=etcd
export SHOP_REGISTRY__ENDPOINTS="[\"http://127.0.0.1:$ETCD_CLIENT\"]"
export SHOP_HTTP__HOST=127.0.0.1

# start NAME BINARY PORT [ENV=VALUE...]. The HTTP services also get an
# admin listener (/metrics) on loopback at PORT + 1000 (orders' admin
# listener is its HTTP one).
start() {
    local name=$1 binary=$2 port=$3 admin=()
    shift 3
    if [ "$binary" != shop-orders ]; then
        admin=(SHOP_ADMIN__HOST=127.0.0.1 SHOP_ADMIN__PORT=$((port + 1000)))
    fi
    env SHOP_HTTP__PORT="$port" "${admin[@]}" SHOP_INSTANCE__ID="$name" "$@" "$BIN/$binary" >"$DATA/$name.log" 2>&1 &
    PIDS+=($!)
    printf '  %-8s http://127.0.0.1:%s  (log %s)\n' "$name" "$port" "$DATA/$name.log"
}

log "starting the services"
start users shop-users 8081 SHOP_DATABASE__URL="sqlite:$DATA/users.db" \
    "${KEY_ENV[@]}" SHOP_LOGIN_LIMIT__TRUST_FORWARDED_FOR=true
start catalog shop-catalog 8082 SHOP_DATABASE__URL="sqlite:$DATA/catalog.db" SHOP_INTERNAL__SERVICE_TOKEN="$SERVICE_TOKEN"
start cart-1 shop-cart 8083 SHOP_DATABASE__URL="sqlite:$DATA/cart.db" SHOP_INTERNAL__SERVICE_TOKEN="$SERVICE_TOKEN"
start cart-2 shop-cart 8085 SHOP_DATABASE__URL="sqlite:$DATA/cart.db" SHOP_INTERNAL__SERVICE_TOKEN="$SERVICE_TOKEN"
start payments shop-payments 8086 SHOP_DATABASE__URL="sqlite:$DATA/payments.db" \
    SHOP_INTERNAL__SERVICE_TOKEN="$SERVICE_TOKEN"
start orders shop-orders 8084 SHOP_DATABASE__URL="sqlite:$DATA/orders.db" SHOP_GRPC__HOST=127.0.0.1 \
    SHOP_GRPC__PORT=50051 SHOP_INTERNAL__SERVICE_TOKEN="$SERVICE_TOKEN"
start web shop-web 8087 SHOP_INTERNAL__SERVICE_TOKEN="$SERVICE_TOKEN"
start gateway shop-gateway 8080 SHOP_INTERNAL__SERVICE_TOKEN="$SERVICE_TOKEN"

for port in 8081 8082 8083 8085 8086 8084 8087 8080; do
    ready=0
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=1; break; fi
        sleep 0.1
    done
    [ "$ready" -eq 1 ] || die "the service on port $port did not become ready; see $DATA/*.log"
done
log "ready: the shop on http://127.0.0.1:8080/ (the API under /api/) — try scripts/smoke.sh; Ctrl-C stops everything"
wait
