#!/usr/bin/env bash
# Contract test: the served API against its own OpenAPI document.
#
# Starts the all-in-one `shop` (SQLite in a temporary directory, the
# gateway on a free port), registers a user and logs in, then runs
# schemathesis with every check against the document the gateway serves at
# /api/openapi.json, the bearer token on every request. The seed and the
# example count are fixed, so a run is repeatable; any failure fails the
# script. The stack is always stopped, and its log printed when the run
# fails.
#
# The fuzz stack's gateway gets generous rate limits (a config file with a
# [gateway.rate_limit] table): at the default limits most generated requests
# would only ever see the 429 that every operation documents, and nothing
# behind it would be tested. The users service's own login limiter is kept,
# so the 429 of /api/sessions is exercised too.
#
# schemathesis comes pinned from PyPI into a virtualenv under the tools
# directory (python3-venv from apt when missing), once.
#
# Usage: scripts/contract.sh [--bin-dir DIR]
#   --bin-dir DIR  where the `shop` binary is (default target/debug; build it
#                  with `cargo build -p shop`)
# Env:   FERROSHOP_CONTRACT_TOOLS  where tools live (default ~/.cache/ferroshop/contract-tools)
#        CONTRACT_EXAMPLES         examples per operation (default 150)
#        CONTRACT_SEED             the generator's seed (default 18)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES="${CONTRACT_EXAMPLES:-150}"
SEED="${CONTRACT_SEED:-18}"
TOOLS="${FERROSHOP_CONTRACT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ferroshop/contract-tools}"
BIN_DIR=target/debug

while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin-dir) [ "$#" -ge 2 ] || die "--bin-dir needs a directory"; BIN_DIR=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[ -x "$BIN_DIR/shop" ] || die "no shop binary in $BIN_DIR (cargo build -p shop)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-contract.XXXXXX")
STATUS=1

stop_stack() {
    stop_test_shop "$WORK" "$STATUS"
    rm -rf "$WORK"
}
trap stop_stack EXIT

# The fuzz stack's rate limits (see the top of this file).
RATE_LIMITS='[gateway.rate_limit]
per_second = 10000
burst = 10000

[gateway.rate_limit.login]
per_minute = 100000
burst = 10000'

# bearer_token: registers a fresh user and logs in; prints the access token.
bearer_token() {
    local name password
    name="contract-$(date +%s)-$RANDOM"
    password="contract-test-password-$RANDOM"
    curl -fsS -o /dev/null -X POST "$BASE/api/users" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$name\",\"email\":\"$name@example.com\",\"password\":\"$password\"}" \
        || die "registering the test user failed"
    curl -fsS -X POST "$BASE/api/sessions" -H 'Content-Type: application/json' \
        -d "{\"login\":\"$name\",\"password\":\"$password\"}" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' \
        || die "logging the test user in failed"
}

venv_install "$TOOLS" "schemathesis==$SCHEMATHESIS_VERSION"
start_test_shop "$BIN_DIR" "$WORK" "$RATE_LIMITS"
BASE=$SHOP_BASE
TOKEN=$(bearer_token)

log "schemathesis $SCHEMATHESIS_VERSION: all checks, seed $SEED, $EXAMPLES examples per operation"
# From the work directory: schemathesis keeps a cache folder where it runs.
(cd "$WORK" && schemathesis run "$BASE/api/openapi.json" \
    --checks all \
    --seed "$SEED" \
    --max-examples "$EXAMPLES" \
    --generation-database none \
    --header "Authorization: Bearer $TOKEN" \
    --request-timeout 10 \
    --no-color)
STATUS=0
log "contract test passed"
