//! Placing orders: exactly once per key (sequential and concurrent), the
//! cart cleared once through the relay, and recovery from crashes and an
//! unreachable cart — on SQLite and PostgreSQL.

mod common;

use common::{SERVICE_TOKEN, count, spawn_stack};
use futures::future::join_all;
use shop_common::db;
use shop_discovery::{UpstreamClient, UpstreamSettings};
use shop_orders::cart::CartClient;
use shop_orders::config::RelaySettings;
use shop_orders::relay::Relay;
use shop_orders::store::OrderStore;
use tokio_util::sync::CancellationToken;
use tonic::Code;

#[tokio::test]
async fn concurrent_repeats_of_one_key_create_one_order_and_clear_the_cart_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let orders = stack.spawn_orders(true).await;
        let token = stack.token("alice").await;
        let products = stack.product_ids().await;
        stack.put_item(&token, &products[0], 3).await;
        stack.put_item(&token, &products[1], 1).await;

        let calls = (0..20).map(|_| orders.place(&token, "checkout-1"));
        let answers: Vec<_> = join_all(calls)
            .await
            .into_iter()
            .map(|answer| answer.expect("placed"))
            .collect();
        let first = answers[0].order.clone().expect("order");
        assert!(
            answers
                .iter()
                .all(|a| a.order.as_ref().map(|o| &o.id) == Some(&first.id)),
            "{}: every caller gets the one order",
            stack.engine
        );
        assert_eq!(
            answers.iter().filter(|a| a.created).count(),
            1,
            "{}: exactly one call created it",
            stack.engine
        );
        assert_eq!(first.lines.len(), 2);
        assert_eq!(
            first.total_cents,
            first.lines.iter().map(|l| l.line_total_cents).sum::<i64>()
        );
        let db = stack.orders_db().await;
        let user = first.user_id.clone();
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) AS n FROM orders WHERE user_id = $1",
                &user
            )
            .await,
            1,
            "{}",
            stack.engine
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) AS n FROM outbox WHERE user_id = $1",
                &user
            )
            .await,
            1,
            "{}",
            stack.engine
        );

        // The relay clears the ordered lines, once.
        stack.wait_for_cart(&token, &[]).await;
        stack.wait_marked(&db, &first.id).await;
        assert_eq!(stack.deliveries.of(&first.id), [true]);

        // Items added after the order stay; a repeat with another cart still
        // returns the first order and creates nothing.
        stack.put_item(&token, &products[2], 2).await;
        let repeat = orders.place(&token, "checkout-1").await.expect("repeat");
        assert!(!repeat.created);
        assert_eq!(repeat.order.expect("order").id, first.id);
        assert_eq!(
            stack.cart_lines(&token).await,
            [(products[2].clone(), 2)],
            "{}",
            stack.engine
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) AS n FROM orders WHERE user_id = $1",
                &user
            )
            .await,
            1
        );
        db.close().await;
    }
}

#[tokio::test]
async fn a_committed_order_is_delivered_after_a_restart_and_a_duplicate_delivery_changes_nothing() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let token = stack.token("bob").await;
        let products = stack.product_ids().await;
        stack.put_item(&token, &products[0], 2).await;
        stack.put_item(&token, &products[1], 1).await;

        // Crash point: the order commits, the relay never runs, the process stops.
        let mut first = stack.spawn_orders(false).await;
        let order = first
            .place(&token, "k-restart")
            .await
            .expect("placed")
            .order
            .expect("order");
        first.shutdown().await;
        assert_eq!(stack.cart_lines(&token).await.len(), 2, "not delivered yet");
        assert!(stack.deliveries.of(&order.id).is_empty());

        // Added after the order: must survive the removal.
        stack.put_item(&token, &products[2], 4).await;

        // A new process over the same database delivers the row.
        let second = stack.spawn_orders(true).await;
        stack
            .wait_for_cart(&token, &[(products[2].clone(), 4)])
            .await;
        assert_eq!(stack.deliveries.of(&order.id), [true]);
        let version = stack.cart_json(&token).await["version"].clone();

        // A duplicate delivery (the row reset, as after a crash between
        // delivering and marking) reaches cart again and changes nothing.
        let db = stack.orders_db().await;
        stack.wait_marked(&db, &order.id).await;
        sqlx::query("UPDATE outbox SET delivered_at = NULL WHERE order_id = $1")
            .bind(&order.id)
            .execute(db.pool())
            .await
            .expect("reset");
        stack
            .eventually("the duplicate delivery", || async {
                stack.deliveries.of(&order.id).len() == 2
            })
            .await;
        assert_eq!(stack.deliveries.of(&order.id), [true, false]);
        assert_eq!(stack.cart_json(&token).await["version"], version);
        assert_eq!(
            stack.cart_lines(&token).await,
            [(products[2].clone(), 4)],
            "{}",
            stack.engine
        );
        db.close().await;
        drop(second);
    }
}

#[tokio::test]
async fn an_unreachable_cart_places_nothing_and_delays_delivery_until_it_is_back() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let token = stack.token("carol").await;
        let products = stack.product_ids().await;
        stack.put_item(&token, &products[0], 1).await;
        let mut orders = stack.spawn_orders(true).await;
        let db = stack.orders_db().await;

        // Cart down while placing: UNAVAILABLE and no order row.
        stack.cart_down();
        let status = orders
            .place(&token, "k-down")
            .await
            .expect_err("cart is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(!status.message().contains("127.0.0.1"), "no internals leak");
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) AS n FROM orders WHERE idempotency_key = $1",
                "k-down"
            )
            .await,
            0
        );
        stack.cart_up();

        // Cart down after the commit: the relay retries with backoff and
        // delivers once cart is back.
        let placed = orders
            .place(&token, "k-down")
            .await
            .expect("placed once cart is back");
        assert!(placed.created);
        let order = placed.order.expect("order");
        stack.wait_for_cart(&token, &[]).await;
        orders.shutdown().await;

        // The next order commits while no relay runs; then cart goes away
        // and a relay starts.
        stack.put_item(&token, &products[1], 2).await;
        let mut placer = stack.spawn_orders(false).await;
        let second = placer
            .place(&token, "k-down-2")
            .await
            .expect("placed")
            .order
            .expect("order");
        placer.shutdown().await;
        stack.cart_down();
        let _relay = stack.spawn_orders(true).await;
        stack
            .eventually("failed attempts to be recorded", || async {
                count(
                    &db,
                    "SELECT COUNT(*) AS n FROM outbox WHERE order_id = $1 AND attempts >= 2 AND delivered_at IS NULL",
                    &second.id,
                )
                .await
                    == 1
            })
            .await;
        assert_eq!(
            stack.cart_lines(&token).await.len(),
            1,
            "not delivered while down"
        );
        stack.cart_up();
        stack.wait_for_cart(&token, &[]).await;
        assert_eq!(stack.deliveries.of(&second.id), [true]);
        assert_eq!(stack.deliveries.of(&order.id), [true]);
        db.close().await;
    }
}

#[tokio::test]
async fn two_instances_with_relays_deliver_each_row_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let a = stack.spawn_orders(true).await;
        let b = stack.spawn_orders(true).await;
        let products = stack.product_ids().await;
        let mut placed = Vec::new();
        for i in 0..6 {
            let token = stack.token(&format!("buyer{i}")).await;
            stack.put_item(&token, &products[i % 3], 1).await;
            placed.push(token);
        }
        let calls = placed
            .iter()
            .enumerate()
            .map(|(i, token)| if i % 2 == 0 { &a } else { &b }.place(token, "once"));
        let order_ids: Vec<String> = join_all(calls)
            .await
            .into_iter()
            .map(|r| r.expect("placed").order.expect("order").id)
            .collect();
        for token in &placed {
            stack.wait_for_cart(token, &[]).await;
        }
        let db = stack.orders_db().await;
        stack
            .eventually("every row to be marked delivered", || async {
                count(
                    &db,
                    "SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NOT NULL AND kind = $1",
                    "cart.order_removal",
                )
                .await
                    == 6
            })
            .await;
        for id in &order_ids {
            assert_eq!(
                stack.deliveries.of(id),
                [true],
                "{}: order {id} delivered exactly once",
                stack.engine
            );
        }
        db.close().await;
    }
}

#[tokio::test]
async fn the_placing_instance_clears_the_cart_before_it_answers() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let token = stack.token("dora").await;
        let products = stack.product_ids().await;
        stack.put_item(&token, &products[0], 2).await;
        let orders = stack.spawn_orders(true).await;
        let order = orders
            .place(&token, "k-handoff")
            .await
            .expect("placed")
            .order
            .expect("order");
        // No waiting: the answer comes after the removal. Its mark follows
        // from the acknowledger, without another delivery.
        assert_eq!(
            stack.cart_lines(&token).await,
            Vec::<(String, i64)>::new(),
            "{}",
            stack.engine
        );
        assert_eq!(stack.deliveries.of(&order.id), [true]);
        let db = stack.orders_db().await;
        stack.wait_marked(&db, &order.id).await;
        assert_eq!(stack.deliveries.of(&order.id), [true]);
        // The same quantity put again at once is not undone by a late
        // removal: the next order gets it.
        stack.put_item(&token, &products[0], 2).await;
        let second = orders.place(&token, "k-handoff-2").await.expect("placed");
        assert!(second.created);
        assert_eq!(second.order.expect("order").lines.len(), 1);
        db.close().await;
    }
}

#[tokio::test]
async fn deliveries_reported_before_the_acknowledger_stops_are_all_marked() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        // Orders placed without a relay: their rows wait, unclaimed.
        let orders = stack.spawn_orders(false).await;
        let products = stack.product_ids().await;
        for i in 0..5 {
            let token = stack.token(&format!("acked{i}")).await;
            stack.put_item(&token, &products[i % 3], 1).await;
            orders.place(&token, "k").await.expect("placed");
        }
        let store = OrderStore::new(stack.orders_db().await);
        let cart = CartClient::new(
            UpstreamClient::new("cart", &UpstreamSettings::default(), &stack.orders_registry)
                .expect("cart client"),
        );
        let (relay, acknowledger) = Relay::new(
            "acking-relay",
            store.clone(),
            cart,
            Some(SERVICE_TOKEN.to_owned().into()),
            RelaySettings::default(),
        );
        let now = chrono::Utc::now();
        let rows = store
            .claim(
                relay.id(),
                &db::timestamp_text(now),
                &db::timestamp_text(now + chrono::Duration::minutes(5)),
                32,
            )
            .await
            .expect("claimed");
        assert_eq!(rows.len(), 5, "{}", stack.engine);
        // Delivered and reported while no acknowledger runs; it starts
        // already told to stop, so only its last pass can mark them.
        for row in &rows {
            relay.deliver_placed(row).await;
        }
        let stop = CancellationToken::new();
        stop.cancel();
        acknowledger.run(stop).await;
        assert_eq!(
            count(
                store.db(),
                "SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NOT NULL AND claimed_by IS NULL AND kind = $1",
                "cart.order_removal",
            )
            .await,
            5,
            "{}: every reported delivery marked",
            stack.engine
        );
        for row in &rows {
            assert_eq!(
                stack.deliveries.of(&row.order_id),
                [true],
                "{}: order {} delivered exactly once",
                stack.engine,
                row.order_id
            );
        }
        store.db().close().await;
    }
}
