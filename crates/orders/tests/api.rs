//! The orders API's edges: authorization, bad input, cancellation, paging,
//! `grpc.health.v1` and server reflection — on SQLite and PostgreSQL.

mod common;

use common::{authed, place, spawn_stack};
use futures::StreamExt;
use shop_proto::orders::v1::{CancelOrderRequest, GetOrderRequest, ListOrdersRequest, OrderStatus};
use tonic::Code;

fn get(id: &str) -> GetOrderRequest {
    GetOrderRequest {
        order_id: id.to_owned(),
    }
}

fn cancel(id: &str) -> CancelOrderRequest {
    CancelOrderRequest {
        order_id: id.to_owned(),
    }
}

fn list(size: i32, token: &str) -> ListOrdersRequest {
    ListOrdersRequest {
        page_size: size,
        page_token: token.to_owned(),
    }
}

#[tokio::test]
async fn orders_are_private_inputs_are_checked_and_cancel_is_once() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let orders = stack.spawn_orders(true).await;
        let mut client = orders.client.clone();
        let alice = stack.token("alice").await;
        let bob = stack.token("bob").await;
        let products = stack.product_ids().await;

        // Empty cart.
        let status = client
            .place_order(authed(place("k0"), &alice))
            .await
            .expect_err("empty cart");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(status.message(), "the cart is empty");

        // Three orders, for paging.
        let mut ids = Vec::new();
        for (i, key) in ["k1", "k2", "k3"].into_iter().enumerate() {
            stack.put_item(&alice, &products[i], 1).await;
            let order = client
                .place_order(authed(place(key), &alice))
                .await
                .expect("placed")
                .into_inner()
                .order
                .expect("order");
            assert_eq!(order.status, OrderStatus::Placed as i32);
            assert!(order.created_at.is_some());
            ids.push(order.id);
            stack.wait_for_cart(&alice, &[]).await;
        }

        // Newest first, two pages.
        let page = client
            .list_orders(authed(list(2, ""), &alice))
            .await
            .expect("page 1")
            .into_inner();
        let first: Vec<&str> = page.orders.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            first,
            [ids[2].as_str(), ids[1].as_str()],
            "{}",
            stack.engine
        );
        assert!(!page.next_page_token.is_empty());
        let page = client
            .list_orders(authed(list(2, &page.next_page_token), &alice))
            .await
            .expect("page 2")
            .into_inner();
        let second: Vec<&str> = page.orders.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(second, [ids[0].as_str()]);
        assert!(page.next_page_token.is_empty());

        // Another user sees none of it.
        let status = client
            .get_order(authed(get(&ids[0]), &bob))
            .await
            .expect_err("not bob's");
        assert_eq!(status.code(), Code::NotFound);
        let status = client
            .cancel_order(authed(cancel(&ids[0]), &bob))
            .await
            .expect_err("not bob's");
        assert_eq!(status.code(), Code::NotFound);
        let bobs = client
            .list_orders(authed(list(0, ""), &bob))
            .await
            .expect("list")
            .into_inner();
        assert!(bobs.orders.is_empty());
        // Bob using Alice's key places nothing of hers.
        let status = client
            .place_order(authed(place("k1"), &bob))
            .await
            .expect_err("bob's cart is empty");
        assert_eq!(status.code(), Code::FailedPrecondition);

        // The owner reads and cancels; a second cancel fails.
        let order = client
            .get_order(authed(get(&ids[0]), &alice))
            .await
            .expect("own order")
            .into_inner();
        assert_eq!(order.id, ids[0]);
        let cancelled = client
            .cancel_order(authed(cancel(&ids[0]), &alice))
            .await
            .expect("cancelled")
            .into_inner();
        assert_eq!(cancelled.status, OrderStatus::Cancelled as i32);
        let status = client
            .cancel_order(authed(cancel(&ids[0]), &alice))
            .await
            .expect_err("twice");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(
            status.message(),
            "the order is cancelled and cannot be cancelled"
        );

        // Bad input.
        for (key, what) in [
            (String::new(), "empty key"),
            ("k".repeat(129), "overlong key"),
            ("tab\tkey".to_owned(), "unprintable key"),
        ] {
            let status = client
                .place_order(authed(place(&key), &alice))
                .await
                .expect_err(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{what}");
            assert!(status.message().contains("idempotency_key"), "{what}");
        }
        let status = client
            .get_order(authed(get("not-a-uuid"), &alice))
            .await
            .expect_err("malformed id");
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .cancel_order(authed(cancel("42"), &alice))
            .await
            .expect_err("malformed id");
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .list_orders(authed(list(0, "garbage"), &alice))
            .await
            .expect_err("bad page token");
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .list_orders(authed(list(101, ""), &alice))
            .await
            .expect_err("page too big");
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .get_order(authed(get(&uuid::Uuid::now_v7().to_string()), &alice))
            .await
            .expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound);

        // No token, a bad token, a tampered token.
        let status = client
            .list_orders(tonic::Request::new(list(0, "")))
            .await
            .expect_err("no token");
        assert_eq!(status.code(), Code::Unauthenticated);
        let status = client
            .place_order(authed(place("k9"), "not.a.jwt"))
            .await
            .expect_err("bad token");
        assert_eq!(status.code(), Code::Unauthenticated);
        let mut tampered = alice.clone();
        tampered.pop();
        tampered.push(if alice.ends_with('A') { 'B' } else { 'A' });
        let status = client
            .get_order(authed(get(&ids[1]), &tampered))
            .await
            .expect_err("tampered token");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

#[tokio::test]
async fn health_reflection_and_admin_endpoints_answer() {
    for db in shop_testkit::databases().await {
        let stack = spawn_stack(db).await;
        let orders = stack.spawn_orders(false).await;

        let mut health = tonic_health::pb::health_client::HealthClient::new(orders.channel.clone());
        for service in ["", "ferroshop.orders.v1.OrderService"] {
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .expect("health check")
                .into_inner();
            assert_eq!(
                answer.status,
                tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
                "{service:?}"
            );
        }

        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut reflection = ServerReflectionClient::new(orders.channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = reflection
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .expect("reflection")
            .into_inner();
        let answer = answers.next().await.expect("an answer").expect("ok");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("unexpected reflection answer");
        };
        let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names.contains(&"ferroshop.orders.v1.OrderService"),
            "{names:?}"
        );
        assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

        for path in ["/healthz", "/readyz", "/metrics"] {
            let response = stack
                .client
                .get(format!("{}{path}", orders.admin))
                .send()
                .await
                .expect("admin");
            assert_eq!(response.status(), 200, "{path}");
        }
        // Registered in discovery as a gRPC instance.
        let instances = stack.orders_registry.watch("orders").borrow().clone();
        assert_eq!(instances.len(), 1);
        assert_eq!(instances[0].scheme, shop_discovery::Scheme::Grpc);
    }
}

#[tokio::test]
async fn oversized_messages_are_refused_and_reflection_can_be_turned_off() {
    let db = shop_testkit::TestDatabase::sqlite();
    let stack = spawn_stack(db).await;
    let mut settings = stack.orders_settings(false);
    settings.grpc.max_message_bytes = 1024;
    settings.grpc.reflection = false;
    let orders = stack.spawn_orders_with(settings).await;
    let alice = stack.token("alice").await;

    let huge_key = "k".repeat(4096);
    let status = orders
        .place(&alice, &huge_key)
        .await
        .expect_err("a 4 KiB message over a 1 KiB limit");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // The instance still serves normal calls.
    let status = orders
        .client
        .clone()
        .get_order(authed(get("0193f2a4-0000-7000-8000-000000000000"), &alice))
        .await
        .expect_err("no such order");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let mut reflection = ServerReflectionClient::new(orders.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let status = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect_err("reflection is off");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}
