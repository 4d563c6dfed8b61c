//! Placing orders: exactly once per key (sequential and concurrent),
//! confirmed through the checkout saga, the cart cleared once through the
//! relay, and recovery from crashes and an unreachable cart — on SQLite and
//! PostgreSQL.

mod common;

use common::{SERVICE_TOKEN, count, refused, spawn_stack};
use futures::future::join_all;
use shop_common::db;
use shop_discovery::{UpstreamClient, UpstreamSettings};
use shop_orders::cart::CartClient;
use shop_orders::config::RelaySettings;
use shop_orders::relay::Relay;
use shop_orders::store::OrderStore;
use shop_proto::orders::v1::OrderStatus;
use tokio_util::sync::CancellationToken;
use tonic::Code;

const ORDERS_OF_USER: &str = "SELECT COUNT(*) AS n FROM orders WHERE user_id = $1";
const OUTBOX_OF_USER: &str = "SELECT COUNT(*) AS n FROM outbox WHERE user_id = $1";

#[tokio::test]
async fn concurrent_repeats_of_one_key_create_one_order_and_clear_the_cart_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let orders = stack.spawn_orders(true).await;
        let (token, products) = stack.shopper_with("alice", &[3, 1]).await;

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
        // The creating call answers once checkout has settled; a repeat
        // may have read it still pending, never anything else.
        for answer in &answers {
            let order = answer.order.as_ref().expect("order");
            let want = if answer.created {
                vec![OrderStatus::Confirmed]
            } else {
                vec![OrderStatus::Pending, OrderStatus::Confirmed]
            };
            assert!(
                want.contains(&order.status()),
                "{}: created {}: {order:?}",
                stack.engine,
                answer.created
            );
        }
        let first = answers
            .iter()
            .find(|a| a.created)
            .and_then(|a| a.order.clone())
            .expect("the created order");
        assert_eq!(first.lines.len(), 2);
        assert_eq!(
            first.total_cents,
            first.lines.iter().map(|l| l.line_total_cents).sum::<i64>()
        );
        let db = stack.orders_db().await;
        let user = first.user_id.clone();
        for sql in [ORDERS_OF_USER, OUTBOX_OF_USER] {
            assert_eq!(count(&db, sql, &user).await, 1, "{}: {sql}", stack.engine);
        }

        // The relay clears the ordered lines, once.
        stack.wait_for_cart(&token, &[]).await;
        stack.wait_marked(&db, &first.id).await;
        stack.assert_delivered_once([&first.id]);

        // Items added after the order stay; a repeat with another cart still
        // returns the first order and creates nothing.
        stack.put_item(&token, &products[2], 2).await;
        let repeat = orders.place(&token, "checkout-1").await.expect("repeat");
        assert!(!repeat.created);
        assert_eq!(repeat.order.expect("order"), first, "{}", stack.engine);
        assert_eq!(
            stack.cart_lines(&token).await,
            [(products[2].clone(), 2)],
            "{}",
            stack.engine
        );
        let orders_of_user = count(&db, ORDERS_OF_USER, &user).await;
        assert_eq!(
            orders_of_user, 1,
            "{}: a repeat creates nothing",
            stack.engine
        );
        db.close().await;
    }
}

#[tokio::test]
async fn a_committed_order_is_delivered_after_a_restart_and_a_duplicate_delivery_changes_nothing() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let (token, products) = stack.shopper_with("bob", &[2, 1]).await;

        // Crash point: the order commits, the relay never runs, the process stops.
        let mut first = stack.spawn_orders(false).await;
        let order = first.placed(&token, "k-restart").await;
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
        stack.assert_delivered_once([&order.id]);
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
        let (token, products) = stack.shopper_with("carol", &[1]).await;
        let mut orders = stack.spawn_orders(true).await;
        let db = stack.orders_db().await;

        // Cart down while placing: UNAVAILABLE and no order row.
        stack.cart_down();
        let placing = orders.place(&token, "k-down").await;
        let status = refused(placing, Code::Unavailable, "cart down");
        assert!(!status.message().contains("127.0.0.1"), "no internals leak");
        let keyed = "SELECT COUNT(*) AS n FROM orders WHERE idempotency_key = $1";
        assert_eq!(count(&db, keyed, "k-down").await, 0, "{}", stack.engine);
        stack.cart_up();

        // Cart down after the commit: the relay retries with backoff and
        // delivers once cart is back.
        let placed = orders
            .place(&token, "k-down")
            .await
            .expect("placed once cart is back");
        assert!(placed.created);
        let order = placed.order.expect("order");
        assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
        stack.wait_for_cart(&token, &[]).await;
        orders.shutdown().await;

        // The next order commits while no relay runs; then cart goes away
        // and a relay starts.
        stack.put_item(&token, &products[1], 2).await;
        let mut placer = stack.spawn_orders(false).await;
        let second = placer.placed(&token, "k-down-2").await;
        placer.shutdown().await;
        stack.cart_down();
        let _relay = stack.spawn_orders(true).await;
        let failing = "SELECT COUNT(*) AS n FROM outbox WHERE order_id = $1 AND attempts >= 2 AND delivered_at IS NULL";
        let query = (failing, second.id.as_str());
        stack
            .wait_count("failed attempts to be recorded", &db, query, 1)
            .await;
        assert_eq!(
            stack.cart_lines(&token).await.len(),
            1,
            "not delivered while down"
        );
        stack.cart_up();
        stack.wait_for_cart(&token, &[]).await;
        stack.assert_delivered_once([&second.id, &order.id]);
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
            .map(|r| {
                let order = r.expect("placed").order.expect("order");
                assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
                order.id
            })
            .collect();
        for token in &placed {
            stack.wait_for_cart(token, &[]).await;
        }
        let db = stack.orders_db().await;
        let delivered =
            "SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NOT NULL AND kind = $1";
        let query = (delivered, "cart.order_removal");
        stack
            .wait_count("every row to be marked delivered", &db, query, 6)
            .await;
        stack.assert_delivered_once(&order_ids);
        db.close().await;
    }
}

#[tokio::test]
async fn the_placing_instance_clears_the_cart_before_it_answers() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let (token, products) = stack.shopper_with("dora", &[2]).await;
        let orders = stack.spawn_orders(true).await;
        let order = orders.placed(&token, "k-handoff").await;
        // No waiting: the answer comes after the removal. Its mark follows
        // from the acknowledger, without another delivery.
        assert_eq!(
            stack.cart_lines(&token).await,
            Vec::<(String, i64)>::new(),
            "{}",
            stack.engine
        );
        stack.assert_delivered_once([&order.id]);
        let db = stack.orders_db().await;
        stack.wait_marked(&db, &order.id).await;
        stack.assert_delivered_once([&order.id]);
        // The same quantity put again at once is not undone by a late
        // removal: the next order gets it.
        stack.put_item(&token, &products[0], 2).await;
        let second = orders.place(&token, "k-handoff-2").await.expect("placed");
        assert!(second.created);
        let second = second.order.expect("order");
        assert_eq!(second.status(), OrderStatus::Confirmed, "{second:?}");
        assert_eq!(second.lines.len(), 1);
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
            orders.placed(&token, "k").await;
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
        stack.assert_delivered_once(rows.iter().map(|row| &row.order_id));
        store.db().close().await;
    }
}
