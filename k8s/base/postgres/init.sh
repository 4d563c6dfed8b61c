#!/usr/bin/env bash
# Creates one role and one database per ferroshop service, each role owning
# only its own database (a service cannot read another's tables).
#
# Run once by the official postgres image on an empty data directory (from
# /docker-entrypoint-initdb.d, as the postgres user, while the server listens
# on its Unix socket only). Each role's password is read from the file
# $DB_PASSWORDS_DIR/<service>-db-password (compose: secrets under /run/secrets;
# Kubernetes: the ferroshop-postgres Secret mounted as files).
#
# One file for both stacks: kustomize packs it into a ConfigMap (it reads
# only files below k8s/), docker-compose.yml mounts it from here.
set -euo pipefail

DB_PASSWORDS_DIR="${DB_PASSWORDS_DIR:-/run/secrets}"
SERVICES=(users catalog cart orders payments)

for svc in "${SERVICES[@]}"; do
    file="$DB_PASSWORDS_DIR/$svc-db-password"
    if [ ! -s "$file" ]; then
        echo "init.sh: missing $file (run scripts/gen-secrets.sh)" >&2
        exit 1
    fi
    password=$(tr -d '\n' <"$file")
    # psql variables (:'name' quotes a literal, :"name" an identifier) keep
    # the password out of the command line and out of the server log.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        -v svc="$svc" -v password="$password" <<'SQL'
CREATE ROLE :"svc" LOGIN PASSWORD :'password';
CREATE DATABASE :"svc" OWNER :"svc" ENCODING 'UTF8';
REVOKE ALL ON DATABASE :"svc" FROM PUBLIC;
SQL
    echo "init.sh: created role and database $svc"
done
