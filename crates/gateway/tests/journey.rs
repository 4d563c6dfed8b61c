//! The whole shopping journey through the gateway only — register, log in,
//! browse, fill the cart, order (twice with one key), list, get, cancel —
//! against the real services, on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{WAIT, assert_problem, spawn_stack};
use serde_json::{Value, json};

#[tokio::test]
async fn a_customer_shops_through_the_gateway_only() {
    for db in shop_testkit::databases().await {
        let engine = db.engine;
        drop(db);
        let stack = spawn_stack(engine, 1).await;
        stack.wait_ready().await;
        let client = &stack.client;
        let token = stack.token("alice").await;

        let me: Value = client
            .get(stack.url("/api/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("me")
            .json()
            .await
            .expect("json");
        assert_eq!(me["username"], "alice", "{engine}");

        let page: Value = client
            .get(stack.url("/api/products?limit=3"))
            .send()
            .await
            .expect("products")
            .json()
            .await
            .expect("json");
        let products = page["items"].as_array().expect("items").clone();
        assert_eq!(products.len(), 3, "{engine}");
        let id = |i: usize| products[i]["id"].as_str().expect("id").to_owned();
        let one = client
            .get(stack.url(&format!("/api/products/{}", id(0))))
            .send()
            .await
            .expect("product");
        assert_eq!(one.status(), 200);

        for (i, quantity) in [(0, 2), (1, 1)] {
            let response = client
                .put(stack.url(&format!("/api/cart/items/{}", id(i))))
                .bearer_auth(&token)
                .json(&json!({"quantity": quantity}))
                .send()
                .await
                .expect("put");
            assert_eq!(response.status(), 200, "{engine}");
        }
        let cart: Value = stack.cart_json(&stack.base("gateway"), &token).await;
        assert_eq!(cart["items"].as_array().expect("items").len(), 2);

        // Placing without a key is refused before orders sees it.
        assert_problem(
            client
                .post(stack.url("/api/orders"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent"),
            400,
            "no idempotency key",
        )
        .await;

        let place = || {
            client
                .post(stack.url("/api/orders"))
                .bearer_auth(&token)
                .header("idempotency-key", "journey-1")
                .send()
        };
        let first = place().await.expect("place");
        assert_eq!(first.status(), 201, "{engine}");
        let location = first.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let first: Value = first.json().await.expect("json");
        let again = place().await.expect("place again");
        assert_eq!(again.status(), 200, "{engine}: a repeat is not a new order");
        let again: Value = again.json().await.expect("json");
        assert_eq!(first, again, "{engine}: same key, same order");
        let order_id = first["id"].as_str().expect("id").to_owned();
        assert_eq!(location, format!("/api/orders/{order_id}"));
        assert_eq!(first["status"], "placed");
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
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let cart: Value = stack.cart_json(&stack.base("gateway"), &token).await;
            if cart["items"].as_array().is_some_and(Vec::is_empty) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{engine}: cart never emptied: {cart}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let list: Value = client
            .get(stack.url("/api/orders?limit=10"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let items = list["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{engine}: one order, never two");
        assert_eq!(items[0]["id"], order_id.as_str());
        assert!(list["next_cursor"].is_null());
        assert_problem(
            client
                .get(stack.url("/api/orders?limit=1000"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent"),
            422,
            "limit out of range",
        )
        .await;

        let got: Value = client
            .get(stack.url(&location))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(got, first);

        // Another user cannot see it.
        let bob = stack.token("bob").await;
        assert_problem(
            client
                .get(stack.url(&location))
                .bearer_auth(&bob)
                .send()
                .await
                .expect("sent"),
            404,
            "another user's order",
        )
        .await;

        let cancel = || {
            client
                .post(stack.url(&format!("/api/orders/{order_id}/cancel")))
                .bearer_auth(&token)
                .send()
        };
        let cancelled = cancel().await.expect("cancel");
        assert_eq!(cancelled.status(), 200, "{engine}");
        let cancelled: Value = cancelled.json().await.expect("json");
        assert_eq!(cancelled["status"], "cancelled");
        assert_problem(cancel().await.expect("sent"), 409, "cancel again").await;

        // An empty cart cannot be ordered.
        assert_problem(
            client
                .post(stack.url("/api/orders"))
                .bearer_auth(&token)
                .header("idempotency-key", "journey-2")
                .send()
                .await
                .expect("sent"),
            409,
            "empty cart",
        )
        .await;
    }
}
