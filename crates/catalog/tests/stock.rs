//! Stock and its reservations over real HTTP on SQLite and PostgreSQL:
//! all-or-nothing, idempotent by order id, released once, never below zero
//! (even when the code is bypassed), and 100 buyers racing for 10 units.

#![allow(clippy::expect_used)] // test helpers: a malformed fixture should fail the test

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{TestApp, apps, assert_problem};
use serde_json::{Value, json};
use shop_api::stock::{ReservationOutcome, ReservationState};
use shop_api::{OrderId, ProductId};
use shop_testkit::send;
use tokio::task::JoinSet;

/// The seeded products the tests reserve, and their seeded stock.
const ESPRESSO_CUPS: &str = "0196a1c0-5e00-7000-8000-000000000001";
const KETTLE: &str = "0196a1c0-5e00-7000-8000-000000000002";
const GRINDER: &str = "0196a1c0-5e00-7000-8000-000000000003";
/// Seeded out of stock, for the README's rejected order.
const DESCALING_TABLETS: &str = "0196a1c0-5e00-7000-8000-00000000000f";
const UNKNOWN: &str = "0196a1c0-5e00-7000-8000-0000000000ff";

fn product(id: &str) -> ProductId {
    id.parse().expect("a product id")
}

fn new_order() -> OrderId {
    OrderId::from_uuid(uuid::Uuid::now_v7())
}

fn reserved(order: OrderId) -> ReservationOutcome {
    ReservationOutcome {
        order_id: order,
        state: ReservationState::Reserved,
        out_of_stock: Vec::new(),
    }
}

fn released(order: OrderId) -> ReservationOutcome {
    ReservationOutcome {
        state: ReservationState::Released,
        ..reserved(order)
    }
}

fn rejected(order: OrderId, short: &[ProductId]) -> ReservationOutcome {
    ReservationOutcome {
        order_id: order,
        state: ReservationState::Rejected,
        out_of_stock: short.to_vec(),
    }
}

#[tokio::test]
async fn products_show_their_stock_in_every_read_and_the_seed_has_one_sold_out() {
    for app in apps().await {
        let products = app.all_products(100).await;
        for item in &products {
            let stock = item["stock"].as_i64().expect("an integer stock");
            assert!(stock >= 0, "{}: {item}", app.engine);
        }
        let stock_of = |id: &str| {
            products
                .iter()
                .find(|p| p["id"] == id)
                .map(|p| p["stock"].clone())
        };
        assert_eq!(stock_of(ESPRESSO_CUPS), Some(json!(120)), "{}", app.engine);
        assert_eq!(
            stock_of(DESCALING_TABLETS),
            Some(json!(0)),
            "{}",
            app.engine
        );
        let sold_out: Vec<&Value> = products.iter().filter(|p| p["stock"] == 0).collect();
        assert_eq!(sold_out.len(), 1, "{}: one product is sold out", app.engine);

        let order = new_order();
        app.reserve_ok(order, &[(product(KETTLE), 4)]).await;
        assert_eq!(
            app.stock_of(product(KETTLE)).await,
            31,
            "{}: by id",
            app.engine
        );
        let batch = app
            .products_ok(&[("ids", &format!("{KETTLE},{GRINDER}"))])
            .await;
        let stocks: Vec<&Value> = batch["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| &p["stock"])
            .collect();
        assert_eq!(stocks, [&json!(31), &json!(25)], "{}: batch", app.engine);
    }
}

#[tokio::test]
async fn a_reservation_takes_stock_once_and_a_release_gives_it_back_once() {
    for app in apps().await {
        let kettle = product(KETTLE);
        app.set_stock_ok(kettle, 5).await;
        let order = new_order();
        assert_eq!(app.reserve_ok(order, &[(kettle, 2)]).await, reserved(order));
        assert_eq!(app.stock_of(kettle).await, 3, "{}", app.engine);

        // A retry, even one that names other lines, answers the recorded
        // outcome and takes nothing more.
        for lines in [vec![(kettle, 2)], vec![(kettle, 3), (product(GRINDER), 1)]] {
            assert_eq!(app.reserve_ok(order, &lines).await, reserved(order));
        }
        assert_eq!(app.stock_of(kettle).await, 3, "{}: repeats", app.engine);
        assert_eq!(app.stock_of(product(GRINDER)).await, 25, "{}", app.engine);

        for _ in 0..2 {
            assert_eq!(app.release_ok(order).await, released(order));
            assert_eq!(
                app.stock_of(kettle).await,
                5,
                "{}: released once",
                app.engine
            );
        }
        // Released is final: reserving the order again holds nothing.
        assert_eq!(app.reserve_ok(order, &[(kettle, 2)]).await, released(order));
        assert_eq!(app.stock_of(kettle).await, 5, "{}", app.engine);
    }
}

#[tokio::test]
async fn a_short_line_rejects_the_whole_order_and_is_named_again_on_a_repeat() {
    for app in apps().await {
        let (kettle, grinder, unknown) = (product(KETTLE), product(GRINDER), product(UNKNOWN));
        app.set_stock_ok(kettle, 5).await;
        app.set_stock_ok(grinder, 1).await;

        let order = new_order();
        let lines = [(kettle, 2), (grinder, 3)];
        let expected = rejected(order, &[grinder]);
        assert_eq!(app.reserve_ok(order, &lines).await, expected);
        let stocks = (app.stock_of(kettle).await, app.stock_of(grinder).await);
        assert_eq!(stocks, (5, 1), "{}: nothing taken", app.engine);
        assert_eq!(
            app.reserve_ok(order, &lines).await,
            expected,
            "{}",
            app.engine
        );

        // Releasing a rejected order changes nothing and says so.
        assert_eq!(app.release_ok(order).await, expected, "{}", app.engine);
        assert_eq!(app.stock_of(kettle).await, 5, "{}", app.engine);

        // Unknown products and sold-out ones are short too, named in the
        // order's line order (not id order).
        let order = new_order();
        let lines = [
            (unknown, 1),
            (kettle, 1),
            (product(DESCALING_TABLETS), 1),
            (grinder, 1),
        ];
        let outcome = app.reserve_ok(order, &lines).await;
        assert_eq!(
            outcome,
            rejected(order, &[unknown, product(DESCALING_TABLETS)]),
            "{}",
            app.engine
        );
        let stocks = (app.stock_of(kettle).await, app.stock_of(grinder).await);
        assert_eq!(stocks, (5, 1), "{}: nothing taken", app.engine);
    }
}

#[tokio::test]
async fn a_release_before_the_reservation_leaves_a_tombstone_so_a_late_reservation_holds_nothing() {
    for app in apps().await {
        let kettle = product(KETTLE);
        let before = app.stock_of(kettle).await;
        let order = new_order();
        assert_eq!(app.release_ok(order).await, released(order));
        assert_eq!(app.reserve_ok(order, &[(kettle, 3)]).await, released(order));
        assert_eq!(app.stock_of(kettle).await, before, "{}", app.engine);
        assert_eq!(app.release_ok(order).await, released(order));
        assert_eq!(app.stock_of(kettle).await, before, "{}", app.engine);
    }
}

#[tokio::test]
async fn the_database_refuses_negative_stock_when_the_code_is_bypassed() {
    for app in apps().await {
        let db = app.db().await;
        for statement in [
            "UPDATE products SET stock = -1 WHERE id = $1",
            "UPDATE products SET stock = stock - 1000 WHERE id = $1",
        ] {
            let result = sqlx::query(statement).bind(KETTLE).execute(db.pool()).await;
            assert!(result.is_err(), "{}: {statement} must fail", app.engine);
        }
        let result = sqlx::query(
            "INSERT INTO products (id, sku, name, description, price_cents, currency, stock) \
             VALUES ($1, 'NEG-STOCK', 'Negative', 'test', 100, 'EUR', -5)",
        )
        .bind("0196a1c0-5e00-7000-9000-000000000001")
        .execute(db.pool())
        .await;
        assert!(result.is_err(), "{}: an insert below zero", app.engine);
        db.close().await;
        assert_eq!(app.stock_of(product(KETTLE)).await, 35, "{}", app.engine);
    }
}

/// Reserves 1 unit of `product` for each of `orders` at once, over HTTP.
async fn reserve_all_at_once(
    app: &Arc<TestApp>,
    product: ProductId,
    orders: &[OrderId],
) -> Vec<ReservationOutcome> {
    let mut tasks = JoinSet::new();
    for &order in orders {
        let app = Arc::clone(app);
        tasks.spawn(async move { app.reserve_ok(order, &[(product, 1)]).await });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn a_hundred_buyers_racing_for_ten_units_get_exactly_ten() {
    for app in apps().await {
        let app = Arc::new(app);
        let grinder = product(GRINDER);
        app.set_stock_ok(grinder, 10).await;
        let reserved_before = app
            .stock_counted("catalog_reservations_total", "reserved")
            .await;
        let rejected_before = app
            .stock_counted("catalog_reservations_total", "rejected")
            .await;

        let orders: Vec<OrderId> = (0..100).map(|_| new_order()).collect();
        let outcomes = reserve_all_at_once(&app, grinder, &orders).await;
        let winners: BTreeSet<OrderId> = outcomes
            .iter()
            .filter(|o| o.state == ReservationState::Reserved)
            .map(|o| o.order_id)
            .collect();
        assert_eq!(winners.len(), 10, "{}", app.engine);
        for outcome in outcomes.iter().filter(|o| !winners.contains(&o.order_id)) {
            assert_eq!(
                outcome,
                &rejected(outcome.order_id, &[grinder]),
                "{}",
                app.engine
            );
        }
        assert_eq!(app.stock_of(grinder).await, 0, "{}", app.engine);

        // Every answer was recorded: asking again answers the same.
        for outcome in &outcomes[..20] {
            let again = app.reserve_ok(outcome.order_id, &[(grinder, 1)]).await;
            assert_eq!(&again, outcome, "{}", app.engine);
        }
        let reserved_now = app
            .stock_counted("catalog_reservations_total", "reserved")
            .await;
        let rejected_now = app
            .stock_counted("catalog_reservations_total", "rejected")
            .await;
        // The recorder is shared by this binary's tests running alongside.
        assert!(reserved_now - reserved_before >= 10.0, "{}", app.engine);
        assert!(rejected_now - rejected_before >= 90.0, "{}", app.engine);
        assert!(
            app.stock_counted("catalog_reservations_total", "repeat")
                .await
                >= 20.0
        );
    }
}

#[tokio::test]
async fn concurrent_attempts_of_one_order_record_one_outcome() {
    for app in apps().await {
        let app = Arc::new(app);
        let kettle = product(KETTLE);
        app.set_stock_ok(kettle, 3).await;
        let order = new_order();
        let outcomes = reserve_all_at_once(&app, kettle, &[order; 20]).await;
        assert!(
            outcomes.iter().all(|o| o == &reserved(order)),
            "{}: {outcomes:?}",
            app.engine
        );
        assert_eq!(app.stock_of(kettle).await, 2, "{}: taken once", app.engine);

        let mut tasks = JoinSet::new();
        for _ in 0..20 {
            let app = Arc::clone(&app);
            tasks.spawn(async move { app.release_ok(order).await });
        }
        let outcomes = tasks.join_all().await;
        assert!(
            outcomes.iter().all(|o| o == &released(order)),
            "{}",
            app.engine
        );
        assert_eq!(
            app.stock_of(kettle).await,
            3,
            "{}: given back once",
            app.engine
        );
        assert!(
            app.stock_counted("catalog_releases_total", "returned")
                .await
                >= 1.0
        );
        assert!(
            app.stock_counted("catalog_releases_total", "unchanged")
                .await
                >= 19.0
        );
    }
}

#[tokio::test]
async fn set_stock_answers_the_product_and_refuses_bad_values() {
    for app in apps().await {
        let tablets = product(DESCALING_TABLETS);
        let body = app.set_stock_ok(tablets, 12).await;
        assert_eq!(body["id"], DESCALING_TABLETS, "{}", app.engine);
        assert_eq!(body["sku"], "CLN-DESC-3", "{}", app.engine);
        assert_eq!(app.stock_of(tablets).await, 12, "{}", app.engine);
        app.set_stock_ok(tablets, 0).await;

        for bad in [-1, 1_000_000_001, i64::MIN] {
            let response = app.set_stock(DESCALING_TABLETS, bad).await;
            let body = assert_problem(response, 422, &format!("{}: {bad}", app.engine)).await;
            assert!(body["errors"]["stock"].is_string(), "{body}");
        }
        let response = app.set_stock(UNKNOWN, 5).await;
        assert_problem(response, 404, &format!("{}: unknown", app.engine)).await;
        let response = app.set_stock("not-a-uuid", 5).await;
        assert_problem(response, 400, &format!("{}: malformed", app.engine)).await;
        let response = app
            .internal_put(
                &format!("/internal/products/{KETTLE}/stock"),
                &json!({"stock": "many"}),
            )
            .await;
        assert_problem(response, 422, &format!("{}: wrong type", app.engine)).await;
        assert_eq!(app.stock_of(tablets).await, 0, "{}", app.engine);
    }
}

/// Lines of a reservation and the fields its 422 names.
type Case = (Vec<(ProductId, i64)>, &'static [&'static str]);

#[tokio::test]
async fn invalid_reservations_are_422_naming_each_field_and_reserve_nothing() {
    for app in apps().await {
        let (kettle, grinder) = (product(KETTLE), product(GRINDER));
        let cases: [Case; 5] = [
            (vec![], &["lines"]),
            (vec![(kettle, 0)], &["lines[0].quantity"]),
            (vec![(kettle, 1), (grinder, 10_001)], &["lines[1].quantity"]),
            (
                vec![(kettle, 1), (grinder, 1), (kettle, 2)],
                &["lines[2].product_id"],
            ),
            (
                vec![(kettle, -1), (kettle, 1)],
                &["lines[0].quantity", "lines[1].product_id"],
            ),
        ];
        for (lines, fields) in cases {
            let order = new_order();
            let context = format!("{}: {lines:?}", app.engine);
            let body = assert_problem(app.reserve(order, &lines).await, 422, &context).await;
            let named: Vec<&str> = body["errors"]
                .as_object()
                .expect("errors")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(named, fields, "{context}: {body}");
            // Nothing was recorded: the order can still be reserved.
            assert_eq!(app.reserve_ok(order, &[(kettle, 1)]).await, reserved(order));
            app.release_ok(order).await;
        }
        let most = app.reserve_ok(new_order(), &[(kettle, 10_000)]).await;
        assert_eq!(most.state, ReservationState::Rejected, "{}", app.engine);

        let response = app
            .internal_put("/internal/reservations/not-an-order", &json!({"lines": []}))
            .await;
        assert_problem(response, 400, &format!("{}: malformed id", app.engine)).await;
        let response = send(
            app.internal(
                app.client
                    .post(app.url("/internal/reservations/42/release")),
            ),
        )
        .await;
        assert_problem(response, 400, &format!("{}: malformed id", app.engine)).await;
        assert_eq!(app.stock_of(kettle).await, 35, "{}", app.engine);
    }
}

#[tokio::test]
async fn internal_routes_refuse_calls_without_the_service_credential() {
    for app in apps().await {
        let order = new_order();
        let reservation = json!({"lines": [{"product_id": KETTLE, "quantity": 1}]});
        let requests = [
            app.client
                .put(app.url(&format!("/internal/reservations/{order}")))
                .json(&reservation),
            app.client
                .post(app.url(&format!("/internal/reservations/{order}/release"))),
            app.client
                .put(app.url(&format!("/internal/products/{KETTLE}/stock")))
                .json(&json!({"stock": 0})),
            // The guard answers before the path is parsed.
            app.client.put(app.url("/internal/products/nope/stock")),
        ];
        for request in requests {
            for token in [None, Some("wrong"), Some("")] {
                let request = request.try_clone().expect("clonable");
                let request = match token {
                    Some(token) => request.header(shop_common::wire::SERVICE_TOKEN, token),
                    None => request,
                };
                let context = format!("{}: token {token:?}", app.engine);
                assert_problem(send(request).await, 401, &context).await;
            }
        }
        assert_eq!(app.stock_of(product(KETTLE)).await, 35, "{}", app.engine);
        // Nothing was recorded for the order either.
        assert_eq!(
            app.reserve_ok(order, &[(product(KETTLE), 1)]).await,
            reserved(order)
        );
    }
}
