#!/usr/bin/env bash
# The one test command: formatting, lints, and every test of the workspace
# against a throwaway PostgreSQL and a throwaway etcd.
#
# On a fresh Debian machine with only the Rust toolchain it installs what is
# missing (PostgreSQL, etcd, protoc) with apt when run as root (or via sudo).
# The servers live in a temporary directory on free loopback ports and are
# always stopped on exit. Then the contract test runs schemathesis against
# the API a running `shop` serves (scripts/contract.sh), and the browser
# suite drives the storefront of a running `shop` in headless Chromium
# (scripts/browser.sh; its screenshots go to the temporary directory here —
# `scripts/browser.sh` on its own refreshes docs/screenshots). Last, the README's docker compose quick start runs
# for real (scripts/compose-e2e.sh) with images made from the binaries the
# tests ran. Each phase prints how long it took. Under CI=true a test that needs a server it cannot
# reach fails instead of skipping.
#
# Usage: scripts/test.sh [extra cargo test args...]
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_tools() {
    local missing=()
    pg_bindir >/dev/null || missing+=(postgresql)
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    [ -e /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
    pg_bindir >/dev/null || die "PostgreSQL server binaries not found after install"
    command -v etcd >/dev/null 2>&1 || die "etcd not found after install"
    if command -v rustup >/dev/null 2>&1; then
        cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
        cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
    fi
}

WORK=""
PG_DATA=""
PG_BIN=""
ETCD_PID=""

cleanup() {
    local status=$?
    set +e
    if [ -n "$ETCD_PID" ]; then kill "$ETCD_PID" 2>/dev/null; wait "$ETCD_PID" 2>/dev/null; fi
    stop_throwaway_pg "$PG_DATA"
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT INT TERM

start_postgres() {
    PG_BIN=$(pg_bindir)
    PG_DATA="$WORK/pg"
    local port
    port=$(free_port)
    log "starting PostgreSQL on 127.0.0.1:$port"
    start_throwaway_pg "$PG_DATA" "$port"
    export SHOP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

start_etcd() {
    local client peer
    client=$(free_port)
    peer=$(free_port)
    while [ "$peer" = "$client" ]; do peer=$(free_port); done
    log "starting etcd on 127.0.0.1:$client"
    etcd --name shop-test --data-dir "$WORK/etcd" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "shop-test=http://127.0.0.1:$peer" --initial-cluster-state new \
        >"$WORK/etcd.log" 2>&1 &
    ETCD_PID=$!
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$client/health" 2>/dev/null | grep -q '"health":"true"'; then
            export SHOP_TEST_ETCD_ENDPOINTS="http://127.0.0.1:$client"
            return 0
        fi
        kill -0 "$ETCD_PID" 2>/dev/null || { cat "$WORK/etcd.log" >&2; die "etcd exited"; }
        sleep 0.1
    done
    cat "$WORK/etcd.log" >&2
    die "etcd did not become healthy"
}

main() {
    local started=$SECONDS
    phase "tools" ensure_tools
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-test.XXXXXX")
    chmod 755 "$WORK"
    phase "throwaway PostgreSQL" start_postgres
    phase "throwaway etcd" start_etcd

    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
    # One build, run once: incremental state and full debug info would only
    # cost time and disk (tens of GB for every test binary); line tables keep
    # backtraces readable.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
    export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
    phase "shellcheck scripts" shellcheck -x scripts/*.sh scripts/bench/*.sh .ci/run deploy/images/*.sh
    phase "deployment validation" bash scripts/validate-deploy.sh
    phase "monitoring rules and dashboard (scripts/monitoring.sh)" bash scripts/monitoring.sh
    phase "cargo fmt --check" cargo fmt --all -- --check
    phase "cargo clippy (default features)" cargo clippy --workspace --all-targets -- -D warnings
    phase "cargo clippy (all features)" cargo clippy --workspace --all-targets --all-features -- -D warnings
    # The end-to-end tests start the service binaries as separate processes,
    # and the compose run packs the same binaries into its images.
    phase "cargo build --bins (all features)" cargo build --workspace --all-features --bins
    phase "cargo test (PostgreSQL: $SHOP_TEST_POSTGRES_URL, etcd: $SHOP_TEST_ETCD_ENDPOINTS)" \
        cargo test --workspace --all-features "$@"
    phase "contract test (scripts/contract.sh: schemathesis against a running shop)" \
        bash scripts/contract.sh --bin-dir "${CARGO_TARGET_DIR:-target}/debug"
    phase "browser tests (scripts/browser.sh: the storefront in headless Chromium)" \
        bash scripts/browser.sh --bin-dir "${CARGO_TARGET_DIR:-target}/debug" --screenshots "$WORK/screenshots"
    phase "docker compose stack (scripts/compose-e2e.sh)" bash scripts/compose-e2e.sh --bin-dir "${CARGO_TARGET_DIR:-target}/debug"
    phase "fault harness (scripts/faults.sh)" bash scripts/faults.sh --bin-dir "${CARGO_TARGET_DIR:-target}/debug"
    log "all checks passed in $(( SECONDS - started )) s"
}

main "$@"
