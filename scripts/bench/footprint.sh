# shellcheck shell=bash
# The footprint part of scripts/bench.sh (sourced; see there): how long
# `shop` takes from launch to every service ready, what the whole idle stack
# holds in memory, and, where a Docker engine answers, the compose stack's
# images (made from this run's release binaries by scripts/images.sh) and the
# time from `docker compose up -d` to every container healthy.

# compose_footprint: fills FP_IMAGES (markdown rows), FP_UP_S, FP_STACK_MIB
# and FP_CONTAINERS; leaves FP_UP_S empty when no engine answers.
compose_footprint() {
    local version svc image size start deadline states total=0
    FP_UP_S=""
    if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
        log "no Docker engine answers: the compose figures are skipped"
        return 0
    fi
    if [ -n "$(compose ps -q 2>/dev/null)" ]; then
        log "a ferroshop compose stack runs here: the compose figures are skipped (stop it to measure)"
        return 0
    fi
    port_in_use 8080 && { log "port 8080 is in use: the compose figures are skipped"; return 0; }
    bash scripts/gen-secrets.sh >/dev/null
    log "images from this run's release binaries (scripts/images.sh --bin-dir $BIN)"
    bash scripts/images.sh --bin-dir "$BIN" >"$WORK/images.log" 2>&1 || { tail -n 30 "$WORK/images.log" >&2; die "scripts/images.sh failed"; }
    version=$(workspace_version)
    FP_IMAGES=""
    for svc in users catalog cart orders payments web gateway; do
        image="localhost/ferroshop/$svc:$version"
        size=$(docker image inspect --format '{{.Size}}' "$image")
        total=$((total + size))
        FP_IMAGES+="| \`$image\` | $(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }') |"$'\n'
    done
    for image in $(compose config 2>/dev/null | awk '$1 == "image:" && $2 !~ /ferroshop\// {print $2}' | sort -u); do
        size=$(docker image inspect --format '{{.Size}}' "$image" 2>/dev/null || echo 0)
        FP_IMAGES+="| \`$image\` (stand-in from Debian's packages) | $(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }') |"$'\n'
    done
    FP_SERVICE_IMAGES_MIB=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
    # One image holds every layer of the runtime base: the services' own share is their binary.
    log "docker compose up -d"
    start=$(date +%s%N)
    compose up -d >"$WORK/compose-up.log" 2>&1 || { cat "$WORK/compose-up.log" >&2; compose down -v >/dev/null 2>&1; die "docker compose up failed"; }
    deadline=$((SECONDS + 240))
    while :; do
        states=$(compose_states)
        FP_CONTAINERS=$(grep -c . <<<"$states" || true)
        if [ "$FP_CONTAINERS" -gt 0 ] && ! grep -qv ' running healthy$' <<<"$states"; then break; fi
        if grep -q ' exited \| dead ' <<<"$states" || [ "$SECONDS" -ge "$deadline" ]; then
            printf '%s\n' "$states" >&2
            compose down -v >/dev/null 2>&1
            die "the compose stack did not become healthy"
        fi
        sleep 0.2
    done
    FP_UP_S=$(awk -v ns="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.1f", ns / 1e9 }')
    sleep 5
    # shellcheck disable=SC2046 # one argument per container id
    FP_STACK_MIB=$(docker stats --no-stream --format '{{.MemUsage}}' $(compose ps -q) |
        awk '{ v = $1; n = v + 0; if (v ~ /GiB$/) n *= 1024; else if (v ~ /KiB$/) n /= 1024; else if (v ~ /B$/ && v !~ /iB$/) n /= 1048576; s += n } END { printf "%.0f", s }')
    log "compose stack healthy after ${FP_UP_S} s; $FP_CONTAINERS containers, ${FP_STACK_MIB} MiB"
    compose down -v --timeout 20 >/dev/null 2>&1
}

bench_footprint() {
    local ready_runs=() idle pg_ready=n/a
    # The checkout part's start-up on PostgreSQL, when it ran.
    if declare -p CK_READY >/dev/null 2>&1 && [ -n "${CK_READY[postgres]:-}" ]; then pg_ready=${CK_READY[postgres]}; fi

    for _ in $(seq 1 "$RUNS"); do
        start_shop ready
        ready_runs+=("$READY_MS")
        stop_shop
    done
    FP_READY=$(printf '%s\n' "${ready_runs[@]}" | median)
    log "shop ready after ${ready_runs[*]} ms"

    start_shop idle
    sleep 5
    idle=$(rss_kib "$SHOP_PID")
    FP_THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$SHOP_PID/status")
    stop_shop
    FP_IDLE_MIB=$(mib "$idle")
    log "idle stack: $FP_IDLE_MIB MiB, $FP_THREADS threads"

    compose_footprint

    {
        echo "### Footprint"
        echo
        echo "- \`shop --reset\` (SQLite, every service: users, catalog, cart, orders, payments, gateway, web) from launch to every"
        echo "  service's \`/readyz\` = 200: **${FP_READY} ms** (runs: ${ready_runs[*]} ms); on PostgreSQL: $pg_ready ms."
        echo "- The whole idle stack (\`shop\` on SQLite, 5 s after it is ready): **${FP_IDLE_MIB} MiB** resident, $FP_THREADS threads."
        if [ -n "$FP_UP_S" ]; then
            echo "- The compose stack (\`docker compose up -d\`, $FP_CONTAINERS containers, default profile): every container healthy"
            echo "  **${FP_UP_S} s** after \`up -d\` (health checks every 5 s: the first check of a container runs 5 s after it starts);"
            echo "  ${FP_STACK_MIB} MiB of memory across the containers 5 s later (\`docker stats\`, PostgreSQL included)."
            echo
            echo "| image | size MiB |"
            echo "| --- | ---: |"
            printf '%s' "$FP_IMAGES"
            echo
            echo "The seven service images share the runtime base layer; their sizes sum to $FP_SERVICE_IMAGES_MIB MiB as Docker counts them."
        else
            echo "- The compose figures need a Docker engine and were not measured in this run."
        fi
    } >"$WORK/footprint.md"
    target_row "whole idle stack (\`shop\`, SQLite)" "≤ 64 MiB resident" "$FP_IDLE_MIB MiB" \
        "$(awk -v m="$FP_IDLE_MIB" 'BEGIN { print (m <= 64) ? "met" : "missed" }')"
    target_row "\`shop\` start-up to every \`/readyz\`" "≤ 2 s" "${FP_READY} ms" \
        "$(awk -v m="$FP_READY" 'BEGIN { print (m <= 2000) ? "met" : "missed" }')"
    if [ -n "$FP_UP_S" ]; then
        target_row "compose: \`up -d\` to every container healthy" "measured (no target)" "${FP_UP_S} s, $FP_CONTAINERS containers" "n/a"
    fi
}
