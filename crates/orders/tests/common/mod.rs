//! A stack for orders tests: users, catalog, payments and cart on 127.0.0.1
//! port 0 in one in-process registry, orders instances over one orders
//! database, and a real tonic client.
//!
//! Orders find cart through a counting proxy, in a registry of their own
//! (holding users, catalog, payments and the proxy as `cart`): the proxy
//! forwards every call to the real cart and counts order-removal deliveries
//! per order, and taking it out of the registry makes cart unreachable for
//! orders only.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use shop::StackBuilder;
use shop::stack::{Cart, Catalog, Orders as OrdersService, Payments, Users};
use shop::testing::{TestStack, quick_orders, wait_until};
use shop_api::payments::tokens;
use shop_common::config::DatabaseSettings;
use shop_common::db::Db;
use shop_discovery::{Instance, Registration, Registry};
use shop_proto::orders::v1::order_service_client::OrderServiceClient;
use shop_proto::orders::v1::{Order, OrderStatus, PlaceOrderRequest, PlaceOrderResponse};
use shop_runtime::Running;
use shop_testkit::TestDatabase;
use tonic::transport::Channel;

/// The service credential carts accept and orders present.
pub const SERVICE_TOKEN: &str = "test-service-token";

/// Deliveries the proxy saw on cart's order-removal route.
#[derive(Debug, Default, Clone)]
pub struct Deliveries {
    inner: Arc<Mutex<HashMap<String, Vec<bool>>>>,
    statuses: Arc<Mutex<HashMap<String, Vec<u16>>>>,
}

impl Deliveries {
    /// The `applied` answers cart gave for deliveries of `order`.
    pub fn of(&self, order: &str) -> Vec<bool> {
        self.inner
            .lock()
            .expect("lock")
            .get(order)
            .cloned()
            .unwrap_or_default()
    }

    /// The status cart answered to every delivery of `order`, refused ones
    /// included.
    pub fn statuses(&self, order: &str) -> Vec<u16> {
        self.statuses
            .lock()
            .expect("lock")
            .get(order)
            .cloned()
            .unwrap_or_default()
    }

    fn record_status(&self, order: String, status: u16) {
        self.statuses
            .lock()
            .expect("lock")
            .entry(order)
            .or_default()
            .push(status);
    }

    fn record(&self, order: String, applied: bool) {
        self.inner
            .lock()
            .expect("lock")
            .entry(order)
            .or_default()
            .push(applied);
    }
}

#[derive(Clone)]
struct Proxy {
    target: String,
    client: reqwest::Client,
    deliveries: Deliveries,
}

async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut request = proxy
        .client
        .request(method, format!("{}{path}", proxy.target))
        .body(body.clone());
    for name in [
        "authorization",
        "content-type",
        "accept",
        "x-shop-service-token",
    ] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let Ok(response) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let bytes = response.bytes().await.unwrap_or_default();
    if path.ends_with("/order-removals") {
        let sent: Value = serde_json::from_slice(&body).unwrap_or_default();
        let order = sent["order_id"].as_str().unwrap_or_default().to_owned();
        proxy.deliveries.record_status(order.clone(), status);
        if status == 200 {
            let got: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            proxy
                .deliveries
                .record(order, got["applied"].as_bool().unwrap_or_default());
        }
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [("content-type", content_type)],
        bytes,
    )
        .into_response()
}

/// users + catalog + payments + cart, a cart proxy for orders, and the
/// orders database.
pub struct Stack {
    stack: TestStack,
    pub orders_registry: Registry,
    pub proxy_addr: String,
    proxy_registration: Mutex<Option<Registration>>,
    /// users, catalog and payments as orders find them.
    _registrations: [Registration; 3],
    pub deliveries: Deliveries,
}

impl Deref for Stack {
    type Target = TestStack;

    fn deref(&self) -> &TestStack {
        &self.stack
    }
}

/// Starts users, catalog, payments, cart and the proxy; orders use
/// `orders_db`, with fast relay rounds, saga steps and retries.
pub async fn spawn_stack(orders_db: TestDatabase) -> Stack {
    let engine = orders_db.engine;
    let stack = StackBuilder::for_tests()
        .with::<Users>()
        .with::<Catalog>()
        .with::<Payments>()
        .with::<Cart>()
        .test_database("orders", orders_db)
        .service_token(SERVICE_TOKEN)
        .configure::<OrdersService>(|settings| {
            quick_orders(settings);
            settings.cart.breaker.open_ms = 100;
        })
        .start_test(engine)
        .await;

    let deliveries = Deliveries::default();
    let proxy = Proxy {
        target: stack.cart(),
        client: reqwest::Client::new(),
        deliveries: deliveries.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy binds");
    let proxy_addr = listener.local_addr().expect("addr").to_string();
    let router = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let orders_registry = Registry::in_process();
    let registrations = ["users", "catalog", "payments"].map(|service| {
        let addr = stack
            .addr(service)
            .unwrap_or_else(|| panic!("{service} runs"));
        orders_registry
            .register(Instance::new(
                service,
                format!("{service}-1"),
                addr.to_string(),
            ))
            .unwrap_or_else(|err| panic!("{service} registered for orders: {err}"))
    });
    let proxy_registration = orders_registry
        .register(Instance::new("cart", "cart-proxy", proxy_addr.clone()))
        .expect("proxy registered");

    Stack {
        stack,
        orders_registry,
        proxy_addr,
        proxy_registration: Mutex::new(Some(proxy_registration)),
        _registrations: registrations,
        deliveries,
    }
}

/// A running orders instance and a client connected to it.
pub struct Orders {
    pub running: Running,
    pub client: OrderServiceClient<Channel>,
    pub channel: Channel,
    pub admin: String,
    pub id: String,
}

impl Orders {
    /// Stops the instance and waits until it has stopped.
    pub async fn shutdown(&mut self) {
        self.running
            .stopped()
            .await
            .expect("orders stopped cleanly");
    }

    /// This instance's `/metrics` text (checked to be served).
    pub async fn scrape(&self) -> String {
        shop_testkit::scrape(&reqwest::Client::new(), &self.admin).await
    }

    /// The value of the metric `name` (a counter or gauge) whose labels
    /// include all of `labels`, from this instance's `/metrics`; 0 when the
    /// series is not there.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        shop_testkit::metric_value(&self.scrape().await, name, labels).unwrap_or(0.0)
    }

    /// Places `token`'s cart under the idempotency `key`, paid with the
    /// test card that always succeeds, expecting a new order that is
    /// confirmed by the time the call answers; returns it.
    pub async fn placed(&self, token: &str, key: &str) -> Order {
        let answer = self.place(token, key).await;
        let answer = answer.unwrap_or_else(|status| panic!("placing {key}: {status:?}"));
        assert!(answer.created, "placing {key}: a new order");
        let order = answer.order.expect("order");
        assert_eq!(
            order.status,
            OrderStatus::Confirmed as i32,
            "placing {key}: confirmed before the answer: {order:?}"
        );
        order
    }

    /// Places `token`'s cart under the idempotency `key`, paid with the
    /// test card that always succeeds.
    pub async fn place(&self, token: &str, key: &str) -> Result<PlaceOrderResponse, tonic::Status> {
        self.place_paying(token, key, tokens::SUCCESS).await
    }

    /// Places `token`'s cart under the idempotency `key`, paid with
    /// `payment_token`.
    pub async fn place_paying(
        &self,
        token: &str,
        key: &str,
        payment_token: &str,
    ) -> Result<PlaceOrderResponse, tonic::Status> {
        self.client
            .clone()
            .place_order(authed(place_paying(key, payment_token), token))
            .await
            .map(tonic::Response::into_inner)
    }
}

/// A `PlaceOrder` request with the idempotency `key`, paid with the test
/// card that always succeeds.
pub fn place(key: &str) -> PlaceOrderRequest {
    place_paying(key, tokens::SUCCESS)
}

/// A `PlaceOrder` request with the idempotency `key`, paid with
/// `payment_token`.
pub fn place_paying(key: &str, payment_token: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        idempotency_key: key.to_owned(),
        payment_token: payment_token.to_owned(),
    }
}

impl Stack {
    /// Settings of an orders instance over the stack's orders database,
    /// with its relay on or off.
    pub fn orders_settings(&self, relay: bool) -> shop_orders::Settings {
        let mut settings = self.settings::<OrdersService>(1).expect("orders settings");
        settings.relay.enabled = relay;
        settings
    }

    /// Starts an orders instance over the stack's orders database.
    pub async fn spawn_orders(&self, relay: bool) -> Orders {
        self.spawn_orders_with(self.orders_settings(relay)).await
    }

    /// Starts an orders instance with `settings`, finding cart through the
    /// proxy.
    pub async fn spawn_orders_with(&self, settings: shop_orders::Settings) -> Orders {
        let running = self
            .spawn::<OrdersService>(Some(&self.orders_registry), |own| *own = settings)
            .await
            .expect("orders starts");
        let admin = running.admin_base().expect("orders has an admin listener");
        let channel = Channel::from_shared(running.base())
            .expect("uri")
            .connect()
            .await
            .expect("orders accepts gRPC connections");
        Orders {
            id: running.name().to_owned(),
            running,
            client: OrderServiceClient::new(channel.clone()),
            channel,
            admin,
        }
    }

    /// Takes the cart proxy out of the orders' registry: cart is unreachable
    /// for orders.
    pub fn cart_down(&self) {
        self.proxy_registration.lock().expect("lock").take();
    }

    /// Puts the cart proxy back.
    pub fn cart_up(&self) {
        let registration = self
            .orders_registry
            .register(Instance::new("cart", "cart-proxy", self.proxy_addr.clone()))
            .expect("proxy registered");
        *self.proxy_registration.lock().expect("lock") = Some(registration);
    }

    /// Sets the quantity of `product` in the caller's cart.
    pub async fn put_item(&self, token: &str, product: &str, quantity: i64) {
        let body = json!({"quantity": quantity});
        let response = self
            .stack
            .put_item(&self.cart(), token, product, body)
            .await;
        assert!(
            response.status().is_success(),
            "put item: {}",
            response.status()
        );
    }

    /// The caller's cart as JSON.
    pub async fn cart_json(&self, token: &str) -> Value {
        self.stack.cart_json(&self.cart(), token).await
    }

    /// (product, quantity) of the caller's cart, sorted.
    pub async fn cart_lines(&self, token: &str) -> Vec<(String, i64)> {
        let mut lines = shop::testing::lines(&self.cart_json(token).await);
        lines.sort();
        lines
    }

    /// Registers `username` and puts `quantities[i]` of the catalog's i-th
    /// product in their cart; returns the token and every product id.
    pub async fn shopper_with(&self, username: &str, quantities: &[i64]) -> (String, Vec<String>) {
        let token = self.token(username).await;
        let products = self.product_ids().await;
        for (product, &quantity) in products.iter().zip(quantities) {
            self.put_item(&token, product, quantity).await;
        }
        (token, products)
    }

    /// Waits (bounded) until the caller's cart has `want` lines; the
    /// failure shows the lines last read.
    pub async fn wait_for_cart(&self, token: &str, want: &[(String, i64)]) {
        let mut want = want.to_vec();
        want.sort();
        let what = format!("{}: the cart to be {want:?}", self.engine);
        wait_until(&what, || self.cart_lines(token), |lines| *lines == want).await;
    }

    /// Asserts that cart answered each of `orders`' deliveries once, and
    /// applied it.
    pub fn assert_delivered_once<'a>(&self, orders: impl IntoIterator<Item = &'a String>) {
        for id in orders {
            assert_eq!(
                self.deliveries.of(id),
                [true],
                "{}: order {id} delivered exactly once",
                self.engine
            );
        }
    }

    /// A connection to the orders database.
    pub async fn orders_db(&self) -> Db {
        Db::connect(&DatabaseSettings::new(self.db_url("orders")))
            .await
            .expect("orders database")
    }

    /// Waits (bounded) until order `order_id`'s outbox row is marked
    /// delivered and its claim released.
    pub async fn wait_marked(&self, db: &Db, order_id: &str) {
        let marked = "SELECT COUNT(*) AS n FROM outbox WHERE order_id = $1 AND delivered_at IS NOT NULL AND claimed_by IS NULL";
        self.wait_count("the delivery to be marked", db, (marked, order_id), 1)
            .await;
    }

    /// Waits (bounded) until `count` of `query` (sql, arg) is `want`; the
    /// failure shows the count last read.
    pub async fn wait_count(&self, what: &str, db: &Db, query: (&str, &str), want: i64) {
        let (sql, arg) = query;
        let what = format!("{}: {what}", self.engine);
        wait_until(&what, || count(db, sql, arg), |n| *n == want).await;
    }

    /// Waits (bounded) until `predicate` holds.
    pub async fn eventually<F, Fut>(&self, what: &str, predicate: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        shop::testing::eventually(&format!("{}: {what}", self.engine), predicate).await;
    }
}

/// Asserts that `answer` is an error with `code` (`what` names the case)
/// and returns it.
pub fn refused<T>(
    answer: Result<T, tonic::Status>,
    code: tonic::Code,
    what: &str,
) -> tonic::Status {
    match answer {
        Ok(_) => panic!("{what}: answered, not refused with {code:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            status
        }
    }
}

/// A request carrying `token` as a bearer token.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata value"),
    );
    request
}

/// A one-line order of a new user placed `age` ago, pending at its first
/// saga step and leased for five minutes (no recovery worker takes it
/// meanwhile), to insert through the store; confirm it with [`confirm`] to
/// give it its outbox row.
pub fn old_order(key: &str, age: chrono::Duration) -> shop_orders::store::NewOrder {
    use shop_orders::domain::{IdempotencyKey, Order, OrderId, OrderLine, OrderStatus};
    let at = shop_common::db::timestamp_text(chrono::Utc::now() - age);
    let line = OrderLine {
        product_id: uuid::Uuid::now_v7(),
        name: "a product".to_owned(),
        unit_price_cents: 100,
        quantity: 1,
        line_total_cents: 100,
    };
    shop_orders::store::NewOrder {
        order: Order {
            id: OrderId::new(),
            user_id: uuid::Uuid::now_v7().into(),
            status: OrderStatus::Pending,
            rejection: None,
            total_cents: 100,
            lines: vec![line],
            currency: "EUR".to_owned(),
            created_at: at.clone(),
            updated_at: at,
        },
        key: IdempotencyKey::parse(key).expect("key"),
        payment_token: tokens::SUCCESS.to_owned(),
        cart_version: 1,
        lease_until: shop_common::db::timestamp_text(
            chrono::Utc::now() + chrono::Duration::minutes(5),
        ),
    }
}

/// Confirms the pending order `new` (inserted, at its first step) as its
/// saga would — authorized, reserved, captured — writing its cart removal
/// (unclaimed) with the confirmation; returns that outbox row's id.
pub async fn confirm(
    store: &shop_orders::store::OrderStore,
    new: &shop_orders::store::NewOrder,
) -> String {
    use shop_orders::machine::{Outcome, SagaState};
    use shop_orders::store::NewOutbox;
    let placed = SagaState::placed();
    let confirmed = [Outcome::Authorized, Outcome::Reserved, Outcome::Captured]
        .into_iter()
        .try_fold(placed.clone(), |state, outcome| state.advance(outcome))
        .expect("authorized, reserved and captured");
    assert_eq!(
        confirmed.status,
        shop_orders::domain::OrderStatus::Confirmed
    );
    let outbox = NewOutbox {
        id: uuid::Uuid::now_v7().to_string(),
        payload: "{}".to_owned(),
        claim: None,
    };
    let now = shop_common::db::now_text();
    let moved = store
        .advance(
            new.order.id,
            &placed,
            &confirmed,
            &now,
            Some((&outbox, &new.order)),
            &now,
        )
        .await
        .expect("confirmed");
    assert!(moved, "order {} was at its first step", new.order.id);
    outbox.id
}

/// Counts rows of `sql` (a `SELECT COUNT(*) AS n ...` with `$1` = `arg`).
pub async fn count(db: &Db, sql: &str, arg: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql)
        .bind(arg)
        .fetch_one(db.pool())
        .await
        .expect("count")
        .try_get::<i64, _>("n")
        .expect("n")
}
