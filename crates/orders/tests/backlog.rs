//! What a scrape of a real orders instance tells, on SQLite and
//! PostgreSQL: every series the dashboards and alerts read exists from
//! start-up; the saga and outbox backlog gauges rise while a saga is stuck
//! and a delivery fails (cart unreachable), and return to 0 once both are
//! done; delivery retries are counted; the gRPC calls are counted by method
//! and code; the pool and the upstream calls carry the `service` label.
//!
//! One test in this binary: the recorder is process-wide and the gauges
//! carry no instance label, so tests running beside it would move them.

#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

mod common;

use common::{Orders, Stack, authed, old_order, spawn_stack};
use shop::testing::wait_until;
use shop_orders::grpc_metrics::METHODS;
use shop_orders::metrics::{
    OUTBOX_DELIVERY_RETRIES, OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PENDING, SAGA_OLDEST_PENDING_AGE,
    SAGA_PENDING,
};
use shop_orders::store::{Inserted, OrderStore};
use shop_proto::orders::v1::GetOrderRequest;
use shop_testkit::metric_value;

/// Every name a fresh orders instance must expose (the contract of
/// issue #22 that the dashboards and alert rules are written against).
const FROM_START_UP: [&str; 22] = [
    "grpc_requests_total",
    "grpc_request_duration_seconds_bucket",
    "orders_saga_pending",
    "orders_saga_oldest_pending_age_seconds",
    "outbox_pending",
    "outbox_oldest_pending_age_seconds",
    "outbox_delivery_retries_total",
    "outbox_dead_letters_total",
    "outbox_dead_letter_rows",
    "outbox_purged_rows_total",
    "orders_saga_step_failures_total",
    "orders_saga_recovered_total",
    "db_pool_connections",
    "db_pool_max_connections",
    "db_pool_acquire_duration_seconds_bucket",
    "upstream_requests_total",
    "upstream_request_duration_seconds_bucket",
    "upstream_retries_total",
    "upstream_ejections_total",
    "upstream_breaker_state",
    "upstream_health_transitions_total",
    "upstream_instances",
];

/// What labels a pool's and an upstream client's series with the service:
/// said when they carry another.
const SCOPED: &str = "the pool's and the upstream clients' series are labelled with the service \
     only when shop_runtime opens the database and assembles the service inside \
     shop_common::metrics::scope(S::SPEC.name, …)";

/// The four backlog gauges, read from one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Backlog {
    sagas: f64,
    saga_age: f64,
    outbox: f64,
    outbox_age: f64,
}

async fn backlog(orders: &Orders) -> Backlog {
    let text = orders.scrape().await;
    let read = |name: &str| metric_value(&text, name, &[]).unwrap_or(f64::NAN);
    Backlog {
        sagas: read(SAGA_PENDING),
        saga_age: read(SAGA_OLDEST_PENDING_AGE),
        outbox: read(OUTBOX_PENDING),
        outbox_age: read(OUTBOX_OLDEST_PENDING_AGE),
    }
}

/// A confirmed order placed by an instance without a relay: its cart
/// removal waits in the outbox. Returns the order id.
async fn place_unrelayed(stack: &Stack) -> String {
    let (token, _) = stack.shopper_with("waiting", &[1]).await;
    let mut placer = stack.spawn_orders(false).await;
    let order = placer.placed(&token, "k").await;
    placer.shutdown().await;
    order.id
}

#[tokio::test]
async fn the_backlog_gauges_rise_while_work_waits_and_fall_back_to_zero() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let engine = stack.engine;
        let db = stack.orders_db().await;
        db.migrate(&shop_orders::store::MIGRATOR)
            .await
            .expect("migrated");
        // A saga placed 90 s ago whose driver holds its lease for minutes:
        // no instance resumes it until the test says so.
        let stuck = old_order("stuck", chrono::Duration::seconds(90));
        let store = OrderStore::new(db.clone());
        assert!(matches!(
            store.insert(&stuck).await.expect("inserted"),
            Inserted::Created
        ));
        let waiting = place_unrelayed(&stack).await;
        // Written a minute ago, well inside the age the relay delivers.
        sqlx::query("UPDATE outbox SET created_at = $1 WHERE order_id = $2")
            .bind(shop_common::db::timestamp_text(
                chrono::Utc::now() - chrono::Duration::seconds(60),
            ))
            .bind(&waiting)
            .execute(db.pool())
            .await
            .expect("aged");

        // The process-wide count before this instance starts: its relay may
        // put a delivery off before the first scrape.
        let retries_before = metric_value(
            &shop_common::metrics::render(),
            OUTBOX_DELIVERY_RETRIES,
            &[],
        )
        .unwrap_or(0.0);
        // Cart unreachable: every delivery fails and is retried.
        stack.cart_down();
        let mut settings = stack.orders_settings(true);
        settings.relay.max_attempts = 1_000_000;
        let max_connections = settings.database.max_connections;
        let orders = stack.spawn_orders_with(settings).await;

        let text = orders.scrape().await;
        for name in FROM_START_UP {
            assert!(
                text.lines().any(|line| line.starts_with(name)),
                "{engine}: {name} from start-up: {text}"
            );
        }
        for method in METHODS {
            let ok = [("service", "orders"), ("method", method), ("code", "OK")];
            assert!(
                metric_value(&text, "grpc_requests_total", &ok).is_some(),
                "{engine}: {method} counted from start-up: {text}"
            );
        }
        assert_eq!(
            metric_value(&text, "db_pool_max_connections", &[("service", "orders")]),
            Some(f64::from(max_connections)),
            "{engine}: {SCOPED}: {text}"
        );
        for state in ["in_use", "idle"] {
            let labels = [("service", "orders"), ("state", state)];
            assert!(
                metric_value(&text, "db_pool_connections", &labels).is_some(),
                "{engine}: {state}: {SCOPED}: {text}"
            );
        }

        let risen = wait_until(
            &format!("{engine}: the backlog to show the stuck saga and the waiting row"),
            || backlog(&orders),
            |now| {
                now.sagas == 1.0
                    && now.saga_age >= 90.0
                    && now.outbox == 1.0
                    && now.outbox_age >= 60.0
            },
        )
        .await;
        assert!(risen.saga_age < 3_600.0, "{engine}: {risen:?}");
        // The relay calls OutboxMetrics::delivery_retry where it puts a
        // failed delivery off.
        let text = wait_until(
            &format!("{engine}: failed deliveries to be counted as retries"),
            || orders.scrape(),
            |text| {
                metric_value(text, OUTBOX_DELIVERY_RETRIES, &[]).is_some_and(|n| n > retries_before)
            },
        )
        .await;
        let unreachable = [
            ("service", "orders"),
            ("upstream", "cart"),
            ("outcome", "error"),
        ];
        assert!(
            metric_value(&text, "upstream_requests_total", &unreachable).is_some_and(|n| n >= 1.0),
            "{engine}: the caller's failed calls to cart: {SCOPED}: {text}"
        );
        let paid = [
            ("service", "orders"),
            ("upstream", "payments"),
            ("outcome", "success"),
        ];
        assert!(
            metric_value(&text, "upstream_requests_total", &paid).is_some_and(|n| n >= 1.0),
            "{engine}: the placement's calls to payments: {SCOPED}: {text}"
        );
        let placed = [
            ("method", "/ferroshop.orders.v1.OrderService/PlaceOrder"),
            ("code", "OK"),
        ];
        assert!(
            metric_value(&text, "grpc_requests_total", &placed).is_some_and(|n| n >= 1.0),
            "{engine}: {text}"
        );

        // An unauthenticated call is counted under its code.
        let unauthenticated = [
            ("method", "/ferroshop.orders.v1.OrderService/GetOrder"),
            ("code", "UNAUTHENTICATED"),
        ];
        let before = metric_value(&text, "grpc_requests_total", &unauthenticated).unwrap_or(0.0);
        let refused = orders
            .client
            .clone()
            .get_order(authed(
                GetOrderRequest {
                    order_id: waiting.clone(),
                },
                "not-a-token",
            ))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let text = orders.scrape().await;
        assert_eq!(
            metric_value(&text, "grpc_requests_total", &unauthenticated),
            Some(before + 1.0),
            "{engine}: {text}"
        );
        assert!(
            metric_value(
                &text,
                "grpc_request_duration_seconds_count",
                &unauthenticated
            )
            .is_some_and(|n| n >= 1.0),
            "{engine}: {text}"
        );

        // The saga's lease runs out (recovery settles it) and cart is
        // back (the relay delivers): nothing waits any more.
        sqlx::query("UPDATE orders SET saga_due_at = $1 WHERE id = $2")
            .bind(shop_common::db::now_text())
            .bind(stuck.order.id.to_string())
            .execute(db.pool())
            .await
            .expect("lease ended");
        stack.cart_up();
        wait_until(
            &format!("{engine}: the backlog to drain"),
            || backlog(&orders),
            |now| {
                *now == Backlog {
                    sagas: 0.0,
                    saga_age: 0.0,
                    outbox: 0.0,
                    outbox_age: 0.0,
                }
            },
        )
        .await;
        stack.assert_delivered_once([&waiting]);
        db.close().await;
    }
}
