#!/usr/bin/env bash
# The fault harness over the compose stack (issue #20): brings up the
# README's stack with a second replica of users, catalog and the gateway,
# runs crates/faults against it, and takes it down:
#
#   scripts/gen-secrets.sh                     secrets, once
#   scripts/images.sh [--bin-dir DIR]          every image (bases are kept when cached)
#   docker compose -f docker-compose.yml -f deploy/compose.faults.yml up -d
#   ... every container healthy ...
#   shop-faults --write-doc docs/resilience.md every scenario: a checkout load through both
#                                              gateways while a container is killed, paused,
#                                              partitioned, etcd stopped, every replica rolled;
#                                              then the books of each are audited
#   docker compose down -v                     always, even when interrupted
#
# Exits non-zero when a scenario's books are not clean or its error target
# is missed (the harness prints why). On a failure it prints each
# container's state and last log lines. Without a Docker engine it skips
# with a note (and fails under CI=true).
#
# Usage: scripts/faults.sh [--bin-dir DIR] [-- HARNESS ARGS...]
#   --bin-dir DIR   build the service images from the binaries in DIR and run
#                   DIR/shop-faults (scripts/test.sh passes the ones its tests
#                   ran; default: target/debug, built when missing)
#   HARNESS ARGS    passed to shop-faults (e.g. --scenario kill-cart-1; see
#                   shop-faults --help); by default it writes docs/resilience.md
# Env:   FERROSHOP_COMPOSE_TIMEOUT  seconds to wait for every container to be healthy (default 240)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

TIMEOUT="${FERROSHOP_COMPOSE_TIMEOUT:-240}"
FILES=(-f docker-compose.yml -f deploy/compose.faults.yml)
# The gateways the harness balances over (deploy/compose.faults.yml publishes the second).
PORTS=(8080 8090)

BIN_DIR=""
HARNESS_ARGS=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin-dir) shift; BIN_DIR="${1:?--bin-dir needs a directory}" ;;
        --) shift; HARNESS_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
[ "${#HARNESS_ARGS[@]}" -gt 0 ] || HARNESS_ARGS=(--write-doc docs/resilience.md)

stack() { compose "${FILES[@]}" "$@"; }

STARTED=0
cleanup() {
    local status=$?
    set +e
    if [ "$status" -ne 0 ] && [ "$STARTED" -eq 1 ]; then dump_stack "${FILES[@]}"; fi
    if [ "$STARTED" -eq 1 ]; then
        log "docker compose down -v"
        stack down -v --remove-orphans --timeout 20 >/dev/null 2>&1
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# default_services: the services `up` starts without a profile (the
# monitoring profile's are not part of the fault stack).
default_services() {
    stack config | awk '
        /^services:/ { in_services = 1; next }
        /^[^ ]/ { in_services = 0 }
        in_services && /^  [A-Za-z0-9_.-]+:$/ { name = $1; sub(/:$/, "", name); all[name] = 1 }
        in_services && /^    profiles:/ { delete all[name] }
        END { for (name in all) print name }'
}

# Every container of the stack running and healthy (those with a health check).
wait_healthy() {
    local deadline=$((SECONDS + TIMEOUT)) ids expected current pending
    expected=$(default_services | wc -l)
    [ "$expected" -gt 0 ] || die "docker compose config names no service"
    while :; do
        ids=$(stack ps -q)
        current=""
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086 # one argument per container id
            current=$(docker inspect --format \
                '{{ index .Config.Labels "com.docker.compose.service" }}:{{ .State.Status }}/{{ if .State.Health }}{{ .State.Health.Status }}{{ else }}healthy{{ end }}' $ids)
        fi
        if grep -qE ':(exited|dead|restarting)/' <<<"$current"; then
            die "a container exited before it was healthy: $(grep -E ':(exited|dead|restarting)/' <<<"$current" | tr '\n' ' ')"
        fi
        pending=$(grep -v ':running/healthy$' <<<"$current" | tr '\n' ' ' || true)
        if [ "$(grep -c ':running/healthy$' <<<"$current" || true)" -eq "$expected" ]; then
            log "all $expected containers healthy"
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "not healthy after ${TIMEOUT}s: ${pending:-containers missing}"
        sleep 2
    done
}

harness() {
    local bin="${BIN_DIR:-target/debug}/shop-faults"
    if [ ! -x "$bin" ]; then
        [ -z "$BIN_DIR" ] || die "$bin is missing: build it with cargo build --workspace --all-features --bins"
        cargo build -p shop-faults --all-features
    fi
    "$bin" "${HARNESS_ARGS[@]}"
}

main() {
    local port image_args=()
    if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
        [ "${CI:-}" != true ] || die "the fault harness needs a Docker engine under CI=true"
        log "note: no Docker engine answers here; skipping the fault harness"
        return 0
    fi
    if [ -n "$(stack ps -q 2>/dev/null)" ]; then
        [ "${CI:-}" = true ] || die "a ferroshop compose stack is already running here: stop it (docker compose down) and retry"
        log "taking down a stack left by an earlier run"
        stack down -v --remove-orphans --timeout 20 >/dev/null 2>&1
    fi
    for port in "${PORTS[@]}"; do
        if port_in_use "$port"; then die "port $port is in use on this machine: the stack publishes a gateway there"; fi
    done
    [ -z "$BIN_DIR" ] || image_args=(--bin-dir "$BIN_DIR")

    phase "secrets (scripts/gen-secrets.sh)" bash scripts/gen-secrets.sh
    phase "images (scripts/images.sh ${image_args[*]})" bash scripts/images.sh "${image_args[@]}"
    STARTED=1
    phase "docker compose up -d (with deploy/compose.faults.yml)" stack up -d
    phase "every container healthy" wait_healthy
    phase "fault scenarios (shop-faults ${HARNESS_ARGS[*]})" harness
    log "fault harness passed"
}

main "$@"
