//! The orders API's edges: authorization, bad input (payment tokens
//! included), cancellation, paging, `grpc.health.v1` and server reflection
//! — on SQLite and PostgreSQL.

#![allow(clippy::expect_used)] // test helpers: a failed call should fail the test

mod common;

use common::{authed, place, place_paying, refused, spawn_stack};
use futures::StreamExt;
use shop_api::payments::tokens;
use shop_proto::orders::v1::order_service_client::OrderServiceClient;
use shop_proto::orders::v1::{
    CancelOrderRequest, GetOrderRequest, ListOrdersRequest, Order, OrderStatus, PlaceOrderRequest,
};
use tonic::Code::{self, FailedPrecondition, InvalidArgument, NotFound, Unauthenticated};
use tonic::transport::Channel;

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

/// One call of the orders API, for tables of refused calls.
enum Call {
    Place(PlaceOrderRequest),
    Get(GetOrderRequest),
    Cancel(CancelOrderRequest),
    List(ListOrdersRequest),
}

impl Call {
    /// Sends the call as `token` (none: without one); the answer, read or
    /// not.
    async fn send(
        self,
        client: &OrderServiceClient<Channel>,
        token: Option<&str>,
    ) -> Result<(), tonic::Status> {
        fn request<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
            match token {
                Some(token) => authed(message, token),
                None => tonic::Request::new(message),
            }
        }
        let mut client = client.clone();
        match self {
            Self::Place(call) => client.place_order(request(call, token)).await.map(drop),
            Self::Get(call) => client.get_order(request(call, token)).await.map(drop),
            Self::Cancel(call) => client.cancel_order(request(call, token)).await.map(drop),
            Self::List(call) => client.list_orders(request(call, token)).await.map(drop),
        }
    }
}

impl Call {
    fn place(key: &str) -> Self {
        Self::Place(place(key))
    }

    fn place_paying(key: &str, payment_token: &str) -> Self {
        Self::Place(place_paying(key, payment_token))
    }

    fn get(id: &str) -> Self {
        Self::Get(get(id))
    }

    fn cancel(id: &str) -> Self {
        Self::Cancel(cancel(id))
    }

    fn list(size: i32, page: &str) -> Self {
        Self::List(list(size, page))
    }
}

/// Asserts that each call, as `token`, is refused with its code; the last
/// field names the case.
async fn assert_refused<const N: usize>(
    client: &OrderServiceClient<Channel>,
    token: Option<&str>,
    cases: [(Call, Code, &str); N],
) {
    for (call, code, what) in cases {
        refused(call.send(client, token).await, code, what);
    }
}

/// Cancels `id` as `token`: the answer is the order cancelled, or still
/// cancelling (its refund and release under way), which then settles as
/// cancelled; returns the cancelled order.
async fn cancel_settled(client: &OrderServiceClient<Channel>, token: &str, id: &str) -> Order {
    let answer = client
        .clone()
        .cancel_order(authed(cancel(id), token))
        .await
        .expect("cancelled")
        .into_inner();
    assert_eq!(answer.id, id);
    assert!(
        [OrderStatus::Cancelling, OrderStatus::Cancelled].contains(&answer.status()),
        "cancel answers the order cancelling or cancelled: {answer:?}"
    );
    shop::testing::wait_until(
        "the cancellation to settle",
        || async {
            client
                .clone()
                .get_order(authed(get(id), token))
                .await
                .expect("own order")
                .into_inner()
        },
        |order| order.status() == OrderStatus::Cancelled,
    )
    .await
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
        let empty = Call::place("k0").send(&client, Some(&alice)).await;
        let status = refused(empty, FailedPrecondition, "empty cart");
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
            assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
            assert!(order.rejection.is_none());
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

        // Another user sees none of it; Bob using Alice's key places
        // nothing of hers.
        let bobs = client
            .list_orders(authed(list(0, ""), &bob))
            .await
            .expect("list")
            .into_inner();
        assert!(bobs.orders.is_empty());
        let cases = [
            (Call::get(&ids[0]), NotFound, "not bob's"),
            (Call::cancel(&ids[0]), NotFound, "not bob's"),
            (Call::place("k1"), FailedPrecondition, "bob's empty cart"),
        ];
        assert_refused(&client, Some(&bob), cases).await;

        // The owner reads and cancels; a second cancel answers the
        // cancelled order as it is, changing nothing.
        let order = client
            .get_order(authed(get(&ids[0]), &alice))
            .await
            .expect("own order")
            .into_inner();
        assert_eq!(order.id, ids[0]);
        assert_eq!(order.status(), OrderStatus::Confirmed);
        let cancelled = cancel_settled(&client, &alice, &ids[0]).await;
        assert_eq!(cancelled.lines, order.lines, "{}", stack.engine);
        let twice = client
            .cancel_order(authed(cancel(&ids[0]), &alice))
            .await
            .expect("a repeated cancel answers the order")
            .into_inner();
        assert_eq!(
            twice, cancelled,
            "{}: a repeat changes nothing",
            stack.engine
        );

        // Only a confirmed order can be cancelled: a declined one cannot.
        stack.put_item(&alice, &products[0], 1).await;
        let declined = client
            .place_order(authed(place_paying("k4", tokens::DECLINED), &alice))
            .await
            .expect("answered")
            .into_inner()
            .order
            .expect("order");
        assert_eq!(declined.status(), OrderStatus::Rejected, "{declined:?}");
        let reason = declined.rejection.as_ref().map(|r| r.reason.as_str());
        assert_eq!(reason, Some("payment_declined"), "{declined:?}");
        let refused_cancel = Call::cancel(&declined.id).send(&client, Some(&alice)).await;
        let status = refused(refused_cancel, FailedPrecondition, "a rejected order");
        assert_eq!(
            status.message(),
            "the order is rejected and cannot be cancelled"
        );

        // Bad input; no token, a bad token, a tampered token.
        for (key, what) in [
            (String::new(), "empty key"),
            ("k".repeat(129), "overlong key"),
            ("tab\tkey".to_owned(), "unprintable key"),
        ] {
            let answer = Call::place(&key).send(&client, Some(&alice)).await;
            let status = refused(answer, InvalidArgument, what);
            assert!(status.message().contains("idempotency_key"), "{what}");
        }
        // A payment token is required, and a card number never passes for
        // one (refused before the cart is read: Alice's is not empty).
        for (payment_token, what) in [
            ("", "no payment token"),
            ("4242424242424242", "a card number"),
            ("tok_4242424242424242", "a card number as a token"),
            ("tok_Visa", "not a token"),
        ] {
            let answer = Call::place_paying("k5", payment_token)
                .send(&client, Some(&alice))
                .await;
            let status = refused(answer, InvalidArgument, what);
            assert!(status.message().contains("payment_token"), "{what}");
            assert!(!status.message().contains("4242"), "{what}: not echoed");
        }
        let mut tampered = alice.clone();
        tampered.pop();
        tampered.push(if alice.ends_with('A') { 'B' } else { 'A' });
        let unknown = uuid::Uuid::now_v7().to_string();
        let cases = [
            (Call::get("not-a-uuid"), InvalidArgument, "malformed id"),
            (Call::cancel("42"), InvalidArgument, "malformed id"),
            (Call::list(0, "garbage"), InvalidArgument, "bad page token"),
            (Call::list(101, ""), InvalidArgument, "page too big"),
            (Call::get(&unknown), NotFound, "unknown"),
        ];
        assert_refused(&client, Some(&alice), cases).await;
        let tampered = Some(tampered.as_str());
        for (call, token, what) in [
            (Call::list(0, ""), None, "no token"),
            (Call::place("k9"), Some("not.a.jwt"), "bad token"),
            (Call::get(&ids[1]), tampered, "tampered token"),
        ] {
            refused(call.send(&client, token).await, Unauthenticated, what);
        }
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
    let huge = orders.place(&alice, &huge_key).await;
    refused(huge, Code::OutOfRange, "a 4 KiB message over a 1 KiB limit");
    // The instance still serves normal calls.
    let unknown = Call::get("0193f2a4-0000-7000-8000-000000000000");
    let answer = unknown.send(&orders.client, Some(&alice)).await;
    refused(answer, Code::NotFound, "no such order");

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let mut reflection = ServerReflectionClient::new(orders.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let answer = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await;
    refused(answer, Code::Unimplemented, "reflection is off");
}
