//! The outbox's edges: deliveries that can never succeed are dead-lettered
//! (a refusal at once, transient failures at the attempt cap, rows too old
//! to deliver) and never claimed again; delivered rows are purged after the
//! retention, dead and pending ones kept — on SQLite and PostgreSQL.

#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

mod common;

use std::time::Duration;

use common::{Orders, Stack, confirm, count, old_order, spawn_stack};
use shop_common::db::{self, Db};
use shop_orders::store::{Inserted, OrderStore};

const DEAD_LETTERS: &str = "outbox_dead_letters_total";

/// Long enough for a relay polling every 50 ms to have retried many times.
const QUIET: Duration = Duration::from_millis(750);

/// (attempts, dead, delivered, last_error) of order `order_id`'s outbox row.
async fn outbox_row(db: &Db, order_id: &str) -> (i64, bool, bool, String) {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT attempts, dead_at, delivered_at, last_error FROM outbox WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(db.pool())
    .await
    .expect("the outbox row");
    (
        row.try_get("attempts").expect("attempts"),
        row.try_get::<Option<String>, _>("dead_at")
            .expect("dead_at")
            .is_some(),
        row.try_get::<Option<String>, _>("delivered_at")
            .expect("delivered_at")
            .is_some(),
        row.try_get::<Option<String>, _>("last_error")
            .expect("last_error")
            .unwrap_or_default(),
    )
}

/// What a dead-lettered row shows: the reason it is counted under, the
/// attempts made (when the case fixes them) and part of its last error.
struct DeadLetter {
    reason: &'static str,
    attempts: Option<i64>,
    error: &'static str,
}

impl DeadLetter {
    /// `orders`' count of dead letters for this reason.
    async fn counted(&self, orders: &Orders) -> f64 {
        orders
            .metric(DEAD_LETTERS, &[("reason", self.reason)])
            .await
    }

    /// Waits until order `order_id`'s row is dead-lettered, then asserts it
    /// never delivered, with this error and attempts, and counted by
    /// `orders` (from `before`); returns its attempts.
    async fn assert(
        &self,
        stack: &Stack,
        db: &Db,
        orders: &Orders,
        before: f64,
        order_id: &str,
    ) -> i64 {
        let dead = "SELECT COUNT(*) AS n FROM outbox WHERE order_id = $1 AND dead_at IS NOT NULL";
        stack
            .wait_count("the row to be dead-lettered", db, (dead, order_id), 1)
            .await;
        let (attempts, _, delivered, error) = outbox_row(db, order_id).await;
        let engine = stack.engine;
        if let Some(want) = self.attempts {
            assert_eq!(
                attempts, want,
                "{engine}: the attempts before the dead letter"
            );
        }
        assert!(!delivered, "{engine}: a dead row was never delivered");
        assert!(error.contains(self.error), "{engine}: {error}");
        let counted = self.counted(orders).await;
        assert!(
            counted >= before + 1.0,
            "{engine}: the dead letter is counted ({counted})"
        );
        attempts
    }
}

/// After a quiet while (a relay running), order `order_id`'s dead row has
/// still made `attempts` attempts, cart saw only `statuses` for it, and
/// `token`'s cart still holds `lines` for a human to resolve.
async fn assert_stays_dead(
    stack: &Stack,
    db: &Db,
    (order_id, attempts): (&str, i64),
    statuses: &[u16],
    (token, lines): (&str, &[(String, i64)]),
) {
    tokio::time::sleep(QUIET).await;
    let engine = stack.engine;
    let seen = stack.deliveries.statuses(order_id);
    assert_eq!(seen, statuses, "{engine}: what cart saw of the order");
    let retried = outbox_row(db, order_id).await.0;
    assert_eq!(retried, attempts, "{engine}: never retried");
    assert_eq!(
        stack.cart_lines(token).await,
        lines,
        "{engine}: the lines stay"
    );
}

/// Places an order of a new user with two of the first product, through
/// an instance without a relay (so its row waits unclaimed); returns the
/// buyer's token, the cart's lines and the order id.
async fn place_unrelayed(stack: &Stack, user: &str) -> (String, Vec<(String, i64)>, String) {
    let (token, products) = stack.shopper_with(user, &[2]).await;
    let mut placer = stack.spawn_orders(false).await;
    let order = placer.placed(&token, "k").await;
    placer.shutdown().await;
    (token, vec![(products[0].clone(), 2)], order.id)
}

#[tokio::test]
async fn a_refused_delivery_is_dead_lettered_at_once_and_never_retried() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        // An instance with the wrong credential cannot check out at all
        // (catalog and payments refuse it too), so the order is confirmed
        // by a healthy instance without a relay and its row waits.
        let (token, lines, order_id) = place_unrelayed(&stack, "refused").await;
        // The relay that claims it presents a credential cart refuses:
        // 401, a delivery that can never succeed.
        let mut settings = stack.orders_settings(true);
        settings.internal.service_token = Some("not-the-token".to_owned().into());
        let orders = stack.spawn_orders_with(settings).await;
        let refused = DeadLetter {
            reason: "rejected",
            attempts: Some(1),
            error: "service credential",
        };

        // Counted by the new instance, whose first round may come at once.
        let db = stack.orders_db().await;
        refused.assert(&stack, &db, &orders, 0.0, &order_id).await;

        // Never retried, not even by a relay that would succeed.
        let _healthy = stack.spawn_orders(true).await;
        assert_stays_dead(&stack, &db, (&order_id, 1), &[401], (&token, &lines)).await;
        db.close().await;
    }
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_attempt_cap_then_dead_lettered() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let (token, lines, order_id) = place_unrelayed(&stack, "unlucky").await;
        stack.cart_down();
        let mut settings = stack.orders_settings(true);
        settings.relay.max_attempts = 3;
        let relay = stack.spawn_orders_with(settings).await;
        let capped = DeadLetter {
            reason: "attempts",
            attempts: Some(3),
            error: "no available instance",
        };
        let before = capped.counted(&relay).await;

        let db = stack.orders_db().await;
        capped.assert(&stack, &db, &relay, before, &order_id).await;

        // Cart is back: the dead row stays dead.
        stack.cart_up();
        assert_stays_dead(&stack, &db, (&order_id, 3), &[], (&token, &lines)).await;
        db.close().await;
    }
}

#[tokio::test]
async fn a_row_older_than_the_relay_delivers_is_dead_lettered_without_a_call() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let (token, lines, order_id) = place_unrelayed(&stack, "late").await;
        let db = stack.orders_db().await;
        let two_days_ago = db::timestamp_text(chrono::Utc::now() - chrono::Duration::days(2));
        sqlx::query("UPDATE outbox SET created_at = $1 WHERE order_id = $2")
            .bind(&two_days_ago)
            .bind(&order_id)
            .execute(db.pool())
            .await
            .expect("aged");
        let relay = stack.spawn_orders(true).await;
        let expired = DeadLetter {
            reason: "expired",
            attempts: None,
            error: "too old",
        };
        let attempts = expired.assert(&stack, &db, &relay, 0.0, &order_id).await;
        // Cart never asked.
        assert_stays_dead(&stack, &db, (&order_id, attempts), &[], (&token, &lines)).await;
        db.close().await;
    }
}

#[tokio::test]
async fn delivered_rows_past_the_retention_are_purged_and_the_rest_kept() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        // Rows written before the instance starts: its first purge may run
        // at once.
        let db = stack.orders_db().await;
        db.migrate(&shop_orders::store::MIGRATOR)
            .await
            .expect("migrated");
        let store = OrderStore::new(db.clone());
        let days = chrono::Duration::days;
        let ago = |age: chrono::Duration| db::timestamp_text(chrono::Utc::now() - age);
        let mut ids = Vec::new();
        for (key, set) in [
            ("old-delivered", Some(("delivered_at", days(8)))),
            ("new-delivered", Some(("delivered_at", days(6)))),
            ("old-dead", Some(("dead_at", days(30)))),
            ("old-pending", None),
        ] {
            let new = old_order(key, days(30));
            assert!(matches!(
                store.insert(&new).await.expect("inserted"),
                Inserted::Created
            ));
            let outbox_id = confirm(&store, &new).await;
            if let Some((column, age)) = set {
                sqlx::query(&format!("UPDATE outbox SET {column} = $1 WHERE id = $2"))
                    .bind(ago(age))
                    .bind(&outbox_id)
                    .execute(db.pool())
                    .await
                    .expect("set");
            }
            ids.push(new.order.id.to_string());
        }

        // No relay (the pending row stays pending); the default retention
        // of seven days; a purge every 50 ms.
        let mut settings = stack.orders_settings(false);
        settings.outbox.purge_interval_ms = 50;
        let orders = stack.spawn_orders_with(settings).await;
        let remaining = || async {
            let mut left = Vec::new();
            for id in &ids {
                if count(
                    &db,
                    "SELECT COUNT(*) AS n FROM outbox WHERE order_id = $1",
                    id,
                )
                .await
                    == 1
                {
                    left.push(id.clone());
                }
            }
            left
        };
        stack
            .eventually("the old delivered row to be purged", || async {
                remaining().await.len() == 3
            })
            .await;
        assert_eq!(remaining().await, ids[1..], "{}", stack.engine);
        // Later rounds keep the rest.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(remaining().await, ids[1..], "{}", stack.engine);
        assert!(orders.metric("outbox_purged_rows_total", &[]).await >= 1.0);
        let text = orders.scrape().await;
        assert!(text.contains("outbox_dead_letter_rows"), "{text}");
        // The orders themselves are history: never purged.
        for id in &ids {
            assert_eq!(
                count(&db, "SELECT COUNT(*) AS n FROM orders WHERE id = $1", id).await,
                1
            );
        }
        db.close().await;
    }
}

#[tokio::test]
async fn the_purge_deletes_in_bounded_batches_oldest_first() {
    for database in shop_testkit::databases().await {
        let db = Db::connect(&shop_common::config::DatabaseSettings::new(&database.url))
            .await
            .expect("orders database");
        db.migrate(&shop_orders::store::MIGRATOR)
            .await
            .expect("migrated");
        let store = OrderStore::new(db.clone());
        for n in 0..5 {
            let new = old_order(&format!("k{n}"), chrono::Duration::days(20));
            store.insert(&new).await.expect("inserted");
            let outbox_id = confirm(&store, &new).await;
            let delivered = chrono::Utc::now() - chrono::Duration::days(10 + n);
            sqlx::query("UPDATE outbox SET delivered_at = $1 WHERE id = $2")
                .bind(db::timestamp_text(delivered))
                .bind(&outbox_id)
                .execute(db.pool())
                .await
                .expect("delivered");
        }
        let before = db::timestamp_text(chrono::Utc::now() - chrono::Duration::days(7));
        let mut batches = Vec::new();
        loop {
            let deleted = store.purge_delivered(&before, 2).await.expect("purged");
            batches.push(deleted);
            if deleted < 2 {
                break;
            }
        }
        assert_eq!(batches, [2, 2, 1], "{}", database.engine);
        db.close().await;
    }
}

#[test]
fn the_relay_stops_delivering_well_before_cart_forgets_an_order() {
    // Cart's purge of applied-order records is safe only while no delivery
    // can come after it: the relay's bound, with as much again as margin
    // for the call's deadline and clock skew.
    let relay = shop_orders::relay::MAX_DELIVERY_AGE.as_secs();
    assert!(2 * relay <= shop_cart::config::MIN_APPLIED_ORDER_RETENTION_SECS);
    assert!(
        shop_cart::config::MIN_APPLIED_ORDER_RETENTION_SECS
            <= shop_cart::Settings::default().applied_orders.retention_secs
    );
}
