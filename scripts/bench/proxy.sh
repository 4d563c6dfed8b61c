# shellcheck shell=bash
# The proxy part of scripts/bench.sh (sourced; see there): wrk against a
# minimal backend (crates/bench, bench-backend) directly, through
# shop-gateway (plain proxy, and with token verification; every edge layer
# on, the rate limit too, with a limit no run reaches), nginx, HAProxy, a Go
# net/http/httputil.ReverseProxy (bench/goproxy) and bench-hyper-proxy (a bare
# axum + hyper proxy: the floor of the gateway's HTTP stack), each keeping
# connections to the backend alive. Rounds alternate the contenders; the
# table shows the median of RUNS.
#
# CPU arrangement (2 cores): each proxy runs on core PROXY_CPU with one worker
# (nginx worker_processes 1, HAProxy nbthread 1, the gateway with
# TOKIO_WORKER_THREADS=1, Go with GOMAXPROCS=1); wrk and the backend share
# core CLIENT_CPU.

bench_proxy() {
    local name round pid
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

    BACKEND_PORT=$(free_port)
    log "starting bench-backend on 127.0.0.1:$BACKEND_PORT (core $CLIENT_CPU)"
    taskset -c "$CLIENT_CPU" "$BIN/bench-backend" --listen "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
    BACKEND_PID=$!
    track_pid "$BACKEND_PID"
    wait_ok "http://127.0.0.1:$BACKEND_PORT/ping" || die "bench-backend did not start"

    USERS_PORT=$(free_port)
    log "starting shop-users on 127.0.0.1:$USERS_PORT (token issuer for the auth run)"
    SHOP_HTTP__HOST=127.0.0.1 SHOP_HTTP__PORT="$USERS_PORT" SHOP_ADMIN__HOST=127.0.0.1 SHOP_ADMIN__PORT=0 \
        SHOP_DATABASE__URL="sqlite:$WORK/users.db" \
        RUST_LOG=warn "$BIN/shop-users" >"$WORK/users.log" 2>&1 &
    USERS_PID=$!
    track_pid "$USERS_PID"
    wait_ok "http://127.0.0.1:$USERS_PORT/readyz" || die "shop-users did not start"
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:$USERS_PORT/api/users" -H 'content-type: application/json' \
        -d '{"username":"benchproxy","email":"benchproxy@example.com","password":"bench password 1234"}'
    TOKEN=$(curl -fsS -X POST "http://127.0.0.1:$USERS_PORT/api/sessions" -H 'content-type: application/json' \
        -d '{"login":"benchproxy","password":"bench password 1234"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    [ -n "$TOKEN" ] || die "no token from shop-users"

    GATEWAY_PORT=$(free_port)
    cat >"$WORK/gateway.toml" <<EOF
[http]
host = "127.0.0.1"
port = $GATEWAY_PORT

# /metrics, unused here: any free loopback port.
[admin]
host = "127.0.0.1"
port = 0

# On, as in production, with a limit this load never reaches (wrk is one
# client): the rate limiter's cost is measured, not its refusals.
[rate_limit]
enabled = true
per_second = 100000000
burst = 100000000

[registry]
backend = "static"
[[registry.instances]]
service = "catalog"
address = "127.0.0.1:$BACKEND_PORT"
[[registry.instances]]
service = "cart"
address = "127.0.0.1:$BACKEND_PORT"
[[registry.instances]]
service = "users"
address = "127.0.0.1:$USERS_PORT"
EOF
    log "starting shop-gateway on 127.0.0.1:$GATEWAY_PORT (core $PROXY_CPU, 1 worker thread)"
    TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c "$PROXY_CPU" \
        "$BIN/shop-gateway" --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    track_pid "$GATEWAY_PID"
    wait_ok "http://127.0.0.1:$GATEWAY_PORT/healthz" || { cat "$WORK/gateway.log" >&2; die "shop-gateway did not start"; }

    NGINX_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    log "starting nginx on 127.0.0.1:$NGINX_PORT (core $PROXY_CPU, 1 worker)"
    taskset -c "$PROXY_CPU" "$NGINX" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >"$WORK/nginx.log" 2>&1 &
    NGINX_PID=$!
    track_pid "$NGINX_PID"
    wait_ok "http://127.0.0.1:$NGINX_PORT/ping" || { cat "$WORK/nginx.log" "$WORK/nginx/error.log" >&2; die "nginx did not start"; }

    HAPROXY_PORT=$(free_port)
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend backend
backend backend
    server b1 127.0.0.1:$BACKEND_PORT
EOF
    log "starting HAProxy on 127.0.0.1:$HAPROXY_PORT (core $PROXY_CPU, 1 thread)"
    taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    track_pid "$HAPROXY_PID"
    wait_ok "http://127.0.0.1:$HAPROXY_PORT/ping" || { cat "$WORK/haproxy.log" >&2; die "HAProxy did not start"; }

    # The Go contender: standard library only, built offline into $WORK.
    log "building bench/goproxy with $(go version | cut -d' ' -f3)"
    (cd "$ROOT/bench/goproxy" && GOCACHE="$WORK/go-cache" GOPATH="$WORK/go" GOFLAGS=-mod=mod GOPROXY=off \
        go build -o "$WORK/goproxy" .) || die "go build of bench/goproxy failed"
    GO_PORT=$(free_port)
    log "starting goproxy on 127.0.0.1:$GO_PORT (core $PROXY_CPU, GOMAXPROCS=1)"
    GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$WORK/goproxy" -listen "127.0.0.1:$GO_PORT" \
        -backend "http://127.0.0.1:$BACKEND_PORT" -idle $((CONNS * 2)) >"$WORK/goproxy.log" 2>&1 &
    GO_PID=$!
    track_pid "$GO_PID"
    wait_ok "http://127.0.0.1:$GO_PORT/ping" || { cat "$WORK/goproxy.log" >&2; die "goproxy did not start"; }

    HYPER_PORT=$(free_port)
    log "starting bench-hyper-proxy on 127.0.0.1:$HYPER_PORT (core $PROXY_CPU, 1 worker thread)"
    TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" "$BIN/bench-hyper-proxy" \
        --listen "127.0.0.1:$HYPER_PORT" --backend "127.0.0.1:$BACKEND_PORT" >"$WORK/hyper-proxy.log" 2>&1 &
    HYPER_PID=$!
    track_pid "$HYPER_PID"
    wait_ok "http://127.0.0.1:$HYPER_PORT/ping" || { cat "$WORK/hyper-proxy.log" >&2; die "bench-hyper-proxy did not start"; }

    # The same request everywhere: the gateway routes /api/products/* to
    # "catalog", which is the backend; the backend answers any path.
    PATH_PLAIN=/api/products/0190a0c8-0000-7000-8000-000000000001
    declare -gA URL=(
        [direct]="http://127.0.0.1:$BACKEND_PORT$PATH_PLAIN"
        [gateway]="http://127.0.0.1:$GATEWAY_PORT$PATH_PLAIN"
        [gateway-auth]="http://127.0.0.1:$GATEWAY_PORT/api/cart"
        [nginx]="http://127.0.0.1:$NGINX_PORT$PATH_PLAIN"
        [haproxy]="http://127.0.0.1:$HAPROXY_PORT$PATH_PLAIN"
        [go-proxy]="http://127.0.0.1:$GO_PORT$PATH_PLAIN"
        [hyper-proxy]="http://127.0.0.1:$HYPER_PORT$PATH_PLAIN"
    )
    declare -gA PROC=(
        [direct]="$BACKEND_PID" [gateway]="$GATEWAY_PID" [gateway-auth]="$GATEWAY_PID"
        [nginx]="$NGINX_PID" [haproxy]="$HAPROXY_PID" [go-proxy]="$GO_PID" [hyper-proxy]="$HYPER_PID"
    )
    CONTENDERS=(direct gateway nginx haproxy go-proxy hyper-proxy gateway-auth)
    for name in "${CONTENDERS[@]}"; do
        curl -fsS -o /dev/null -H "authorization: Bearer $TOKEN" "${URL[$name]}" || die "$name: ${URL[$name]} does not answer 200"
    done

    declare -gA IDLE_RSS
    for name in "${CONTENDERS[@]}"; do IDLE_RSS[$name]=$(rss_kib "${PROC[$name]}"); done

    # run_wrk NAME ROUND: one wrk run, results appended to $WORK/proxy.tsv.
    run_wrk() {
        local name=$1 round=$2 out="$WORK/wrk-$1-$2.txt" rps p50 p99 non2xx errors peak
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
            -H "authorization: Bearer $TOKEN" "${URL[$name]}" >"$out" &
        local wrk_pid=$!
        sleep $((DURATION / 2))
        peak=$(rss_kib "${PROC[$name]}")
        wait "$wrk_pid"
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
        non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
        errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$rps" "$p50" "$p99" "$((${non2xx:-0} + ${errors:-0}))" "$peak" >>"$WORK/proxy.tsv"
        log "  $name: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors ${non2xx:-0}+${errors:-0}"
    }

    : >"$WORK/proxy.tsv"
    for round in $(seq 1 "$RUNS"); do
        log "proxy round $round/$RUNS: wrk -t1 -c$CONNS -d${DURATION}s"
        for name in "${CONTENDERS[@]}"; do run_wrk "$name" "$round"; done
    done

    field_median() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$WORK/proxy.tsv" | median; }
    declare -gA RPS P50 P99 ERR PEAK_RSS
    for name in "${CONTENDERS[@]}"; do
        RPS[$name]=$(field_median "$name" 3)
        P50[$name]=$(field_median "$name" 4)
        P99[$name]=$(field_median "$name" 5)
        ERR[$name]=$(awk -F'\t' -v n="$name" '$1 == n { s += $6 } END { print s + 0 }' "$WORK/proxy.tsv")
        PEAK_RSS[$name]=$(field_median "$name" 7)
    done
    # ratio_median A B [COLUMN]: A / B per round (side by side), then the
    # median; COLUMN 3 is requests/s (default), 5 is p99.
    ratio_median() {
        awk -F'\t' -v a="$1" -v b="$2" -v c="${3:-3}" '
            $1 == a { x[$2] = $c } $1 == b { y[$2] = $c }
            END { for (r in x) if (y[r] > 0) printf "%.3f\n", x[r] / y[r] }' "$WORK/proxy.tsv" | median
    }
    GW_NGINX=$(ratio_median gateway nginx)
    GW_HAPROXY=$(ratio_median gateway haproxy)
    GW_HYPER=$(ratio_median gateway hyper-proxy)
    GW_GO=$(ratio_median gateway go-proxy)
    P99_NGINX=$(ratio_median gateway nginx 5)
    P99_HAPROXY=$(ratio_median gateway haproxy 5)
    P99_GO=$(ratio_median gateway go-proxy 5)

    for pid in "$GATEWAY_PID" "$NGINX_PID" "$HAPROXY_PID" "$GO_PID" "$HYPER_PID" "$USERS_PID" "$BACKEND_PID"; do
        kill -TERM "$pid" 2>/dev/null || true
    done

    {
        echo "### Proxy (same backend, same request)"
        echo
        echo "wrk -t1 -c$CONNS on core $CLIENT_CPU with the backend, each proxy alone on core $PROXY_CPU with one worker."
        echo
        echo "![requests/s and p99 per proxy contender](benchmarks/proxy.png)"
        echo
        echo "| contender | requests/s | p50 ms | p99 ms | errors | RSS idle MiB | RSS under load MiB |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        for name in "${CONTENDERS[@]}"; do
            printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" \
                "${ERR[$name]}" "$(mib "${IDLE_RSS[$name]}")" "$(mib "${PEAK_RSS[$name]}")"
        done
        echo
        echo "gateway / nginx requests/s: **$GW_NGINX**, p99 **$P99_NGINX**× (medians of per-round ratios); gateway / HAProxy: **$GW_HAPROXY**, p99 **$P99_HAPROXY**×; gateway / Go ReverseProxy: **$GW_GO**, p99 **$P99_GO**×; gateway / bare hyper proxy: **$GW_HYPER**."
        echo "\`direct\` is wrk straight to the backend (both on core $CLIENT_CPU); \`gateway\` has every edge layer on, the rate limit too (a limit of 10⁸ requests/s that one client never reaches); \`go-proxy\` is \`bench/goproxy\`, Go $(go version | cut -d' ' -f3 | sed 's/^go//')'s \`net/http/httputil.ReverseProxy\` with a keep-alive transport, \`GOMAXPROCS=1\`; \`hyper-proxy\` is \`bench-hyper-proxy\`, the least an axum + hyper proxy does (no middleware); \`gateway-auth\` is \`GET /api/cart\` with a bearer token the gateway verifies."
    } >"$WORK/proxy.md"
    # target_row_vs PEER NAME RPS_RATIO P99_RATIO MIN_RPS MAX_P99
    target_row_vs() {
        target_row "gateway requests/s vs $2" "≥ $5×, p99 ≤ $6×" \
            "$3× (${RPS[gateway]} vs ${RPS[$1]}); p99 $4× (${P99[gateway]} vs ${P99[$1]} ms)" \
            "$(awk -v r="$3" -v p="$4" -v mr="$5" -v mp="$6" 'BEGIN { print (r != "" && p != "" && r >= mr && p <= mp) ? "met" : "missed" }')"
    }
    target_row_vs nginx nginx "$GW_NGINX" "$P99_NGINX" 0.75 1.25
    target_row_vs haproxy HAProxy "$GW_HAPROXY" "$P99_HAPROXY" 0.75 1.25
    target_row_vs go-proxy "Go httputil.ReverseProxy" "$GW_GO" "$P99_GO" 1.0 1.0

    # The chart: requests/s and p99 per proxy contender.
    for name in "${CONTENDERS[@]}"; do printf '%s %s %s\n' "$name" "${RPS[$name]}" "${P99[$name]}"; done >"$WORK/chart.dat"
    gnuplot <<EOF
set terminal pngcairo size 900,420 font "DejaVu Sans,10"
set output "$OUT_DIR/proxy.png"
set multiplot layout 1,2 title "Proxy benchmark: wrk -c$CONNS, ${DURATION}s, median of $RUNS (higher / lower is better)"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
unset key
set xtics rotate by -20
set title "requests/s"
plot "$WORK/chart.dat" using 0:2:xtic(1) with boxes lc rgb "#4477aa", "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.7
set title "p99 latency (ms)"
plot "$WORK/chart.dat" using 0:3:xtic(1) with boxes lc rgb "#cc6677", "" using 0:3:(sprintf("%.2f", \$3)) with labels offset 0,0.7
unset multiplot
EOF
}
