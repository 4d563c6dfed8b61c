//! The internal order-removal route: idempotent by order id, subtracting
//! only what was ordered, on SQLite and PostgreSQL.

mod common;

use common::{CartStack as _, SERVICE_TOKEN, assert_problem, spawn_stack, user_id};
use futures::future::join_all;
use serde_json::{Value, json};

#[tokio::test]
async fn removal_subtracts_ordered_lines_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 1).await;
        let token = stack.token("erin").await;
        let user = user_id(&token);
        let ids = stack.product_ids().await;
        let id = |i: usize| ids[i].clone();
        stack
            .put_item(&stack.cart(), &token, &id(0), json!({"quantity": 3}))
            .await;
        stack
            .put_item(&stack.cart(), &token, &id(1), json!({"quantity": 1}))
            .await;

        let order = uuid::Uuid::now_v7();
        let body = json!({"order_id": order, "lines": [{"product_id": id(0), "quantity": 2}, {"product_id": id(1), "quantity": 1}]});
        // Added after the order was placed: must stay.
        stack
            .put_item(&stack.cart(), &token, &id(2), json!({"quantity": 4}))
            .await;

        assert_problem(
            stack
                .remove_order(&stack.cart(), &user, &body, Some("wrong"))
                .await,
            401,
            "wrong credential",
        )
        .await;
        let first: Value = stack
            .remove_order(&stack.cart(), &user, &body, Some(SERVICE_TOKEN))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(first["applied"], true, "{}", stack.engine);
        let repeat: Value = stack
            .remove_order(&stack.cart(), &user, &body, Some(SERVICE_TOKEN))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(repeat["applied"], false, "{}", stack.engine);
        assert_eq!(
            repeat["version"], first["version"],
            "a repeat changes nothing"
        );

        let cart: Value = stack.cart_json(&stack.cart(), &token).await;
        let lines = shop::testing::lines(&cart);
        let mut want = vec![(id(0), 1), (id(2), 4)];
        want.sort();
        assert_eq!(lines, want, "{}", stack.engine);
    }
}

#[tokio::test]
async fn concurrent_repeats_apply_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 2).await;
        let token = stack.token("fred").await;
        let user = user_id(&token);
        let product = stack.product_ids().await.remove(0);
        stack
            .put_item(&stack.cart(), &token, &product, json!({"quantity": 10}))
            .await;
        let body = json!({"order_id": uuid::Uuid::now_v7(), "lines": [{"product_id": product, "quantity": 3}]});
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
    let body = json!({"order_id": uuid::Uuid::now_v7(), "lines": [{"product_id": uuid::Uuid::now_v7(), "quantity": 0}]});
    assert_problem(
        stack
            .remove_order(&stack.cart(), &user, &body, Some(SERVICE_TOKEN))
            .await,
        422,
        "zero quantity",
    )
    .await;
    let body = json!({"order_id": "nope", "lines": []});
    assert_problem(
        stack
            .remove_order(&stack.cart(), &user, &body, Some(SERVICE_TOKEN))
            .await,
        422,
        "bad order id",
    )
    .await;
    assert_problem(
        stack
            .remove_order(&stack.cart(), "not-a-uuid", &json!({}), Some(SERVICE_TOKEN))
            .await,
        400,
        "bad user id",
    )
    .await;
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
        stack
            .put_item(&stack.cart(), &token, &product, json!({"quantity": 9}))
            .await;
        let (old, recent) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        for order in [old, recent] {
            let body =
                json!({"order_id": order, "lines": [{"product_id": product, "quantity": 1}]});
            let answer: Value = stack
                .remove_order(&stack.cart(), &user, &body, Some(SERVICE_TOKEN))
                .await
                .json()
                .await
                .expect("json");
            assert_eq!(answer["applied"], true, "{}", stack.engine);
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
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while kept().await.len() == 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: the old record is still there",
                stack.engine
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(kept().await, [recent.to_string()], "{}", stack.engine);
        assert!(
            stack.counter("cart_applied_orders_purged_total", &[]).await >= before + 1.0,
            "{}: counted",
            stack.engine
        );
        // The record kept still makes a repeat change nothing.
        let body = json!({"order_id": recent, "lines": [{"product_id": product, "quantity": 1}]});
        let repeat: Value = stack
            .remove_order(&stack.cart(), &user, &body, Some(SERVICE_TOKEN))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(repeat["applied"], false, "{}", stack.engine);
        cart_db.close().await;
    }
}
