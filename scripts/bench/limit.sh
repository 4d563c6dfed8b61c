# shellcheck shell=bash
# LIMIT_TPS, LIMIT_P50 and LIMIT_P99 are for later parts.
# shellcheck disable=SC2034
# The limit part of scripts/bench.sh (sourced; see there): the database's
# ceiling for the checkout workload. pgbench runs bench/pgbench/checkout.sql
# — every statement one checkout iteration of bench-checkout sends to the
# services' databases, in order (crates/shop/tests/checkout_sql.rs keeps it
# equal to the code's) — on the checkout part's PostgreSQL when it still
# runs (else on a durable one of its own), over the Unix socket, with as
# many clients as the checkout has users, prepared statements as sqlx uses.
# The ratio checkout orders/s ÷ pgbench transactions/s says how much of the
# database's capacity the services turn into orders.

# limit_pgbench ROUND: one pgbench run of $DURATION s; prints its tps and
# leaves its per-transaction logs in $LIMIT_DIR/round-ROUND.*.
limit_pgbench() {
    local round=$1 out="$LIMIT_DIR/pgbench-$1.txt"
    (cd "$LIMIT_DIR" && run_pg "$PG_BIN/pgbench" -n -M prepared -f "$LIMIT_DIR/checkout.sql" \
        -c "$USERS" -j 2 -T "$DURATION" "${LIMIT_VARS[@]}" \
        -l --log-prefix="$LIMIT_DIR/round-$round" \
        -h "$PG_DATA" -p "$PG_PORT" -U postgres "$LIMIT_DB") >"$out" 2>&1 \
        || { cat "$out" >&2; die "pgbench (round $round) failed"; }
    grep -q 'number of failed transactions: 0 ' "$out" \
        || { cat "$out" >&2; die "pgbench (round $round): transactions failed"; }
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | head -n 1
}

# limit_percentile P FILE...: the P-th percentile (0-100) of the latencies,
# in ms, of pgbench per-transaction logs (3rd column, µs).
limit_percentile() {
    local p=$1
    shift
    awk '{ print $3 }' "$@" | sort -n | awk -v p="$p" '
        { v[NR] = $1 }
        END { if (NR == 0) { print "n/a"; exit } i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.2f\n", v[i] / 1000 }'
}

bench_limit() {
    local own_server=0 psql service file round tps rates="" p50s="" p99s="" statements tps_med
    local ck_rate="" ratio_text verdict where="the checkout's PostgreSQL server"
    # The checkout part's orders/s on the durable PostgreSQL, when it ran.
    # shellcheck disable=SC2153
    if declare -p CK_RATE >/dev/null 2>&1; then ck_rate=${CK_RATE[postgres]:-}; fi
    LIMIT_DB=limit_checkout
    LIMIT_DIR="$WORK/limit"
    mkdir -p "$LIMIT_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$LIMIT_DIR"
    cp "$ROOT/bench/pgbench/checkout.sql" "$LIMIT_DIR/checkout.sql"

    if [ -z "${PG_DATA:-}" ] || [ ! -S "$PG_DATA/.s.PGSQL.$PG_PORT" ]; then
        log "no PostgreSQL running: starting a durable one for the limit"
        bench_pg_start limit
        own_server=1
        where="a PostgreSQL server of its own, set up as the checkout's"
    else
        log "limit on the checkout's PostgreSQL ($PG_DATA)"
    fi
    psql=(run_pg "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -X -q -v ON_ERROR_STOP=1)

    # Every service's tables in one database (no name is shared), made by
    # the services' own migrations, in order.
    run_pg "$PG_BIN/dropdb" -h "$PG_DATA" -p "$PG_PORT" -U postgres --if-exists "$LIMIT_DB"
    run_pg "$PG_BIN/createdb" -h "$PG_DATA" -p "$PG_PORT" -U postgres "$LIMIT_DB"
    for service in users catalog cart orders payments; do
        for file in "$ROOT/migrations/$service"/*.sql; do
            "${psql[@]}" -d "$LIMIT_DB" -f - <"$file" >/dev/null || die "migration $file failed"
        done
    done

    # pgbench binds '' where the code binds NULL (see the script's header):
    # the partial index of pending sagas leaves '' out as it leaves NULL out,
    # and the payments check reads '' as NULL, so rows and index entries are
    # the services' own.
    "${psql[@]}" -d "$LIMIT_DB" >/dev/null <<'SQL' || die "cannot adapt the schema to pgbench's NULLs"
DROP INDEX orders_saga_due;
CREATE INDEX orders_saga_due ON orders (saga_due_at) WHERE saga_step IS NOT NULL AND saga_step <> '';
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO STRICT name FROM pg_constraint
    WHERE conrelid = 'payments'::regclass AND pg_get_constraintdef(oid) LIKE '%decline_reason IS NOT NULL%';
    EXECUTE format('ALTER TABLE payments DROP CONSTRAINT %I', name);
END $$;
ALTER TABLE payments ADD CONSTRAINT payments_decline_reason_check
    CHECK ((state = 'declined') = (NULLIF(decline_reason, '') IS NOT NULL));
SQL

    # As the benchmark has it: user n buys the (n mod count)-th product in
    # id order, every product with stock enough for any run; each user's
    # cart row exists (the warm-up made it). The line's name and price are
    # the first product's for all.
    IFS=$'\t' read -r LIMIT_PRODUCTS LIMIT_NAME LIMIT_PRICE LIMIT_CURRENCY < <("${psql[@]}" -d "$LIMIT_DB" -At -F $'\t' -c \
        "SELECT (SELECT count(*) FROM products), name, price_cents, currency FROM products ORDER BY id LIMIT 1")
    [ "${LIMIT_PRODUCTS:-0}" -gt 0 ] || die "no product in the catalog migrations"
    LIMIT_VARS=(-D "products=$LIMIT_PRODUCTS" -D "product_name=$LIMIT_NAME" -D "price=$LIMIT_PRICE" -D "currency=$LIMIT_CURRENCY")
    "${psql[@]}" -d "$LIMIT_DB" -v users="$USERS" >/dev/null <<'SQL' || die "cannot seed the limit database"
UPDATE products SET stock = 1000000000;
INSERT INTO carts (user_id, version, updated_at)
    SELECT '00000000-0000-7000-8000-' || lpad(n::text, 12, '0'), 1, '2026-01-01T00:00:00.000Z'
    FROM generate_series(0, :users - 1) AS n;
VACUUM ANALYZE;
SQL
    # The services' statements (and round trips) per order: the script's
    # SQL commands but pgbench's own setup query.
    statements=$(grep -v '^[[:space:]]*--' "$ROOT/bench/pgbench/checkout.sql" | grep -c ';[[:space:]]*$')

    for round in $(seq 1 "$RUNS"); do
        tps=$(limit_pgbench "$round")
        tps=$(awk -v t="$tps" 'BEGIN { if (t != "") printf "%.1f", t }')
        [ -n "$tps" ] || die "pgbench (round $round) printed no tps"
        p50s+="$(limit_percentile 50 "$LIMIT_DIR/round-$round".*)"$'\n'
        p99s+="$(limit_percentile 99 "$LIMIT_DIR/round-$round".*)"$'\n'
        rates+="$tps"$'\n'
        log "  limit round $round: $tps tps"
    done
    tps_med=$(printf '%s' "$rates" | median)
    LIMIT_TPS=$tps_med
    LIMIT_P50=$(printf '%s' "$p50s" | median)
    LIMIT_P99=$(printf '%s' "$p99s" | median)
    [ "$own_server" -eq 1 ] && bench_pg_stop

    if [ -n "$ck_rate" ]; then
        ratio_text=$(ratio "$ck_rate" "$tps_med")
        verdict=$(awk -v r="$ratio_text" 'BEGIN { print (r == "n/a") ? "n/a" : ((r + 0 >= 0.5) ? "met" : "missed") }')
    else
        ratio_text="n/a"
        verdict="n/a"
    fi
    {
        echo "### The database's limit for the checkout (pgbench)"
        echo
        echo "pgbench runs [\`bench/pgbench/checkout.sql\`](../bench/pgbench/checkout.sql): one transaction is every statement one"
        echo "checkout iteration sends to the databases, in the services' order and with their texts (a test,"
        echo "\`crates/shop/tests/checkout_sql.rs\`, fails when the script and the code part) — the cart line, the order, the"
        echo "saga's reads and writes in orders, catalog's stock reservation, payments' authorisation and capture, the"
        echo "outbox row and cart's removal of the ordered lines, the acknowledgement — $statements statements"
        echo "(sqlx's BEGIN and COMMIT included; one per round trip) plus one of pgbench's own for fresh ids and timestamps."
        echo "On $where (production durability), one database holding every service's tables"
        echo "(from \`migrations/\`), Unix socket, \`-M prepared\` (sqlx prepares every statement), $USERS clients (one per"
        echo "user, as the checkout's), 2 threads, ${DURATION} s, median of $RUNS; client n buys product n mod $LIMIT_PRODUCTS in id order, as"
        echo "bench-checkout's user n does. No HTTP, no services: what is left is the database's own work for an order."
        echo
        echo "| transactions/s (orders/s) | p50 ms | p99 ms | checkout orders/s | checkout ÷ limit |"
        echo "| ---: | ---: | ---: | ---: | ---: |"
        echo "| $tps_med | $LIMIT_P50 | $LIMIT_P99 | ${ck_rate:-n/a} | $ratio_text |"
        echo
        echo "p50/p99 from pgbench's per-transaction logs (every transaction of the round). Rounds: $(printf '%s' "$rates" | tr '\n' ' ')tps."
        echo
        echo "Statements (= round trips) per order, by service, from the script:"
        echo
        echo "| service | statements | of which BEGIN / COMMIT |"
        echo "| --- | ---: | ---: |"
        awk '/^-- @/ { svc = $3; sub(/:$/, "", svc); if (svc != "pgbench" && !(svc in n)) { order[++k] = svc; n[svc] = 0 } next }
             /^[[:space:]]*--/ { next }
             /;[[:space:]]*$/ && svc != "pgbench" { n[svc]++; if ($1 == "BEGIN;" || $1 == "COMMIT;") tx[svc]++ }
             END { for (i = 1; i <= k; i++) printf "| %s | %d | %d |\n", order[i], n[order[i]], tx[order[i]] }' \
            "$ROOT/bench/pgbench/checkout.sql"
    } >"$WORK/limit.md"
    target_row "checkout ÷ database limit (pgbench, same SQL)" "≥ 0.5×" \
        "${ck_rate:-n/a} ÷ $tps_med = ${ratio_text}×" "$verdict"
}
