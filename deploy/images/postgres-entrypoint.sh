#!/bin/bash
# Entry point of the PostgreSQL stand-in image that scripts/images.sh builds
# from Debian's PostgreSQL 15 where no registry is reachable. It honours the
# part of the official `postgres` image's conventions that ferroshop's
# compose file and Kubernetes manifests rely on, so the same files run on
# either image:
#
#   PGDATA                      data directory (default /var/lib/postgresql/data)
#   POSTGRES_USER               superuser created by initdb (default postgres)
#   POSTGRES_PASSWORD(_FILE)    its password (required unless the method is trust)
#   POSTGRES_DB                 an extra database to create (default: $POSTGRES_USER)
#   POSTGRES_HOST_AUTH_METHOD   pg_hba method for connections over TCP (default scram-sha-256)
#   POSTGRES_INITDB_ARGS        extra initdb arguments
#   /docker-entrypoint-initdb.d/*.sh, *.sql   run once on an empty data
#                               directory, while the server listens on its
#                               Unix socket only (executable .sh files are
#                               run, others sourced)
#
# Started as root it prepares the directories and re-executes itself as the
# postgres user (uid 999, as in the official image); started as that user it
# goes straight on. Arguments starting with `-` are passed to `postgres`.
set -Eeuo pipefail

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "${1:-}" != postgres ]; then exec "$@"; fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 2775 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

password() {
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        [ -r "$POSTGRES_PASSWORD_FILE" ] || { log "cannot read POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE"; exit 1; }
        tr -d '\n' <"$POSTGRES_PASSWORD_FILE"
    else
        printf '%s' "${POSTGRES_PASSWORD:-}"
    fi
}

init_cluster() {
    local user="${POSTGRES_USER:-postgres}" method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    local db="${POSTGRES_DB:-$user}" pw pwfile file
    pw=$(password)
    if [ -z "$pw" ] && [ "$method" != trust ]; then
        log "the data directory is empty and no superuser password is set: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE"
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$pw" >"$pwfile"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$method" \
        --encoding=UTF8 ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    printf 'host all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"

    # Socket only while the init scripts run: a client that can connect over
    # TCP may rely on everything being created.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start >/dev/null
    export PGUSER="$user"
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname postgres -v db="$db" <<<'CREATE DATABASE :"db";'
    fi
    for file in /docker-entrypoint-initdb.d/*; do
        [ -e "$file" ] || continue
        case "$file" in
            *.sh)
                if [ -x "$file" ]; then log "running $file"; "$file"
                else log "sourcing $file"; # shellcheck disable=SC1090
                    . "$file"
                fi ;;
            *.sql) log "running $file"; psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname "$db" -f "$file" ;;
            *) log "ignoring $file" ;;
        esac
    done
    unset PGUSER
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "database cluster initialised in $PGDATA"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then init_cluster; fi
exec "$@"
