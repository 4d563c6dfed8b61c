# shellcheck shell=bash
# CK_READY and others are read by later parts.
# shellcheck disable=SC2034
# The checkout part of scripts/bench.sh (sourced; see there): bench-checkout
# (crates/bench) through the gateway of `shop` — every iteration puts a
# product in the cart and places an order through the whole saga (stock
# reserved in catalog, payment authorised and captured by payments, order
# confirmed, cart cleared) — on SQLite, and on a throwaway PostgreSQL with
# production durability (fsync, synchronous_commit and full_page_writes on)
# over its Unix socket and over TCP loopback. Then one round each of what a
# deployment may tune, on the same server, so every change is measured
# against the durable baseline. Not pinned: `shop`, PostgreSQL and the client
# share both cores.

# cpu_ms PID: the CPU time (user + system, ms) PID has used so far, with
# that of its children: reaped ones (PostgreSQL's backends of connections
# already closed) and live ones (its server processes).
cpu_ms() {
    # One cat for every process: one that ends meanwhile is skipped.
    cat /proc/[0-9]*/stat 2>/dev/null \
        | sed 's/^\([0-9]*\) (.*) /\1 /' \
        | awk -v p="$1" -v hz="$(getconf CLK_TCK)" '
            $1 == p { t += $13 + $14 + $15 + $16 }
            $3 == p { t += $13 + $14 }
            END { printf "%.0f", t * 1000 / hz }'
}

# per_order MS ORDERS: milliseconds per order, two decimals.
per_order() { awk -v t="$1" -v o="$2" 'BEGIN { if (o > 0) printf "%.2f", t / o; else print "n/a" }'; }

# checkout_runs NAME ROUNDS PIDS...: ROUNDS checkout runs against
# $SHOP_GATEWAY; medians into CK_RATE, CK_P50, CK_P99, CK_ERR, CK_IDLE,
# CK_LOAD [NAME]; CPU per order over all rounds in CK_CPU [NAME] (`shop`,
# PostgreSQL when PG_PID names a running server, the client).
checkout_runs() {
    local name=$1 rounds=$2 out rates="" p50s="" p99s="" errs=0 peak=0 rss round pid
    local orders=0 client_ms=0 shop_before pg_before=0 pg_cpu=–
    shift 2
    sleep 1
    CK_IDLE[$name]=$(rss_kib "$@")
    shop_before=$(cpu_ms "$SHOP_PID")
    [ "$name" != sqlite ] && pg_before=$(cpu_ms "$PG_PID")
    for round in $(seq 1 "$rounds"); do
        out="$WORK/checkout-$name-$round.txt"
        # `times` in the subshell: bench-checkout's own CPU time, as its
        # parent saw it when it was reaped.
        (
            "$BIN/bench-checkout" --base "$SHOP_GATEWAY" --users "$USERS" --duration-secs "$DURATION" \
                --products "${CHECKOUT_PRODUCTS:-0}" --prefix "b${round}u" >"$out" 2>"$out.err" || exit
            times >"$out.times"
        ) &
        pid=$!
        sleep $((DURATION / 2 + 4))
        rss=$(rss_kib "$@")
        [ "$rss" -gt "$peak" ] && peak=$rss
        wait "$pid" || { cat "$out.err" >&2; die "bench-checkout ($name) failed"; }
        log "  $name round $round: $(cat "$out")"
        orders=$((orders + $(sed -n 's/.*orders=\([0-9]*\).*/\1/p' "$out")))
        # The second line of `times`: children's user and system time, "1m2.345s".
        client_ms=$(awk -v t="$client_ms" 'NR == 2 {
                for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += (a[1] * 60 + a[2]) * 1000 }
            } END { printf "%.0f", t }' "$out.times")
        # An error is a finding: show what it was.
        grep -h 'first error' "$out.err" >&2 || true
        rates+="$(sed -n 's/.*orders_per_s=\([0-9.]*\).*/\1/p' "$out")"$'\n'
        p50s+="$(sed -n 's/.*order_p50_ms=\([0-9.]*\).*/\1/p' "$out")"$'\n'
        p99s+="$(sed -n 's/.*order_p99_ms=\([0-9.]*\).*/\1/p' "$out")"$'\n'
        errs=$((errs + $(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$out")))
    done
    CK_RATE[$name]=$(printf '%s' "$rates" | median)
    CK_P50[$name]=$(printf '%s' "$p50s" | median)
    CK_P99[$name]=$(printf '%s' "$p99s" | median)
    CK_ERR[$name]=$errs
    CK_LOAD[$name]=$peak
    [ "$name" != sqlite ] && pg_cpu=$(per_order $(($(cpu_ms "$PG_PID") - pg_before)) "$orders")
    CK_CPU[$name]="$pg_cpu · $(per_order $(($(cpu_ms "$SHOP_PID") - shop_before)) "$orders") · $(per_order "$client_ms" "$orders")"
}

# Units every product gets before a run: no run sells one out.
CHECKOUT_STOCK=100000000

# restock SQL_CLIENT...: gives every product CHECKOUT_STOCK units, through
# the catalog database's command-line client (psql or sqlite3) — the way
# an operator would; the benchmark's own API has no stock route.
restock() {
    "$@" <<<"UPDATE products SET stock = $CHECKOUT_STOCK;" >/dev/null || die "cannot restock the catalog"
}

# pg_checkout NAME TRANSPORT ROUNDS [ENV=VALUE...]: fresh databases, `shop`
# on them, ROUNDS checkout runs; also the server's commits and WAL flushes
# per order in CK_COMMITS and CK_FLUSHES [NAME].
pg_checkout() {
    local name=$1 transport=$2 rounds=$3 db=${1//-/_} before after orders
    shift 3
    create_dbs "$db"
    mapfile -t PG_ENV < <(pg_urls "$db" "$transport")
    start_shop "$name" "${PG_ENV[@]}" "$@"
    CK_READY[$name]=$READY_MS
    restock run_pg "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -d "${db}_catalog" -Xq -v ON_ERROR_STOP=1
    before=$(pg_counters)
    checkout_runs "$name" "$rounds" "$SHOP_PID"
    after=$(pg_counters)
    stop_shop
    orders=$(run_pg "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -d "${db}_orders" -XAtqc \
        "SELECT count(*) FROM orders WHERE status = 'confirmed'")
    CK_COMMITS[$name]=$(awk -v b="$before" -v a="$after" -v o="$orders" \
        'BEGIN { split(b, x, " "); split(a, y, " "); if (o > 0) printf "%.1f", (y[1] - x[1]) / o; else print "n/a" }')
    CK_FLUSHES[$name]=$(awk -v b="$before" -v a="$after" -v o="$orders" \
        'BEGIN { split(b, x, " "); split(a, y, " "); if (o > 0) printf "%.2f", (y[2] - x[2]) / o; else print "n/a" }')
}

# pg_counters: "commits wal_syncs" of the whole server so far.
pg_counters() {
    run_pg "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -XAtq -F ' ' -c \
        "SELECT (SELECT sum(xact_commit) FROM pg_stat_database), (SELECT wal_sync FROM pg_stat_wal)"
}

# pg_set SETTING=VALUE...: changes settings of the running server (reload).
pg_set() {
    local kv
    for kv in "$@"; do
        run_pg "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -XAtqc "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null
    done
    run_pg "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -XAtqc "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
}

bench_checkout() {
    declare -gA CK_RATE CK_P50 CK_P99 CK_ERR CK_IDLE CK_LOAD CK_READY CK_COMMITS CK_FLUSHES CK_CPU
    local name fsync_rate

    log "checkout on SQLite: $USERS users, ${DURATION}s x $RUNS"
    start_shop sqlite
    CK_READY[sqlite]=$READY_MS
    restock sqlite3 -bail "$WORK/shop-sqlite/catalog.db"
    checkout_runs sqlite "$RUNS" "$SHOP_PID"
    stop_shop

    log "starting a durable throwaway PostgreSQL"
    bench_pg_start checkout
    CHECKOUT_PG_IDLE=$(rss_kib "$PG_PID")
    fsync_rate=$(cd "$WORK" && "$PG_BIN/pg_test_fsync" -s 1 -f "$WORK/fsync.test" 2>/dev/null \
        | awk '/^ *fdatasync/ {print $2; exit}')

    log "checkout on PostgreSQL (Unix socket): $USERS users, ${DURATION}s x $RUNS"
    pg_checkout postgres socket "$RUNS"
    CHECKOUT_PG_LOAD=$(rss_kib "$PG_PID")
    log "checkout on PostgreSQL (TCP loopback): $USERS users, ${DURATION}s x $RUNS"
    pg_checkout postgres-tcp tcp "$RUNS"

    # What a deployment may tune, one round each on the durable server.
    log "tuning: group commit (commit_delay 200 µs when 4 others are committing)"
    pg_set commit_delay=200 commit_siblings=4
    pg_checkout pg-commit-delay socket 1
    pg_set commit_delay=0 commit_siblings=5
    log "tuning: pools of 4 and 20 connections per service (default 10)"
    mapfile -t POOL_ENV < <(for s in "${SERVICES[@]}"; do echo "SHOP_${s^^}__DATABASE__MAX_CONNECTIONS=4"; done)
    pg_checkout pg-pool-4 socket 1 "${POOL_ENV[@]}"
    mapfile -t POOL_ENV < <(for s in "${SERVICES[@]}"; do echo "SHOP_${s^^}__DATABASE__MAX_CONNECTIONS=20"; done)
    pg_checkout pg-pool-20 socket 1 "${POOL_ENV[@]}"
    log "a flash sale: every user buys the same product"
    CHECKOUT_PRODUCTS=1 pg_checkout pg-one-product socket 1
    log "for comparison: what durability costs (not a setting a shop may use)"
    pg_set synchronous_commit=off
    pg_checkout pg-async-commit socket 1
    pg_set fsync=off full_page_writes=off
    pg_checkout pg-no-fsync socket 1
    pg_set synchronous_commit=on fsync=on full_page_writes=on
    # The limit part measures the same server; keep it running for it.

    {
        echo "### Checkout (through the gateway of \`shop\`, $USERS users, full saga, unpinned)"
        echo
        echo "Every product is restocked to $CHECKOUT_STOCK units before a run; user n buys product n mod 16 (the demo"
        echo "catalog's 16, in id order), as a shop's buyers spread over its catalog."
        echo "PostgreSQL 15 with fsync, synchronous_commit and full_page_writes on (checked before the runs);"
        echo "\`${BENCH_PG_SETTINGS[*]}\`. This disk: ${fsync_rate:-n/a} fdatasync/s for one 8 kB write (\`pg_test_fsync\`)."
        echo
        echo "| store | orders/s | order p50 ms | order p99 ms | errors | transactions / order | WAL flushes / order | CPU ms / order: PostgreSQL · shop · client | shop RSS idle MiB | shop RSS under load MiB |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for name in sqlite postgres postgres-tcp; do
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${CK_RATE[$name]}" "${CK_P50[$name]}" \
                "${CK_P99[$name]}" "${CK_ERR[$name]}" "${CK_COMMITS[$name]:-–}" "${CK_FLUSHES[$name]:-–}" \
                "${CK_CPU[$name]}" "$(mib "${CK_IDLE[$name]}")" "$(mib "${CK_LOAD[$name]}")"
        done
        echo
        echo "\`postgres\` reaches PostgreSQL over its Unix socket, \`postgres-tcp\` over TCP loopback (fresh databases each)."
        echo "Transactions / order: PostgreSQL's committed transactions (\`pg_stat_database\`), single statements outside"
        echo "BEGIN/COMMIT included. CPU ms / order: user + system time over all rounds (from \`/proc\`) of the PostgreSQL"
        echo "server (every backend and background process), of \`shop\` and of the client, divided by the orders placed;"
        echo "the two cores give 2,000 CPU ms a second, so their sum bounds orders/s."
        echo "PostgreSQL server processes: $(mib "$CHECKOUT_PG_IDLE") MiB idle, $(mib "$CHECKOUT_PG_LOAD") MiB after the load (VmRSS summed over processes: shared buffers counted once per process)."
        echo
        echo "#### What each setting buys (one round each, Unix socket, against the durable baseline above)"
        echo
        echo "| variant | orders/s | × baseline | order p99 ms | errors | transactions / order | WAL flushes / order | CPU ms / order: PostgreSQL · shop · client |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for name in postgres pg-commit-delay pg-pool-4 pg-pool-20 pg-one-product pg-async-commit pg-no-fsync; do
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${CK_RATE[$name]}" \
                "$(ratio "${CK_RATE[$name]}" "${CK_RATE[postgres]}")" "${CK_P99[$name]}" "${CK_ERR[$name]}" \
                "${CK_COMMITS[$name]}" "${CK_FLUSHES[$name]}" "${CK_CPU[$name]}"
        done
        echo
        echo "\`postgres\`: the durable baseline (median of $RUNS); \`pg-commit-delay\`: \`commit_delay = 200\`, \`commit_siblings = 4\` (group commit waits for others);"
        echo "\`pg-pool-4\`/\`pg-pool-20\`: every service's pool at 4/20 connections (default 10); \`pg-one-product\`: every user buys the same"
        echo "product (a flash sale: each reservation waits for the one product row, held until its COMMIT is on disk);"
        echo "\`pg-async-commit\`: \`synchronous_commit = off\`"
        echo "(a crash may lose the last moments of confirmed orders); \`pg-no-fsync\`: fsync and full_page_writes off as well (a crash may corrupt the"
        echo "database) — the last two only to show what durability costs."
    } >"$WORK/checkout.md"
    target_row "checkout on durable PostgreSQL (full saga)" "≥ 1,000 orders/s, p99 reported" \
        "${CK_RATE[postgres]} orders/s ($(ratio "${CK_RATE[postgres]}" 1000)×), p99 ${CK_P99[postgres]} ms; over TCP ${CK_RATE[postgres-tcp]}; SQLite ${CK_RATE[sqlite]}" \
        "$(awk -v r="${CK_RATE[postgres]}" 'BEGIN { print (r >= 1000) ? "met" : "missed" }')"
}
