//! The internal order-removal route: idempotent by order id, subtracting
//! only what was ordered, on SQLite and PostgreSQL.

mod common;

use common::{CartStack as _, SERVICE_TOKEN, assert_problem, removal, spawn_stack, user_id};
use futures::future::join_all;
use serde_json::{Value, json};
use shop::testing::{lines, wait_until};

#[tokio::test]
async fn removal_subtracts_ordered_lines_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 1).await;
        let token = stack.token("erin").await;
        let user = user_id(&token);
        let ids = stack.product_ids().await;
        stack.put(&token, &ids[0], 3).await;
        stack.put(&token, &ids[1], 1).await;

        let order = uuid::Uuid::now_v7();
        let body = removal(order, &[(&ids[0], 2), (&ids[1], 1)]);
        // Added after the order was placed: must stay.
        stack.put(&token, &ids[2], 4).await;

        let wrong = stack
            .remove_order(&stack.cart(), &user, &body, Some("wrong"))
            .await;
        assert_problem(wrong, 401, "wrong credential").await;
        let first = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        let repeat = stack
            .assert_removal(&stack.cart(), &user, &body, false)
            .await;
        assert_eq!(
            repeat["version"], first["version"],
            "a repeat changes nothing"
        );

        let cart: Value = stack.cart_json(&stack.cart(), &token).await;
        let mut want = vec![(ids[0].clone(), 1), (ids[2].clone(), 4)];
        want.sort();
        assert_eq!(lines(&cart), want, "{}", stack.engine);
    }
}

#[tokio::test]
async fn concurrent_repeats_apply_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 2).await;
        let token = stack.token("fred").await;
        let user = user_id(&token);
        let product = stack.product_ids().await.remove(0);
        stack.put(&token, &product, 10).await;
        let body = removal(uuid::Uuid::now_v7(), &[(&product, 3)]);
        let carts = stack.carts();
        let calls =
            (0..10).map(|i| stack.remove_order(&carts[i % 2], &user, &body, Some(SERVICE_TOKEN)));
        let answers: Vec<Value> =
            join_all(calls.map(|call| async { call.await.json::<Value>().await.expect("json") }))
                .await;
        let applied = answers.iter().filter(|a| a["applied"] == true).count();
        assert_eq!(applied, 1, "{}: {answers:?}", stack.engine);
        let cart: Value = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(
            cart["items"][0]["quantity"], 7,
            "{}: subtracted exactly once",
            stack.engine
        );
    }
}

#[tokio::test]
async fn invalid_removals_are_422() {
    let stack = spawn_stack(shop_testkit::TestDatabase::sqlite(), 1).await;
    let user = uuid::Uuid::now_v7().to_string();
    let user = user.as_str();
    let product = uuid::Uuid::now_v7().to_string();
    let zero = removal(uuid::Uuid::now_v7(), &[(&product, 0)]);
    let bad_order = json!({"order_id": "nope", "lines": []});
    for (user, body, status, why) in [
        (user, zero, 422, "zero quantity"),
        (user, bad_order, 422, "bad order id"),
        ("not-a-uuid", json!({}), 400, "bad user id"),
    ] {
        let cart = stack.cart();
        let answer = stack.remove_order(&cart, user, &body, Some(SERVICE_TOKEN));
        assert_problem(answer.await, status, why).await;
    }
}

#[tokio::test]
async fn applied_order_records_past_the_retention_are_purged() {
    use shop_common::config::DatabaseSettings;
    use shop_common::db::{self, Db};
    use sqlx::Row;

    for db in shop_testkit::databases().await {
        // The default retention (seven days), a purge every 50 ms.
        let stack = common::spawn_stack_with(db, 1, |settings| {
            settings.applied_orders.purge_interval_ms = 50;
        })
        .await;
        let token = stack.token("gina").await;
        let user = user_id(&token);
        let product = stack.product_ids().await.remove(0);
        stack.put(&token, &product, 9).await;
        let (old, recent) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        for order in [old, recent] {
            let body = removal(order, &[(&product, 1)]);
            stack
                .assert_removal(&stack.cart(), &user, &body, true)
                .await;
        }
        let before = stack.counter("cart_applied_orders_purged_total", &[]).await;

        let cart_db = Db::connect(&DatabaseSettings::new(stack.db_url("cart")))
            .await
            .expect("cart database");
        for (order, days) in [(old, 8), (recent, 6)] {
            sqlx::query("UPDATE applied_orders SET applied_at = $1 WHERE order_id = $2")
                .bind(db::timestamp_text(
                    chrono::Utc::now() - chrono::Duration::days(days),
                ))
                .bind(order.to_string())
                .execute(cart_db.pool())
                .await
                .expect("aged");
        }
        let kept = || async {
            sqlx::query("SELECT order_id FROM applied_orders ORDER BY order_id")
                .fetch_all(cart_db.pool())
                .await
                .expect("records")
                .iter()
                .map(|row| row.try_get::<String, _>("order_id").expect("order_id"))
                .collect::<Vec<_>>()
        };
        let what = format!("{}: the old record to be purged", stack.engine);
        let left = wait_until(&what, kept, |left| left.len() < 2).await;
        assert_eq!(left, [recent.to_string()], "{}", stack.engine);
        assert!(
            stack.counter("cart_applied_orders_purged_total", &[]).await >= before + 1.0,
            "{}: counted",
            stack.engine
        );
        // The record kept still makes a repeat change nothing.
        let body = removal(recent, &[(&product, 1)]);
        stack
            .assert_removal(&stack.cart(), &user, &body, false)
            .await;
        cart_db.close().await;
    }
}
