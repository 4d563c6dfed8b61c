#!/usr/bin/env bash
# Shared helpers of the bash scripts (test.sh, validate-deploy.sh, bench.sh,
# dev.sh, images.sh, compose-e2e.sh); each sources it after `cd`-ing to the repository root:
#
#   # shellcheck source=scripts/lib.sh
#   . scripts/lib.sh

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# as_root CMD...: runs CMD as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $* (install it yourself, or run as root)"
    fi
}

# apt_install PACKAGE...: installs Debian packages (apt-get update once).
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $*, and this is not a Debian-like system: install them and retry"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# venv_install DIR REQ...: a Python virtualenv in DIR/venv (python3 and
# python3-venv from apt when missing) holding the pinned REQs
# (`name==version`); installs only those missing or at another version, and
# puts the virtualenv's bin first on PATH. Tools stay in DIR between runs.
venv_install() {
    local dir=$1 py="$1/venv/bin/python" req missing=()
    shift
    if ! "$py" -m pip --version >/dev/null 2>&1; then
        command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
        mkdir -p "$dir"
        python3 -m venv "$dir/venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$dir/venv"; }
    fi
    for req in "$@"; do
        [ "$("$py" -m pip show "${req%%==*}" 2>/dev/null | sed -n 's/^Version: //p')" = "${req##*==}" ] || missing+=("$req")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "pip install ${missing[*]}"
        "$py" -m pip install -q --disable-pip-version-check "${missing[@]}"
    fi
    PATH="$dir/venv/bin:$PATH"
    export PATH
}

# pg_bindir: the newest installed PostgreSQL server's bin directory.
pg_bindir() {
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && printf '%s\n' "$dir"
}

# run_pg CMD...: PostgreSQL refuses to run as root: as root, run CMD as the
# `postgres` user.
run_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a loopback port nothing listens on, outside the kernel's
# ephemeral range (net.ipv4.ip_local_port_range): a port in that range can be
# taken at any moment by an outgoing connection's local end, so a server
# started there later may find it in use. Ports below 10000 are left alone.
free_port() {
    local low=32768 high=60999 from to port
    if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
        read -r low high </proc/sys/net/ipv4/ip_local_port_range
    fi
    # The wider of the two gaps around the ephemeral range.
    if [ $((low - 10000)) -ge $((65535 - high)) ]; then from=10000 to=$((low - 1))
    else from=$((high + 1)) to=65535
    fi
    [ "$to" -gt "$from" ] || die "no port range outside the ephemeral range $low-$high"
    for _ in $(seq 1 200); do
        port=$(( from + (RANDOM * 32768 + RANDOM) % (to - from + 1) ))
        if ! port_in_use "$port"; then printf '%s\n' "$port"; return 0; fi
    done
    die "no free port found in $from-$to"
}

# start_throwaway_pg DATA_DIR PORT [-c SETTING=VALUE...]: a disposable
# PostgreSQL server from $PG_BIN on 127.0.0.1:PORT, its Unix socket in
# DATA_DIR, trust authentication for the superuser `postgres`, and no
# durability (fsync off) unless the extra settings, which come last and so
# win, turn it back on: for tests and benchmarks only. Logs go next to
# DATA_DIR.
start_throwaway_pg() {
    local data=$1 port=$2 parent
    shift 2
    parent=$(dirname "$data")
    mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$parent" postgres
        chown postgres "$data"
    fi
    chmod 700 "$data"
    run_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-sync >"$parent/initdb.log" 2>&1 \
        || { cat "$parent/initdb.log" >&2; die "initdb failed"; }
    run_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 $*" \
        start >/dev/null || { tail -n 50 "$data/server.log" >&2; die "PostgreSQL did not start"; }
}

# stop_throwaway_pg DATA_DIR: stops that server at once, if it runs.
stop_throwaway_pg() {
    if [ -n "$1" ] && [ -f "$1/postmaster.pid" ]; then
        run_pg "$PG_BIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1
    fi
}

# workspace_version: the `version` of [workspace.package] in Cargo.toml (the
# tag of every service image).
workspace_version() {
    sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1
}

# phase NAME CMD...: runs CMD, then logs how long the phase took.
phase() {
    local name=$1 start status=0
    shift
    start=$(date +%s)
    log "$name"
    "$@" || status=$?
    log "$name: $(( $(date +%s) - start )) s$([ "$status" -eq 0 ] || printf ' (failed, exit %s)' "$status")"
    return "$status"
}

# compose ARGS...: the Compose tool, as the `docker compose` plugin or the
# standalone `docker-compose`, whichever this machine has.
compose() {
    if docker compose version >/dev/null 2>&1; then docker compose "$@"
    elif command -v docker-compose >/dev/null 2>&1; then docker-compose "$@"
    else die "neither 'docker compose' nor 'docker-compose' is installed"
    fi
}

# compose_states [COMPOSE_ARGS...]: "<service> <status> <health>", a line
# per container of the compose project COMPOSE_ARGS name (none: the main
# file), from one `docker inspect` of them all.
compose_states() {
    local ids
    ids=$(compose "$@" ps -q)
    [ -n "$ids" ] || return 0
    # shellcheck disable=SC2086 # one argument per container id
    docker inspect --format \
        '{{ index .Config.Labels "com.docker.compose.service" }} {{ .State.Status }} {{ if .State.Health }}{{ .State.Health.Status }}{{ else }}none{{ end }}' $ids
}

# dump_stack [COMPOSE_ARGS...]: after a failure, `compose ps` and each
# container's last 60 log lines, for the compose project COMPOSE_ARGS name
# (e.g. `-f docker-compose.yml -f deploy/compose.faults.yml`; none: the
# main file).
dump_stack() {
    local id name
    log "containers at the failure:"
    compose "$@" ps >&2
    for id in $(compose "$@" ps -q); do
        name=$(docker inspect --format '{{.Name}}' "$id")
        printf '\n----- %s (last 60 lines) -----\n' "${name#/}" >&2
        docker logs --tail 60 "$id" 2>&1 | sed 's/^/  /' >&2
    done
}

# start_test_shop BIN_DIR WORK [EXTRA_TOML]: the all-in-one `shop` from BIN_DIR,
# SQLite under WORK/data, its log in WORK/shop.log; the gateway on a free
# port, every other service on a port of the system's choosing (so a run
# collides with nothing already listening). EXTRA_TOML is appended to its
# configuration file. Sets SHOP_PID and SHOP_BASE (the gateway's URL) and
# returns once the gateway is ready.
start_test_shop() {
    local bin_dir=$1 work=$2 extra=${3:-} port service
    port=$(free_port)
    {
        for service in users catalog cart payments web; do
            printf '[%s]\nhttp.port = 0\nadmin.port = 0\n\n' "$service"
        done
        printf '[orders]\nhttp.port = 0\ngrpc.port = 0\n\n'
        printf '[gateway]\nhttp.port = %s\nadmin.port = 0\n\n%s\n' "$port" "$extra"
    } >"$work/shop.toml"
    log "starting shop on port $port"
    "$bin_dir/shop" --data-dir "$work/data" --port "$port" --config "$work/shop.toml" \
        >"$work/shop.log" 2>&1 &
    SHOP_PID=$!
    SHOP_BASE="http://127.0.0.1:$port"
    for _ in $(seq 1 300); do
        kill -0 "$SHOP_PID" 2>/dev/null || die "shop exited during start-up"
        if curl -fsS -o /dev/null "$SHOP_BASE/readyz" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "shop was not ready within 30 s"
}

# stop_test_shop WORK FAILED: stops the shop of start_test_shop (TERM, then KILL after
# 10 s); when FAILED is not 0, prints the last 80 lines of its log.
stop_test_shop() {
    if [ -n "${SHOP_PID:-}" ] && kill -0 "$SHOP_PID" 2>/dev/null; then
        kill -TERM "$SHOP_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SHOP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SHOP_PID" 2>/dev/null || true
        wait "$SHOP_PID" 2>/dev/null || true
    fi
    if [ "$2" -ne 0 ] && [ -f "$1/shop.log" ]; then
        log "the stack's log (last 80 lines):"
        tail -n 80 "$1/shop.log" >&2
    fi
}

# fetch_debs DIR PACKAGE...: the packages' .deb files (the versions apt
# would install here) downloaded into DIR; nothing is installed.
fetch_debs() {
    local dir=$1
    shift
    command -v apt-get >/dev/null 2>&1 || die "apt-get is needed to fetch Debian's $*"
    mkdir -p "$dir"
    # apt's download sandbox user cannot write a root-owned temporary folder.
    chmod 755 "$dir"
    if ! (cd "$dir" && apt-get download "$@" >"$dir/download.log" 2>&1); then
        log "apt-get update (the package lists do not name the current versions)"
        as_root apt-get update -qq
        (cd "$dir" && apt-get download "$@" >"$dir/download.log" 2>&1) \
            || { cat "$dir/download.log" >&2; die "apt-get download $* failed"; }
    fi
}
