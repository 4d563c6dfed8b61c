#!/bin/sh
# The curl journey through the gateway: register, log in, browse, fill the
# cart, place an order (sending its idempotency key twice), list orders,
# cancel. Prints each step; stops at the first unexpected status with the
# response body and exits non-zero.
#
# Usage: scripts/smoke.sh [GATEWAY_URL]     (default http://127.0.0.1:8080)
# Needs curl and a POSIX shell; uses jq to pretty-print when it is there.
set -eu

BASE=${1:-http://127.0.0.1:8080}
BASE=${BASE%/}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-smoke.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
BODY="$TMP/body"
RUN=$(date +%s)$$
USERNAME="smoke$RUN"
PASSWORD="correct horse battery staple"
STEP=0

show() {
    if command -v jq >/dev/null 2>&1 && jq . "$BODY" >/dev/null 2>&1; then
        if [ -t 1 ]; then jq -C . "$BODY"; else jq . "$BODY"; fi | head -n 40
    else
        head -c 2000 "$BODY"; echo
    fi
}

# call EXPECTED METHOD PATH [JSON] [extra curl args...]
call() {
    expected=$1 method=$2 path=$3
    shift 3
    data=""
    if [ $# -gt 0 ]; then data=$1; shift; fi
    STEP=$((STEP + 1))
    if [ -n "$data" ]; then
        status=$(curl -sS -o "$BODY" -w '%{http_code}' -X "$method" "$BASE$path" \
            -H 'content-type: application/json' -d "$data" "$@") || status=000
    else
        status=$(curl -sS -o "$BODY" -w '%{http_code}' -X "$method" "$BASE$path" "$@") || status=000
    fi
    if [ "$status" != "$expected" ]; then
        printf '%2d. %s %s -> %s, expected %s\n' "$STEP" "$method" "$path" "$status" "$expected" >&2
        show >&2
        exit 1
    fi
    printf '%2d. %s %s -> %s\n' "$STEP" "$method" "$path" "$status"
}

field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$BODY" | head -n 1; }

echo "ferroshop smoke test against $BASE"
call 200 GET /readyz

call 201 POST /api/users "{\"username\":\"$USERNAME\",\"email\":\"$USERNAME@example.com\",\"password\":\"$PASSWORD\"}"
call 200 POST /api/sessions "{\"login\":\"$USERNAME\",\"password\":\"$PASSWORD\"}"
TOKEN=$(field access_token)
[ -n "$TOKEN" ] || { echo "no access_token in the login response" >&2; show >&2; exit 1; }
AUTH="authorization: Bearer $TOKEN"
call 200 GET /api/users/me "" -H "$AUTH"

call 200 GET '/api/products?limit=5'
PRODUCTS=$(grep -o '"id":"[0-9a-f-]*"' "$BODY" | sed 's/"id":"\(.*\)"/\1/' | head -n 2)
FIRST=$(echo "$PRODUCTS" | sed -n 1p)
SECOND=$(echo "$PRODUCTS" | sed -n 2p)
if [ -z "$FIRST" ] || [ -z "$SECOND" ]; then
    echo "the catalog lists fewer than two products" >&2; show >&2; exit 1
fi
call 200 GET "/api/products/$FIRST"

call 200 PUT "/api/cart/items/$FIRST" '{"quantity":2}' -H "$AUTH"
call 200 PUT "/api/cart/items/$SECOND" '{"quantity":1}' -H "$AUTH"
call 200 GET /api/cart "" -H "$AUTH"
show

KEY="smoke-$RUN"
call 201 POST /api/orders "" -H "$AUTH" -H "Idempotency-Key: $KEY"
ORDER=$(field id)
[ -n "$ORDER" ] || { echo "no order id in the response" >&2; show >&2; exit 1; }
call 200 POST /api/orders "" -H "$AUTH" -H "Idempotency-Key: $KEY"
AGAIN=$(field id)
if [ "$AGAIN" != "$ORDER" ]; then
    echo "the same idempotency key gave two orders: $ORDER and $AGAIN" >&2
    exit 1
fi
echo "    same key, same order: $ORDER"

call 200 GET /api/orders "" -H "$AUTH"
grep -q "$ORDER" "$BODY" || { echo "order $ORDER is not in the list" >&2; show >&2; exit 1; }
call 200 GET "/api/orders/$ORDER" "" -H "$AUTH"
call 200 POST "/api/orders/$ORDER/cancel" "" -H "$AUTH"
call 409 POST "/api/orders/$ORDER/cancel" "" -H "$AUTH"

echo "smoke test passed: $STEP steps"
