//! The whole shopping journey through the gateway only — register, log in,
//! browse, fill the cart, check out paying with a test token (twice with
//! one key), list, get, cancel (twice) — against the real services, on
//! SQLite and on PostgreSQL.

mod common;

use common::{assert_problem, spawn_stack};
use serde_json::{Value, json};
use shop::testing::{Shopper, ids};
use shop_testkit::send;

/// `POST /api/orders` as `shopper` under `key` with `body` as it is.
async fn place_with(shopper: &Shopper, key: &str, body: &Value) -> reqwest::Response {
    let request = shopper.client.post(shopper.url("/api/orders"));
    send(
        request
            .bearer_auth(&shopper.token)
            .header("idempotency-key", key)
            .json(body),
    )
    .await
}

#[tokio::test]
async fn a_customer_shops_through_the_gateway_only() {
    for db in shop_testkit::databases().await {
        let engine = db.engine;
        drop(db);
        let stack = spawn_stack(engine, 1).await;
        stack.wait_ready().await;
        let alice = stack.shopper("alice").await;

        let me = alice.get_json("/api/users/me").await;
        assert_eq!(me["username"], "alice", "{engine}");

        let page = send(stack.client.get(stack.url("/api/products?limit=3"))).await;
        let page: Value = page.json().await.expect("json");
        let products = ids(page["items"].as_array().expect("items"));
        assert_eq!(products.len(), 3, "{engine}");
        let one = send(
            stack
                .client
                .get(stack.url(&format!("/api/products/{}", products[0]))),
        );
        assert_eq!(one.await.status(), 200);

        alice.put_item(&products[0], 2).await;
        alice.put_item(&products[1], 1).await;
        let cart = alice.cart().await;
        assert_eq!(cart["items"].as_array().expect("items").len(), 2);

        // Placing without a key is refused before orders sees it.
        let keyless = alice.post("/api/orders").await;
        assert_problem(keyless, 400, "no idempotency key").await;
        // So is placing without a payment token, by name; a card number is
        // never taken for one. Neither places anything.
        let tokenless = place_with(&alice, "journey-0", &json!({})).await;
        let problem = assert_problem(tokenless, 422, "no payment token").await;
        assert!(
            problem["errors"]["payment_token"].is_string(),
            "{engine}: {problem}"
        );
        let card = json!({"payment_token": "4242424242424242"});
        let card = place_with(&alice, "journey-0", &card).await;
        let problem = assert_problem(card, 422, "a card number").await;
        assert!(
            problem["errors"]["payment_token"].is_string(),
            "{engine}: {problem}"
        );
        assert!(
            !problem.to_string().contains("4242"),
            "{engine}: not echoed: {problem}"
        );

        let first = alice.place("journey-1").await;
        assert_eq!(first.status(), 201, "{engine}");
        let location = first.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let first: Value = first.json().await.expect("json");
        let again = alice.place("journey-1").await;
        assert_eq!(again.status(), 200, "{engine}: a repeat is not a new order");
        let again: Value = again.json().await.expect("json");
        assert_eq!(first, again, "{engine}: same key, same order");
        let order_id = first["id"].as_str().expect("id").to_owned();
        assert_eq!(location, format!("/api/orders/{order_id}"));
        assert_eq!(first["status"], "confirmed", "{engine}: {first}");
        assert!(first.get("rejection").is_none_or(Value::is_null), "{first}");
        assert_eq!(first["lines"].as_array().expect("lines").len(), 2);
        assert_eq!(
            first["total_cents"], cart["total_cents"],
            "{engine}: priced as the cart"
        );
        for field in ["created_at", "updated_at"] {
            let at = first[field].as_str().expect(field);
            assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
        }

        // The relay empties the cart asynchronously.
        alice
            .wait_for_empty_cart(&format!("{engine}: the relay to empty the cart"))
            .await;

        let list = alice.get_json("/api/orders?limit=10").await;
        let items = list["items"].as_array().expect("items");
        assert_eq!(
            items.len(),
            1,
            "{engine}: one order, never two (and none of the refused ones)"
        );
        assert_eq!(items[0]["id"], order_id.as_str());
        assert!(list["next_cursor"].is_null());
        let too_many = alice.get("/api/orders?limit=1000").await;
        assert_problem(too_many, 422, "limit out of range").await;

        assert_eq!(alice.get_json(&location).await, first);

        // Another user cannot see it.
        let bob = stack.shopper("bob").await;
        assert_problem(bob.get(&location).await, 404, "another user's order").await;

        // Cancelling refunds and restocks before it answers (or answers
        // cancelling, and the order then settles cancelled); a second
        // cancel answers the cancelled order as it is.
        let cancel = format!("/api/orders/{order_id}/cancel");
        let cancelling = alice.post(&cancel).await;
        assert_eq!(cancelling.status(), 200, "{engine}");
        let cancelling: Value = cancelling.json().await.expect("json");
        assert_eq!(cancelling["id"], order_id.as_str());
        assert!(
            ["cancelling", "cancelled"].contains(&cancelling["status"].as_str().unwrap_or("")),
            "{engine}: {cancelling}"
        );
        let cancelled = shop::testing::wait_until(
            &format!("{engine}: the cancellation to settle"),
            || alice.get_json(&location),
            |order| order["status"] == "cancelled",
        )
        .await;
        assert_eq!(cancelled["lines"], first["lines"]);
        let again = alice.post(&cancel).await;
        assert_eq!(again.status(), 200, "{engine}: a repeated cancel");
        let again: Value = again.json().await.expect("json");
        assert_eq!(again, cancelled, "{engine}: a repeat changes nothing");

        // An empty cart cannot be ordered.
        assert_problem(alice.place("journey-2").await, 409, "empty cart").await;
    }
}
