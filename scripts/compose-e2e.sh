#!/usr/bin/env bash
# Runs the README's compose quick start for real and checks it:
#
#   scripts/gen-secrets.sh                     secrets, once
#   scripts/images.sh --monitoring             every image, with or without a registry
#   docker compose --profile monitoring up -d  PostgreSQL, etcd, users, catalog, 2 carts,
#                                              2 orders, payments, web, gateway, and the
#                                              monitoring profile: Prometheus, Alertmanager
#   ... every container healthy ...
#   scripts/smoke.sh http://127.0.0.1:8080     the curl journey through the containers
#   ... orders reached catalog's and payments' internal routes ...
#   ... the storefront's pages through the gateway: the product list (HTML,
#       a product the API lists, the Content-Security-Policy), its style
#       sheet, and a shopper signing up and filling a cart with its forms ...
#   ... both cart replicas served shoppers ...
#   ... Prometheus scrapes every container but PostgreSQL (which has no
#       exporter), each up and scraped since the traffic; Alertmanager is
#       ready and Prometheus sends to it ...
#   scripts/monitoring.sh --live URL           the rules are loaded; every metric the
#                                              dashboard and the rules read exists
#   docker compose down -v                     always, even when interrupted
#
# On a failure it prints each container's state and last log lines.
# Without a Docker engine it skips with a note (and fails under CI=true).
#
# Usage: scripts/compose-e2e.sh [--bin-dir DIR] [--without-monitoring]
#   --bin-dir DIR          build the service images from the binaries in DIR
#                          (scripts/test.sh passes the ones its tests ran)
#   --without-monitoring   the stack alone, as `docker compose up -d` runs it
# Env:   FERROSHOP_COMPOSE_TIMEOUT  seconds to wait for every container to be healthy (default 240)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

GATEWAY=http://127.0.0.1:8080
PROMETHEUS=http://127.0.0.1:9090
TIMEOUT="${FERROSHOP_COMPOSE_TIMEOUT:-240}"
# Containers the stack runs, by compose service.
EXPECTED=(postgres etcd users catalog cart-1 cart-2 orders-1 orders-2 payments web gateway)
# The monitoring profile's.
MONITORING=(prometheus alertmanager)

IMAGE_ARGS=()
WITH_MONITORING=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin-dir) shift; IMAGE_ARGS+=(--bin-dir "${1:?--bin-dir needs a directory}") ;;
        --without-monitoring) WITH_MONITORING=0 ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
# The compose profiles the run enables; `down` and `ps` always name the
# monitoring one, so that they see its containers whichever run left them.
PROFILES=()
if [ "$WITH_MONITORING" -eq 1 ]; then
    PROFILES=(--profile monitoring)
    IMAGE_ARGS+=(--monitoring)
    EXPECTED+=("${MONITORING[@]}")
fi
stack() { compose --profile monitoring "$@"; }

STARTED=0
cleanup() {
    local status=$?
    set +e
    if [ "$status" -ne 0 ] && [ "$STARTED" -eq 1 ]; then dump_stack --profile monitoring -f docker-compose.yml; fi
    if [ "$STARTED" -eq 1 ]; then
        log "docker compose down -v"
        stack down -v --remove-orphans --timeout 20 >/dev/null 2>&1
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_healthy() {
    local deadline=$((SECONDS + TIMEOUT)) current service line status health pending
    while :; do
        pending=()
        current=$(compose_states --profile monitoring)
        for service in "${EXPECTED[@]}"; do
            line=$(grep -m 1 "^$service " <<<"$current" || true)
            if [ -z "$line" ]; then pending+=("$service:missing"); continue; fi
            read -r _ status health <<<"$line"
            case "$status/$health" in
                running/healthy) ;;
                exited/*|dead/*) die "$service exited before it was healthy" ;;
                *) pending+=("$service:$status/$health") ;;
            esac
        done
        if [ "${#pending[@]}" -eq 0 ]; then
            log "all ${#EXPECTED[@]} containers healthy"
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "not healthy after ${TIMEOUT}s: ${pending[*]}"
        sleep 2
    done
}

# api_requests SERVICE ADMIN_PORT [PREFIXES]: the requests to routes under
# /api/ and /internal/ (or under the PREFIXES, an awk alternation such as
# `internal`) a container has answered, read from /metrics on its admin port
# (admin.port; the API port does not serve it) inside the compose networks
# (no port of them is published), through the PostgreSQL container's bash
# (PostgreSQL is on every network, payments' too).
api_requests() {
    # shellcheck disable=SC2016 # expanded by the container's bash
    compose exec -T postgres bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
        cat <&3' "$1" "$2" |
        awk -v prefixes="${3:-api|internal}" \
            '/^http_requests_total\{/ && $0 ~ ("route=\"/(" prefixes ")/") { sum += $NF } END { print sum + 0 }'
}

# The smoke journey placed an order: orders' saga reserved stock on catalog
# and took the payment on payments, each over its internal routes (payments
# on a network of its own that orders shares).
check_saga_calls() {
    local catalog payments
    catalog=$(api_requests catalog 9082 internal)
    payments=$(api_requests payments 9086 internal)
    [ "$catalog" -gt 0 ] || die "catalog answered no internal request (stock reservations from orders)"
    [ "$payments" -gt 0 ] || die "payments answered no internal request (orders takes payments there)"
    log "orders reached catalog ($catalog internal requests) and payments ($payments)"
}

# post_json PATH JSON: POSTs through the gateway and prints the body; a 429
# (the gateway's stricter bucket for sign-ups and logins) waits out its
# Retry-After and tries again.
post_json() {
    local body status retry
    body=$(mktemp)
    for _ in $(seq 1 30); do
        status=$(curl -sS -o "$body" -D "$body.headers" -w '%{http_code}' -X POST "$GATEWAY$1" \
            -H 'content-type: application/json' -d "$2")
        if [ "$status" != 429 ]; then break; fi
        retry=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$body.headers")
        sleep "${retry:-1}"
    done
    cat "$body"
    rm -f "$body" "$body.headers"
    case "$status" in 2??) ;; *) die "POST $1 answered $status" ;; esac
}

# page PATH [CURL ARGS...]: GETs a page through the gateway into $PAGE
# (headers in $PAGE.headers) and prints "<status> <content type>".
page() {
    local path=$1
    shift
    curl -sS -o "$PAGE" -D "$PAGE.headers" -w '%{http_code} %{content_type}' "$@" "$GATEWAY$path"
}

# header NAME: the value of response header NAME in $PAGE.headers.
header() {
    sed -n "s/^$1: *//Ip" "$PAGE.headers" | tr -d '\r' | head -n 1
}

# form PATH COOKIE_JAR FIELDS...: POSTs the form FIELDS (name=value, each
# URL-encoded by curl) with the jar's CSRF token and the page's Origin, as a
# browser submitting the page's form does (web refuses a POST from another
# origin, so this proves the gateway passes on the Host and scheme the
# browser used); prints "<status> <location>". A 429 (the gateway's stricter bucket for
# sign-ups and logins, counted against the browser web names) waits out
# its Retry-After and tries again.
form() {
    local path=$1 jar=$2 csrf args=() field result
    shift 2
    # The double-submit token: the form's hidden field equals the cookie.
    csrf=$(awk '$6 == "shop_csrf" { print $7 }' "$jar" | tail -n 1)
    [ -n "$csrf" ] || die "no shop_csrf cookie before POST $path"
    for field in "$@" "csrf_token=$csrf"; do args+=(--data-urlencode "$field"); done
    for _ in $(seq 1 30); do
        result=$(curl -sS -o "$PAGE" -D "$PAGE.headers" -w '%{http_code} %{redirect_url}' \
            -b "$jar" -c "$jar" -H "Origin: $GATEWAY" "${args[@]}" "$GATEWAY$path")
        [ "${result%% *}" = 429 ] || break
        sleep "$(header retry-after | tr -dc 0-9 | grep . || echo 1)"
    done
    printf '%s\n' "$result"
}

# The storefront (web) through the gateway's published port, as a browser
# reaches it: the product list names a product the API lists and carries the
# Content-Security-Policy, the style sheet is served, and a shopper signs up
# and fills a cart with the pages' forms (web calling the API through the
# gateway with the shopper's token and the internal service token). Only
# web renders HTML, so these pages are its own; its /metrics is not read:
# it is on a network of its own that no container with a shell joins.
check_storefront() {
    local work status type product name jar result id
    work=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-web.XXXXXX")
    PAGE="$work/page"
    jar="$work/cookies"
    curl -fsS "$GATEWAY/api/products" >"$work/products.json"
    # A product whose name HTML writes as it is (no character to escape).
    read -r product name < <(sed 's/},{/}\n{/g' "$work/products.json" |
        sed -n 's/.*"id":"\([0-9a-f-]*\)".*"name":"\([A-Za-z0-9 .-]*\)".*/\1 \2/p' | head -n 1)
    [ -n "${name:-}" ] || die "no product with a plain name in /api/products: $(head -c 300 "$work/products.json")"

    read -r status type < <(page /)
    [ "$status" = 200 ] || die "GET / answered $status: $(head -c 300 "$PAGE")"
    case "$type" in text/html*) ;; *) die "GET / is $type, not text/html" ;; esac
    grep -qF "$name" "$PAGE" || die "GET / does not show $name, the first product /api/products lists"
    case "$(header content-security-policy)" in
        *"default-src 'none'"*) ;;
        *) die "GET / has no strict Content-Security-Policy: '$(header content-security-policy)'" ;;
    esac
    read -r status type < <(page /assets/style.css)
    [ "$status" = 200 ] || die "GET /assets/style.css answered $status"
    case "$type" in text/css*) ;; *) die "GET /assets/style.css is $type, not text/css" ;; esac
    log "GET / lists $name (text/html, CSP set); /assets/style.css is text/css"

    # A shopper: the sign-up form (which sets the CSRF cookie), then the
    # product's "Add to cart" form, then the cart page.
    id="web$(date +%s)$$"
    read -r status _ < <(page /signup -b "$jar" -c "$jar")
    [ "$status" = 200 ] || die "GET /signup answered $status"
    result=$(form /signup "$jar" "username=$id" "email=$id@example.com" "password=correct horse battery")
    [ "${result%% *}" = 303 ] || die "POST /signup answered $result: $(head -c 600 "$PAGE")"
    grep -q 'shop_session' "$jar" || die "POST /signup set no shop_session cookie"
    result=$(form /cart/items "$jar" "product_id=$product" "quantity=1")
    case "$result" in 303\ */cart) ;; *) die "POST /cart/items answered $result: $(head -c 600 "$PAGE")" ;; esac
    read -r status _ < <(page /cart -b "$jar")
    [ "$status" = 200 ] || die "GET /cart answered $status"
    grep -qF "$name" "$PAGE" || die "the cart page does not show $name after adding it"
    log "a shopper signed up and put $name in the cart through the storefront's forms"
    rm -rf "$work"
}

# Shoppers (each consistently hashed onto one cart replica by the gateway)
# put an item in their carts until both replicas have served some.
check_cart_replicas() {
    local product one two i user token
    product=$(curl -fsS "$GATEWAY/api/products?limit=1" | sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p' | head -n 1)
    [ -n "$product" ] || die "no product listed"
    for i in $(seq 1 24); do
        one=$(api_requests cart-1 9083)
        two=$(api_requests cart-2 9083)
        if [ "$one" -gt 0 ] && [ "$two" -gt 0 ]; then
            log "both cart replicas served shoppers: cart-1 $one requests, cart-2 $two"
            return 0
        fi
        user="e2e$(date +%s)$$x$i"
        post_json /api/users \
            "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"correct horse battery\"}" >/dev/null
        token=$(post_json /api/sessions "{\"login\":\"$user\",\"password\":\"correct horse battery\"}" |
            sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
        curl -fsS -o /dev/null -X PUT "$GATEWAY/api/cart/items/$product" -H "authorization: Bearer $token" \
            -H 'content-type: application/json' -d '{"quantity":1}'
    done
    die "one cart replica served nothing: cart-1 $one requests, cart-2 $two"
}

# The monitoring profile: Prometheus scrapes every container but PostgreSQL
# (no exporter), each one up and scraped after the traffic of the phases
# before (so the metric check below sees it); Alertmanager answers (its
# health check asks its API) and is the one Prometheus sends alerts to.
check_monitoring() {
    local targets=() service since=$1
    command -v python3 >/dev/null 2>&1 || apt_install python3
    for service in "${EXPECTED[@]}"; do
        [ "$service" = postgres ] || targets+=("$service")
    done
    python3 deploy/monitoring/check.py targets "$PROMETHEUS" --after "$since" \
        --expect "$(IFS=,; printf '%s' "${targets[*]}")"
    curl -fsS "$PROMETHEUS/api/v1/alertmanagers" | grep -q '"url":"http://alertmanager:9093/api/v2/alerts"' \
        || die "Prometheus sends alerts to no Alertmanager: $(curl -sS "$PROMETHEUS/api/v1/alertmanagers")"
    [ "$(docker inspect --format '{{.State.Health.Status}}' "$(stack ps -q alertmanager)")" = healthy ] \
        || die "Alertmanager is not ready"
    log "Alertmanager is ready and receives Prometheus' alerts"
    bash scripts/monitoring.sh --live "$PROMETHEUS"
}

main() {
    if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
        [ "${CI:-}" != true ] || die "the compose run needs a Docker engine under CI=true"
        log "note: no Docker engine answers here; skipping the compose run"
        return 0
    fi
    if [ -n "$(stack ps -q 2>/dev/null)" ]; then
        [ "${CI:-}" = true ] || die "a ferroshop compose stack is already running here: stop it (docker compose --profile monitoring down) and retry"
        log "taking down a stack left by an earlier run"
        stack down -v --remove-orphans --timeout 20 >/dev/null 2>&1
    fi
    if port_in_use 8080; then die "port 8080 is in use on this machine: the compose stack publishes the gateway there"; fi
    if [ "$WITH_MONITORING" -eq 1 ] && port_in_use 9090; then
        die "port 9090 is in use on this machine: the monitoring profile publishes Prometheus there"
    fi

    phase "secrets (scripts/gen-secrets.sh)" bash scripts/gen-secrets.sh
    phase "images (scripts/images.sh ${IMAGE_ARGS[*]})" bash scripts/images.sh "${IMAGE_ARGS[@]}"
    STARTED=1
    phase "docker compose ${PROFILES[*]} up -d" compose "${PROFILES[@]}" up -d
    phase "every container healthy" wait_healthy
    phase "smoke journey through the gateway container" bash scripts/smoke.sh "$GATEWAY"
    phase "orders reached catalog and payments" check_saga_calls
    phase "the storefront through the gateway" check_storefront
    phase "both cart replicas serve" check_cart_replicas
    if [ "$WITH_MONITORING" -eq 1 ]; then
        phase "monitoring: every target up, Alertmanager ready, rules loaded, metrics exist" \
            check_monitoring "$(date +%s)"
    fi
    log "compose run passed"
}

main "$@"
