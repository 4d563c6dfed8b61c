# shellcheck shell=bash
# The growth part of scripts/bench.sh (sourced; see there): what the
# index-backed paths cost as the data grows. For SQLite (shop's default
# store) and a durable PostgreSQL (over its Unix socket): `shop` starts once
# on the empty store so its services run their migrations, stops, and then
# for each size bench-growth seeds the catalog, the orders (spread over 10k
# users) and the users up to it — adding only what is missing — and measures
# p50/p99 of each path through the gateway of a `shop` started on that data.
# Target: p99 grows at most 2x from the smallest size to the largest.
#
# Env: GROWTH_SIZES ("10000 100000 1000000"), GROWTH_SAMPLES (2000 per path).

GROWTH_PATHS=(products_first_page products_deep_page product_by_id place_order orders_first_page)

# growth_db DB NAME USERS_URL CATALOG_URL ORDERS_URL [ENV=VALUE...]: every
# size on one database; results in $WORK/growth-DB.tsv (size, path, samples,
# p50, p99, errors) and $WORK/growth-DB-seed.tsv (size, table, before,
# added, seconds).
growth_db() {
    local db=$1 name=$2 users_url=$3 catalog_url=$4 orders_url=$5 size out
    shift 5
    : >"$WORK/growth-$db.tsv"
    : >"$WORK/growth-$db-seed.tsv"
    # The services' own migrations make the schemas.
    start_shop "$name" "$@"
    stop_shop
    for size in "${GROWTH_SIZES[@]}"; do
        out="$WORK/growth-$db-$size"
        "$BIN/bench-growth" seed --users-db "$users_url" --catalog-db "$catalog_url" --orders-db "$orders_url" \
            --products "$size" --orders "$size" >"$out.seed" || die "bench-growth seed ($db, $size) failed"
        awk -v s="$size" '{ print s "\t" $0 }' "$out.seed" >>"$WORK/growth-$db-seed.tsv"
        log "  $db $size: seeded (table before added seconds): $(tr '\t\n' ' ;' <"$out.seed")"
        SHOP_RESET=0 start_shop "$name" "$@"
        "$BIN/bench-growth" measure --base "$SHOP_GATEWAY" --products "$size" --samples "$GROWTH_SAMPLES" \
            >"$out.tsv" 2>"$out.err" || { cat "$out.err" >&2; die "bench-growth measure ($db, $size) failed"; }
        stop_shop
        grep -h 'first error' "$out.err" >&2 || true
        awk -v s="$size" '{ print s "\t" $0 }' "$out.tsv" >>"$WORK/growth-$db.tsv"
        log "  $db $size: $(awk '{ printf "%s p50 %s p99 %s ms; ", $1, $3, $4 }' "$out.tsv")"
    done
}

# growth_table DB: the markdown table of one database's results.
growth_table() {
    local first=${GROWTH_SIZES[0]} last=${GROWTH_SIZES[${#GROWTH_SIZES[@]}-1]} size head="| path |" rule="| --- |"
    for size in "${GROWTH_SIZES[@]}"; do
        head+=" $(growth_size "$size"): p50 / p99 ms |"
        rule+=" ---: |"
    done
    echo "$head p99 $(growth_size "$last") ÷ $(growth_size "$first") | errors |"
    echo "$rule ---: | ---: |"
    awk -F'\t' -v first="$first" -v last="$last" -v sizes="${GROWTH_SIZES[*]}" -v paths="${GROWTH_PATHS[*]}" '
        { p50[$2, $1] = $4; p99[$2, $1] = $5; errors[$2] += $6 }
        END {
            n = split(sizes, size, " "); m = split(paths, path, " ")
            for (i = 1; i <= m; i++) {
                row = "| " path[i] " |"
                for (j = 1; j <= n; j++) row = row " " p50[path[i], size[j]] " / " p99[path[i], size[j]] " |"
                r = (p99[path[i], first] > 0) ? sprintf("%.2f×", p99[path[i], last] / p99[path[i], first]) : "n/a"
                print row " " r " | " errors[path[i]] + 0 " |"
            }
        }' "$WORK/growth-$1.tsv"
}

# growth_worst DB: "ratio path" of the path whose p99 grew most.
growth_worst() {
    local first=${GROWTH_SIZES[0]} last=${GROWTH_SIZES[${#GROWTH_SIZES[@]}-1]}
    awk -F'\t' -v first="$first" -v last="$last" '
        $1 == first { a[$2] = $5 } $1 == last { b[$2] = $5 }
        END { worst = ""; for (p in b) if (a[p] > 0 && (worst == "" || b[p] / a[p] > r)) { r = b[p] / a[p]; worst = p }
              if (worst == "") print "n/a n/a"; else printf "%.2f %s\n", r, worst }' "$WORK/growth-$1.tsv"
}

# growth_size N: 10000 -> 10k, 1000000 -> 1M.
growth_size() {
    awk -v n="$1" 'BEGIN { if (n >= 1000000 && n % 1000000 == 0) printf "%dM", n / 1000000; else if (n >= 1000 && n % 1000 == 0) printf "%dk", n / 1000; else print n }'
}

# growth_chart_data DB: size, then the p99 of every path, one line per size.
growth_chart_data() {
    awk -F'\t' -v paths="${GROWTH_PATHS[*]}" '
        { p99[$1, $2] = $5; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
        END { m = split(paths, path, " "); line = "size"; for (i = 1; i <= m; i++) line = line " " path[i]; print line
              for (j = 1; j <= n; j++) { line = order[j]; for (i = 1; i <= m; i++) line = line " " p99[order[j], path[i]]; print line } }' \
        "$WORK/growth-$1.tsv" >"$WORK/growth-$1.dat"
}

bench_growth() {
    local started own_pg=0 db ratio path verdict
    started=$(date +%s)
    read -ra GROWTH_SIZES <<<"${GROWTH_SIZES:-10000 100000 1000000}"
    GROWTH_SAMPLES=${GROWTH_SAMPLES:-2000}

    log "growth: SQLite"
    local dir="$WORK/shop-growth-sqlite"
    growth_db sqlite growth-sqlite "sqlite:$dir/users.db" "sqlite:$dir/catalog.db" "sqlite:$dir/orders.db"

    log "growth: PostgreSQL"
    if [ -z "$PG_DATA" ]; then
        bench_pg_start growth
        own_pg=1
    fi
    create_dbs growth
    local pg="postgres://postgres@localhost" at="host=$PG_DATA&port=$PG_PORT"
    mapfile -t PG_ENV < <(pg_urls growth socket)
    growth_db postgres growth-pg "$pg/growth_users?$at" "$pg/growth_catalog?$at" "$pg/growth_orders?$at" "${PG_ENV[@]}"
    [ "$own_pg" = 1 ] && bench_pg_stop

    for db in sqlite postgres; do
        growth_chart_data "$db"
        read -r ratio path <<<"$(growth_worst "$db")"
        verdict=$(awk -v r="$ratio" 'BEGIN { if (r == "n/a") print "n/a"; else if (r <= 2) print "met"; else print "missed" }')
        target_row "growth ($db): p99 at $(growth_size "${GROWTH_SIZES[-1]}") ÷ p99 at $(growth_size "${GROWTH_SIZES[0]}"), worst path" \
            "≤ 2×" "${ratio}× ($path)" "$verdict"
    done

    gnuplot <<EOF
set terminal pngcairo size 900,480 font "DejaVu Sans,10" noenhanced
set output "$OUT_DIR/growth.png"
set multiplot layout 1,2 title "p99 latency against data size (products = orders; 10k users; lower is better)"
set logscale x
set grid
set xlabel "rows"
set ylabel "p99 (ms)"
set yrange [0:*]
set key below maxrows 2
set format x "%.0s%c"
set xrange [${GROWTH_SIZES[0]} * 0.7:${GROWTH_SIZES[-1]} * 1.4]
set title "SQLite"
plot for [i=2:$((${#GROWTH_PATHS[@]} + 1))] "$WORK/growth-sqlite.dat" using 1:i with linespoints title columnheader(i)
set title "PostgreSQL (durable, Unix socket)"
plot for [i=2:$((${#GROWTH_PATHS[@]} + 1))] "$WORK/growth-postgres.dat" using 1:i with linespoints title columnheader(i)
unset multiplot
EOF

    {
        echo "### Cost as data grows"
        echo
        echo "The catalog is seeded with $(for s in "${GROWTH_SIZES[@]}"; do printf '%s, ' "$(growth_size "$s")"; done | sed 's/, $//') products"
        echo "and the orders database with as many settled orders (one or two lines each) spread over 10k users and"
        echo "over a year, by \`bench-growth seed\` (multi-row INSERTs in 100k-row transactions, the same SQL on both"
        echo "databases, into the schemas the services' own migrations made; PostgreSQL then VACUUM ANALYZEd and"
        echo "checkpointed, as autovacuum and the checkpointer would soon after such a load). At each size \`shop\` starts on that data and \`bench-growth measure\` takes $GROWTH_SAMPLES samples"
        echo "per path (after 200 of warm-up) at a concurrency of 4 through the gateway, as 4 seeded users:"
        echo "the first page of the product list; a page 85–95 % through it (its cursor built as the catalog builds"
        echo "them); a random product by id; placing an order (PUT a random product in the cart, then POST /api/orders"
        echo "with tok_visa — the whole saga, stock and payment included); the first page of the user's orders (read"
        echo "after the orders were placed, so the page is full at every size). Not pinned; client and server share"
        echo "both cores. Target: p99 grows at most 2× from the smallest size to the largest."
        for db in sqlite postgres; do
            echo
            if [ "$db" = sqlite ]; then echo "SQLite (shop's default store):"; else echo "PostgreSQL (durable, Unix socket):"; fi
            echo
            growth_table "$db"
        done
        echo
        echo "Seeding time (s: users, products, orders with their lines — only what the previous size lacked):"
        echo
        echo "| database | size | users | products | orders |"
        echo "| --- | --- | ---: | ---: | ---: |"
        for db in sqlite postgres; do
            awk -F'\t' -v db="$db" '{ t[$1, $2] = $5; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
                END { for (j = 1; j <= n; j++) printf "| %s | %s | %s | %s | %s |\n", db, order[j], t[order[j], "users"], t[order[j], "products"], t[order[j], "orders"] }' \
                "$WORK/growth-$db-seed.tsv"
        done
        echo
        echo "![p99 latency against data size](benchmarks/growth.png)"
        echo
        echo "The part took $(( $(date +%s) - started )) s."
    } >"$WORK/growth.md"
}
