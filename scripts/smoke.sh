#!/bin/sh
# The curl journey through the gateway: register, log in, browse (with
# stock), fill the cart, and check out through the saga — a confirmed order
# (its idempotency key sent twice) that takes stock, an order refused for a
# sold-out product, a declined payment, an order without a payment token,
# and a cancellation that gives the stock back (cancelled twice). Prints
# each step; stops at the first unexpected status or answer with the
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
HEADERS="$TMP/headers"
RUN=$(date +%s)$$
USERNAME="smoke$RUN"
PASSWORD="correct horse battery staple"
STEP=0
# How long an order still pending (202) or cancelling is polled, in seconds.
SETTLE_SECS=30

show() {
    if command -v jq >/dev/null 2>&1 && jq . "$BODY" >/dev/null 2>&1; then
        if [ -t 1 ]; then jq -C . "$BODY"; else jq . "$BODY"; fi | head -n 40
    else
        head -c 2000 "$BODY"; echo
    fi
}

fail() { echo "$*" >&2; show >&2; exit 1; }

# call EXPECTED METHOD PATH [JSON] [extra curl args...]
# EXPECTED is a status or several separated by '|' (201|202).
call() {
    expected=$1 method=$2 path=$3
    shift 3
    data=""
    if [ $# -gt 0 ]; then data=$1; shift; fi
    STEP=$((STEP + 1))
    if [ -n "$data" ]; then
        status=$(curl -sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' -X "$method" "$BASE$path" \
            -H 'content-type: application/json' -d "$data" "$@") || status=000
    else
        status=$(curl -sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' -X "$method" "$BASE$path" "$@") || status=000
    fi
    case "|$expected|" in
        *"|$status|"*) ;;
        *)
            printf '%2d. %s %s -> %s, expected %s\n' "$STEP" "$method" "$path" "$status" "$expected" >&2
            show >&2
            exit 1
            ;;
    esac
    printf '%2d. %s %s -> %s\n' "$STEP" "$method" "$path" "$status"
}

field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$BODY" | head -n 1; }
number() { sed -n "s/.*\"$1\":\(-\{0,1\}[0-9]*\).*/\1/p" "$BODY" | head -n 1; }

# stock PRODUCT: the product's available stock, as the catalog reports it.
stock() {
    curl -sS -o "$TMP/product" "$BASE/api/products/$1" || { echo "cannot read product $1" >&2; exit 1; }
    level=$(sed -n 's/.*"stock":\([0-9]*\).*/\1/p' "$TMP/product" | head -n 1)
    [ -n "$level" ] || { echo "product $1 has no stock field" >&2; head -c 2000 "$TMP/product" >&2; exit 1; }
    echo "$level"
}

# expect_stock PRODUCT WANT WHY
expect_stock() {
    level=$(stock "$1")
    if [ "$level" != "$2" ]; then
        echo "stock of $1 is $level, expected $2 ($3)" >&2
        exit 1
    fi
    echo "    stock of $1: $level ($3)"
}

# settle PATH: polls the order at PATH while it is pending or cancelling.
settle() {
    waited=0
    while :; do
        case "$(field status)" in
            pending | cancelling) ;;
            *) return 0 ;;
        esac
        [ "$waited" -lt "$SETTLE_SECS" ] || fail "order $1 still $(field status) after ${SETTLE_SECS}s"
        sleep 1
        waited=$((waited + 1))
        curl -sS -o "$BODY" "$BASE$1" -H "$AUTH" || fail "cannot read $1"
    done
}

# place KEY PAYMENT_TOKEN WANT_STATUS: places an order from the cart with a
# new key; a new order is 201 once settled, or 202 with a Location to poll
# while pending. Sets ORDER.
place() {
    call '201|202' POST /api/orders "{\"payment_token\":\"$2\"}" -H "$AUTH" -H "Idempotency-Key: $1"
    ORDER=$(field id)
    [ -n "$ORDER" ] || fail "no order id in the response"
    if [ "$status" = 202 ]; then
        location=$(sed -n 's/^[Ll]ocation: *\([^[:space:]]*\).*/\1/p' "$HEADERS")
        [ "$location" = "/api/orders/$ORDER" ] || fail "202 without the order's Location (got '$location')"
        echo "    pending: polling $location"
        settle "$location"
    fi
    [ "$(field status)" = "$3" ] || fail "order $ORDER is $(field status), expected $3"
    echo "    order $ORDER: $3"
}

echo "ferroshop smoke test against $BASE"
call 200 GET /readyz

call 201 POST /api/users "{\"username\":\"$USERNAME\",\"email\":\"$USERNAME@example.com\",\"password\":\"$PASSWORD\"}"
call 200 POST /api/sessions "{\"login\":\"$USERNAME\",\"password\":\"$PASSWORD\"}"
TOKEN=$(field access_token)
[ -n "$TOKEN" ] || fail "no access_token in the login response"
AUTH="authorization: Bearer $TOKEN"
call 200 GET /api/users/me "" -H "$AUTH"

# Two products with a few units in stock, and one sold out (the demo
# catalog has one).
call 200 GET '/api/products?limit=100'
grep -o '"id":"[0-9a-f-]*"[^}]*"stock":[0-9]*' "$BODY" |
    sed 's/^"id":"\([0-9a-f-]*\)".*"stock":\([0-9]*\)$/\1 \2/' >"$TMP/stock"
IN_STOCK=$(awk '$2 >= 3 { print $1 }' "$TMP/stock" | head -n 2)
FIRST=$(echo "$IN_STOCK" | sed -n 1p)
SECOND=$(echo "$IN_STOCK" | sed -n 2p)
SOLD_OUT=$(awk '$2 == 0 { print $1; exit }' "$TMP/stock")
if [ -z "$FIRST" ] || [ -z "$SECOND" ]; then
    fail "the catalog lists fewer than two products with 3 or more in stock"
fi
[ -n "$SOLD_OUT" ] || fail "the catalog lists no sold-out product (stock 0)"
call 200 GET "/api/products/$FIRST"
FIRST_STOCK=$(number stock)
SECOND_STOCK=$(stock "$SECOND")
echo "    $FIRST: $FIRST_STOCK in stock; $SECOND: $SECOND_STOCK; $SOLD_OUT: sold out"

call 200 PUT "/api/cart/items/$FIRST" '{"quantity":2}' -H "$AUTH"
call 200 PUT "/api/cart/items/$SECOND" '{"quantity":1}' -H "$AUTH"
call 200 GET /api/cart "" -H "$AUTH"
show

# Without a payment token nothing is placed.
call 422 POST /api/orders '{}' -H "$AUTH" -H "Idempotency-Key: smoke-$RUN-nopay"
grep -q '"payment_token"' "$BODY" || fail "the 422 does not name payment_token"

# Confirmed: paid with tok_visa, the stock taken.
KEY="smoke-$RUN"
place "$KEY" tok_visa confirmed
CONFIRMED=$ORDER
expect_stock "$FIRST" $((FIRST_STOCK - 2)) "2 ordered"
expect_stock "$SECOND" $((SECOND_STOCK - 1)) "1 ordered"
call 200 POST /api/orders '{"payment_token":"tok_visa"}' -H "$AUTH" -H "Idempotency-Key: $KEY"
AGAIN=$(field id)
if [ "$AGAIN" != "$CONFIRMED" ]; then
    echo "the same idempotency key gave two orders: $CONFIRMED and $AGAIN" >&2
    exit 1
fi
echo "    same key, same order: $CONFIRMED"

call 200 GET /api/orders "" -H "$AUTH"
grep -q "$CONFIRMED" "$BODY" || fail "order $CONFIRMED is not in the list"
call 200 GET "/api/orders/$CONFIRMED" "" -H "$AUTH"

# Rejected out of stock: a sold-out product in the cart refuses the whole
# order, and no stock moves.
call 200 PUT "/api/cart/items/$FIRST" '{"quantity":1}' -H "$AUTH"
call 200 PUT "/api/cart/items/$SOLD_OUT" '{"quantity":1}' -H "$AUTH"
place "smoke-$RUN-sold-out" tok_visa rejected
REJECTED=$ORDER
[ "$(field reason)" = out_of_stock ] || fail "rejected for '$(field reason)', expected out_of_stock"
grep -q "\"out_of_stock\":\[[^]]*\"$SOLD_OUT\"" "$BODY" || fail "the rejection does not name $SOLD_OUT"
echo "    rejected: out_of_stock, naming $SOLD_OUT"
expect_stock "$FIRST" $((FIRST_STOCK - 2)) "unchanged by the rejected order"
expect_stock "$SOLD_OUT" 0 "still sold out"

# Rejected by the payment provider: nothing is taken.
call 204 DELETE "/api/cart/items/$SOLD_OUT" "" -H "$AUTH"
place "smoke-$RUN-declined" tok_declined rejected
[ "$(field reason)" = payment_declined ] || fail "rejected for '$(field reason)', expected payment_declined"
[ -n "$(field decline_reason)" ] || fail "a declined payment without a decline_reason"
echo "    rejected: payment_declined ($(field decline_reason))"
expect_stock "$FIRST" $((FIRST_STOCK - 2)) "unchanged by the declined order"

# Cancelled: refunded and the stock given back; cancelling again answers
# the cancelled order; a rejected order cannot be cancelled.
call 200 POST "/api/orders/$CONFIRMED/cancel" "" -H "$AUTH"
settle "/api/orders/$CONFIRMED"
[ "$(field status)" = cancelled ] || fail "order $CONFIRMED is $(field status) after cancel, expected cancelled"
expect_stock "$FIRST" "$FIRST_STOCK" "back after the cancellation"
expect_stock "$SECOND" "$SECOND_STOCK" "back after the cancellation"
call 200 POST "/api/orders/$CONFIRMED/cancel" "" -H "$AUTH"
[ "$(field status)" = cancelled ] || fail "a second cancel answered $(field status), expected cancelled"
call 409 POST "/api/orders/$REJECTED/cancel" "" -H "$AUTH"

echo "smoke test passed: $STEP steps"
