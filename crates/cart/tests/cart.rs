//! The public cart API over real HTTP, with users and catalog running, on
//! SQLite and PostgreSQL.

mod common;

use common::{CartStack as _, assert_problem, removal, spawn_stack, spawn_with_catalog_cache};
use futures::future::join_all;
use serde_json::{Value, json};
use shop_testkit::send;

#[tokio::test]
async fn a_cart_is_priced_by_the_catalog_and_versioned() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 1).await;
        let token = stack.token("alice").await;
        let products = stack.products().await;
        let (a, b) = (&products[0], &products[1]);

        let empty: Value = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(
            empty,
            json!({"items": [], "total_cents": 0, "currency": "EUR", "version": 0}),
            "{}",
            stack.engine
        );

        let put = stack
            .put_item(
                &stack.cart(),
                &token,
                a["id"].as_str().expect("id"),
                json!({"quantity": 2, "unit_price_cents": 1, "name": "free"}),
            )
            .await;
        assert_eq!(put.status(), 200, "{}", stack.engine);
        let cart: Value = put.json().await.expect("json");
        assert_eq!(
            cart["items"][0]["name"], a["name"],
            "the name comes from the catalog"
        );
        assert_eq!(
            cart["items"][0]["unit_price_cents"], a["price_cents"],
            "the price comes from the catalog"
        );
        assert_eq!(cart["version"], 1);

        let b_id = b["id"].as_str().expect("id");
        stack.put(&token, b_id, 3).await;
        let cart: Value = stack.cart_json(&stack.cart(), &token).await;
        let price_a = a["price_cents"].as_i64().expect("price");
        let price_b = b["price_cents"].as_i64().expect("price");
        assert_eq!(cart["items"].as_array().expect("items").len(), 2);
        assert_eq!(
            cart["total_cents"],
            price_a * 2 + price_b * 3,
            "{}",
            stack.engine
        );
        for line in cart["items"].as_array().expect("items") {
            assert_eq!(
                line["line_total_cents"],
                line["unit_price_cents"].as_i64().expect("n")
                    * line["quantity"].as_i64().expect("n")
            );
        }
        assert_eq!(cart["version"], 2);

        let same = stack.put(&token, b_id, 3).await;
        assert_eq!(
            same["version"], 2,
            "setting the same quantity changes nothing"
        );

        let path = format!("/api/cart/items/{}", a["id"].as_str().expect("id"));
        let delete = stack.delete(&stack.cart(), &path, &token).await;
        assert_eq!(delete.status(), 204);
        let cart: Value = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(cart["items"].as_array().expect("items").len(), 1);
        assert_eq!(cart["version"], 3);

        let clear = stack.delete(&stack.cart(), "/api/cart", &token).await;
        assert_eq!(clear.status(), 204);
        let cart: Value = stack.cart_json(&stack.cart(), &token).await;
        assert_eq!(cart["items"], json!([]));
        assert_eq!(cart["version"], 4, "{}", stack.engine);
    }
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx() {
    let stack = spawn_stack(shop_testkit::TestDatabase::sqlite(), 1).await;
    let token = stack.token("bob").await;
    let product = stack.product_ids().await.remove(0);
    for (body, why) in [
        (json!({"quantity": 0}), "zero"),
        (json!({"quantity": 100}), "over 99"),
        (json!({"quantity": -1}), "negative"),
        (json!({}), "missing"),
    ] {
        let problem = assert_problem(
            stack.put_item(&stack.cart(), &token, &product, body).await,
            422,
            why,
        )
        .await;
        assert!(
            problem["errors"]["quantity"].is_string(),
            "{why}: {problem}"
        );
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let (product, unknown) = (product.as_str(), unknown.as_str());
    for (product, body, status, why) in [
        (product, json!({"quantity": "2"}), 422, "string quantity"),
        (product, json!({"quantity": 1.5}), 422, "fractional"),
        (unknown, json!({"quantity": 1}), 404, "unknown product"),
        ("not-a-uuid", json!({"quantity": 1}), 400, "malformed id"),
        ("'%20OR%201=1--", json!({"quantity": 1}), 400, "sql in id"),
    ] {
        let put = stack.put_item(&stack.cart(), &token, product, body).await;
        let problem = assert_problem(put, status, why).await;
        if status == 404 {
            assert_eq!(problem["type"], "/problems/unknown-product");
        }
    }
    let broken = stack
        .client
        .put(format!("{}/api/cart/items/{product}", &stack.cart()))
        .bearer_auth(&token)
        .body("{")
        .header("content-type", "application/json");
    assert_problem(send(broken).await, 400, "broken JSON").await;
    let cart_url = format!("{}/api/cart", &stack.cart());
    assert_problem(send(stack.client.get(&cart_url)).await, 401, "no token").await;
    let bad_token = stack.client.get(&cart_url).bearer_auth("nope");
    assert_problem(send(bad_token).await, 401, "bad token").await;
    let cart: Value = stack.cart_json(&stack.cart(), &token).await;
    assert_eq!(
        cart["version"], 0,
        "nothing was written by the bad requests"
    );
}

#[tokio::test]
async fn users_never_see_or_change_each_others_carts() {
    let stack = spawn_stack(shop_testkit::TestDatabase::sqlite(), 1).await;
    let alice = stack.token("alice").await;
    let mallory = stack.token("mallory").await;
    let product = stack.product_ids().await.remove(0);
    stack
        .put_item(&stack.cart(), &alice, &product, json!({"quantity": 5}))
        .await;

    let seen: Value = stack.cart_json(&stack.cart(), &mallory).await;
    assert_eq!(seen["items"], json!([]));
    let delete = stack.delete(&stack.cart(), "/api/cart", &mallory).await;
    assert_eq!(delete.status(), 204);
    let delete = stack
        .delete(
            &stack.cart(),
            &format!("/api/cart/items/{product}"),
            &mallory,
        )
        .await;
    assert_eq!(delete.status(), 204);
    // The internal route takes a user id, but only with the service credential.
    let alice_id = common::user_id(&alice);
    let body = removal(uuid::Uuid::now_v7(), &[(&product, 5)]);
    assert_problem(
        stack
            .remove_order(&stack.cart(), &alice_id, &body, None)
            .await,
        401,
        "no credential",
    )
    .await;
    let url = format!("{}/internal/carts/{alice_id}/order-removals", stack.cart());
    let with_token = stack.client.post(url).bearer_auth(&mallory).json(&body);
    assert_problem(
        send(with_token).await,
        401,
        "a user token is no service credential",
    )
    .await;

    let cart: Value = stack.cart_json(&stack.cart(), &alice).await;
    assert_eq!(cart["items"][0]["quantity"], 5, "alice's cart is untouched");
}

#[tokio::test]
async fn concurrent_updates_lose_nothing() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db, 2).await;
        let carts = stack.carts();
        let token = stack.token("carol").await;
        let ids: Vec<String> = stack.product_ids().await.into_iter().take(12).collect();
        // Different items of one cart, through two replicas at once.
        let puts = ids.iter().enumerate().map(|(i, id)| {
            let base = &carts[i % 2];
            stack.put_item(base, &token, id, json!({"quantity": i + 1}))
        });
        let responses = join_all(puts).await;
        let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
        assert!(
            statuses.iter().all(|&s| s == 200),
            "{}: {statuses:?}",
            stack.engine
        );
        // Each answer is the cart as that change left it: its own line, and
        // (every change adding one new line) as many lines as its version.
        for (i, response) in responses.into_iter().enumerate() {
            let answered: Value = response.json().await.expect("json");
            let items = answered["items"].as_array().expect("items");
            assert!(
                items
                    .iter()
                    .any(|l| l["product_id"] == ids[i].as_str() && l["quantity"] == i + 1),
                "{}: the answer holds its own change: {answered}",
                stack.engine
            );
            assert_eq!(
                answered["version"].as_u64(),
                Some(items.len() as u64),
                "{}: {answered}",
                stack.engine
            );
        }
        let cart: Value = stack.cart_json(&carts[1], &token).await;
        assert_eq!(
            cart["items"].as_array().expect("items").len(),
            12,
            "{}",
            stack.engine
        );
        assert_eq!(
            cart["version"], 12,
            "{}: every change bumped the version once",
            stack.engine
        );

        // The same item from many writers: one of the written values wins.
        let same = (1..=10).map(|q| {
            stack.put_item(
                &carts[(q % 2) as usize],
                &token,
                &ids[0],
                json!({"quantity": q}),
            )
        });
        join_all(same).await;
        let cart: Value = stack.cart_json(&stack.cart(), &token).await;
        let line = cart["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|l| l["product_id"] == ids[0].as_str())
            .expect("line");
        let q = line["quantity"].as_i64().expect("quantity");
        assert!((1..=10).contains(&q), "{}: {q}", stack.engine);
    }
}

#[tokio::test]
async fn without_the_catalog_the_cart_answers_503_never_a_guess() {
    let mut stack = spawn_with_catalog_cache(0).await;
    let (token, product) = stack.shopper_with_one_item("dave").await;
    stack.stop_service("catalog").await;
    let problem = assert_problem(
        stack.get_cart(&stack.cart(), &token).await,
        503,
        "catalog gone",
    )
    .await;
    assert!(
        !problem.to_string().contains("127.0.0.1"),
        "no internals in the body: {problem}"
    );
    let body = json!({"quantity": 2});
    let put = stack.put_item(&stack.cart(), &token, &product, body).await;
    assert_problem(put, 503, "catalog gone").await;
}

#[tokio::test]
async fn products_read_within_the_cache_ttl_are_reused_and_only_those() {
    // A long time to live: what was read stays for the whole test.
    let mut stack = spawn_with_catalog_cache(600_000).await;
    let token = stack.token("erin").await;
    let ids = stack.product_ids().await;
    let (read, unread) = (&ids[0], &ids[1]);
    let before = stack.put(&token, read, 2).await;
    stack.stop_service("catalog").await;
    let (hits, misses) = (
        stack.cache_lookups("hit").await,
        stack.cache_lookups("miss").await,
    );

    // The product read a moment ago prices the cart and is accepted again.
    let cart = stack.get_cart(&stack.cart(), &token).await;
    assert_eq!(cart.status(), 200);
    let cart: Value = cart.json().await.expect("json");
    assert_eq!(cart["items"], before["items"], "the same names and prices");
    let put = stack.put(&token, read, 3).await;
    assert_eq!(put["items"][0]["quantity"], 3);
    assert_eq!(
        put["items"][0]["unit_price_cents"],
        before["items"][0]["unit_price_cents"]
    );

    // A product never read is not guessed.
    let body = json!({"quantity": 1});
    let put = stack.put_item(&stack.cart(), &token, unread, body).await;
    assert_problem(put, 503, "never read").await;

    // The GET and the PUT found the product kept; the last PUT missed it.
    // (Other tests of this binary share the process's counters: at least.)
    assert!(stack.cache_lookups("hit").await >= hits + 2.0);
    assert!(stack.cache_lookups("miss").await >= misses + 1.0);
}

#[tokio::test]
async fn a_cached_product_is_asked_for_again_once_its_ttl_ends() {
    let mut stack = spawn_with_catalog_cache(50).await;
    let (token, _) = stack.shopper_with_one_item("frank").await;
    stack.stop_service("catalog").await;
    // Well past the 50 ms time to live.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_problem(
        stack.get_cart(&stack.cart(), &token).await,
        503,
        "entry expired",
    )
    .await;
}

#[tokio::test]
async fn metrics_are_served_on_the_admin_port_only() {
    let stack = spawn_with_catalog_cache(0).await;
    let anonymous = send(stack.client.get(format!("{}/api/cart", &stack.cart())));
    assert_problem(anonymous.await, 401, "no token").await;
    let counted = stack
        .counter(
            "http_requests_total",
            &[
                ("service", "cart"),
                ("route", "/api/cart"),
                ("status", "401"),
            ],
        )
        .await;
    assert!(counted >= 1.0, "{counted}");
    let public = send(stack.client.get(format!("{}/metrics", &stack.cart())));
    assert_problem(public.await, 404, "/metrics on the API port").await;
}
