//! The internal order-removal route: idempotent by order id, subtracting
//! only what was ordered, leaving lines set after the order's snapshot, on
//! SQLite and PostgreSQL.

mod common;

use common::{
    CartStack as _, SERVICE_TOKEN, assert_problem, removal, removal_at, spawn_stack, user_id,
};
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
    let negative_version = removal_at(uuid::Uuid::now_v7(), -1, &[(&product, 1)]);
    for (user, body, status, why) in [
        (user, zero, 422, "zero quantity"),
        (user, bad_order, 422, "bad order id"),
        (user, negative_version, 422, "negative cart version"),
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

/// The race the checkout loop hit, made deterministic: the order reads the
/// cart, the shopper changes it, then the removal arrives.
#[tokio::test]
async fn a_late_removal_leaves_lines_set_after_the_snapshot() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 1).await;
        let token = stack.token("hana").await;
        let user = user_id(&token);
        let ids = stack.product_ids().await;
        let (changed, unchanged, readded, added) = (&ids[0], &ids[1], &ids[2], &ids[3]);
        stack.put(&token, changed, 2).await;
        stack.put(&token, unchanged, 1).await;
        stack.put(&token, readded, 3).await;
        let version = stack.cart_version(&token).await;
        let order = uuid::Uuid::now_v7();
        let ordered = [
            (changed.as_str(), 2),
            (unchanged.as_str(), 1),
            (readded.as_str(), 3),
        ];
        let body = removal_at(order, version, &ordered);

        // After the snapshot: a new quantity, a line taken out and put back
        // as it was, a new line.
        stack.put(&token, changed, 5).await;
        let path = format!("/api/cart/items/{readded}");
        let deleted = stack.delete(&stack.cart(), &path, &token).await;
        assert_eq!(deleted.status(), 204, "{}", stack.engine);
        stack.put(&token, readded, 3).await;
        let before = stack.put(&token, added, 1).await["version"].clone();

        let first = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        let skipped = sorted(vec![changed.clone(), readded.clone()]);
        assert_eq!(first["skipped"], json!(skipped), "{}", stack.engine);
        assert_eq!(
            first["version"],
            json!(before.as_i64().expect("version") + 1)
        );
        let want = sorted(vec![
            (changed.clone(), 5),
            (readded.clone(), 3),
            (added.clone(), 1),
        ]);
        let cart = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(lines(&cart), want, "{}", stack.engine);

        // A repeat of the order changes nothing and skips nothing.
        let repeat = stack
            .assert_removal(&stack.cart(), &user, &body, false)
            .await;
        assert_eq!(repeat["version"], first["version"], "{}", stack.engine);
        assert_eq!(repeat["skipped"], json!([]), "{}", stack.engine);
        let cart = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(lines(&cart), want, "{}", stack.engine);
    }
}

/// Putting the quantity a line already has is a no-op: neither the cart's
/// version nor the line's moves, so the line is still the one ordered.
#[tokio::test]
async fn a_put_of_the_same_quantity_keeps_the_line_ordered() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 1).await;
        let token = stack.token("ines").await;
        let user = user_id(&token);
        let product = stack.product_ids().await.remove(0);
        stack.put(&token, &product, 2).await;
        let version = stack.cart_version(&token).await;
        let body = removal_at(uuid::Uuid::now_v7(), version, &[(&product, 2)]);

        let again = stack.put(&token, &product, 2).await;
        assert_eq!(again["version"], version, "{}: no-op PUT", stack.engine);

        let answer = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        assert_eq!(answer["skipped"], json!([]), "{}", stack.engine);
        assert_eq!(answer["version"], version + 1, "{}", stack.engine);
        let cart = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(lines(&cart), [], "{}", stack.engine);
    }
}

/// A removal recorded before orders sent `cart_version` subtracts from
/// whatever the cart holds, as it always did.
#[tokio::test]
async fn a_removal_without_cart_version_subtracts_as_before() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 1).await;
        let token = stack.token("jonas").await;
        let user = user_id(&token);
        let ids = stack.product_ids().await;
        stack.put(&token, &ids[0], 3).await;
        stack.put(&token, &ids[1], 1).await;
        let body = removal(uuid::Uuid::now_v7(), &[(&ids[0], 3), (&ids[1], 1)]);
        stack.put(&token, &ids[0], 5).await;

        let answer = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        assert_eq!(answer["skipped"], json!([]), "{}", stack.engine);
        let cart = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(lines(&cart), [(ids[0].clone(), 2)], "{}", stack.engine);
    }
}

/// A removal that subtracts sets the line too: it is stamped with the
/// version that removal produced, so only a snapshot from then on sees it
/// unchanged.
#[tokio::test]
async fn a_subtraction_stamps_the_line_with_its_version() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 1).await;
        let token = stack.token("kim").await;
        let user = user_id(&token);
        let product = stack.product_ids().await.remove(0);
        stack.put(&token, &product, 3).await;
        let version = stack.cart_version(&token).await;

        let body = removal_at(uuid::Uuid::now_v7(), version, &[(&product, 1)]);
        let first = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        assert_eq!(first["version"], version + 1, "{}", stack.engine);

        let body = removal_at(uuid::Uuid::now_v7(), version, &[(&product, 1)]);
        let older = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        assert_eq!(older["skipped"], json!([product]), "{}", stack.engine);
        assert_eq!(older["version"], version + 1, "{}", stack.engine);

        let body = removal_at(uuid::Uuid::now_v7(), version + 1, &[(&product, 2)]);
        let newer = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        assert_eq!(newer["skipped"], json!([]), "{}", stack.engine);
        let cart = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(lines(&cart), [], "{}", stack.engine);
    }
}

/// Concurrent changes to one cart through two replicas: each line carries
/// the version its own change produced (a change may first guess a number
/// another took, and must correct it: without the correction, stamps
/// repeat here), so a removal at the version read afterwards takes every
/// line.
#[tokio::test]
async fn concurrent_puts_stamp_each_line_with_its_own_version() {
    use shop_common::config::DatabaseSettings;
    use shop_common::db::Db;
    use sqlx::Row;

    const LINES: usize = 12;
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 2).await;
        let token = stack.token("lena").await;
        let user = user_id(&token);
        let ids: Vec<String> = stack.product_ids().await.into_iter().take(LINES).collect();
        let carts = stack.carts();
        let puts = ids
            .iter()
            .enumerate()
            .map(|(i, id)| stack.put_item(&carts[i % 2], &token, id, json!({"quantity": 1})));
        for put in join_all(puts).await {
            assert_eq!(put.status(), 200, "{}", stack.engine);
        }
        let version = stack.cart_version(&token).await;
        assert_eq!(
            version, LINES as i64,
            "{}: one version per put",
            stack.engine
        );

        let cart_db = Db::connect(&DatabaseSettings::new(stack.db_url("cart")))
            .await
            .expect("cart database");
        let stamps: Vec<i64> = sqlx::query(
            "SELECT set_version FROM cart_items WHERE user_id = $1 ORDER BY set_version",
        )
        .bind(&user)
        .fetch_all(cart_db.pool())
        .await
        .expect("stamps")
        .iter()
        .map(|row| row.try_get("set_version").expect("set_version"))
        .collect();
        cart_db.close().await;
        assert_eq!(
            stamps,
            (1..=version).collect::<Vec<_>>(),
            "{}",
            stack.engine
        );

        let ordered: Vec<(&str, i64)> = ids.iter().map(|id| (id.as_str(), 1)).collect();
        let body = removal_at(uuid::Uuid::now_v7(), version, &ordered);
        let answer = stack
            .assert_removal(&stack.cart(), &user, &body, true)
            .await;
        assert_eq!(answer["skipped"], json!([]), "{}", stack.engine);
        let cart = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(lines(&cart), [], "{}", stack.engine);
    }
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}
