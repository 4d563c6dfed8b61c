//! The checkout saga across real services: users, catalog, payments and
//! cart from the stack, orders started by the test, on SQLite and
//! PostgreSQL.
//!
//! - 100 buyers race for a product with 10 in stock: exactly 10 orders are
//!   confirmed, stock ends at 0, the other 90 are rejected `out_of_stock`
//!   and every one of their payments is voided.
//! - Crash points: at every step of the saga (authorize, reserve, capture;
//!   void and release when compensating; refund and release when
//!   cancelling) the test holds the step's call at a proxy in front of the
//!   participant, then either kills orders (the call then goes through, and
//!   its answer is lost) or stops the participant (the call fails), starts
//!   it again and lets the saga resume. After each, the invariants hold: no
//!   order confirmed without a captured payment and reserved stock; no
//!   captured payment on a rejected or cancelled order that is not
//!   refunded; stock = initial − confirmed quantities.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shop::StackBuilder;
use shop::stack::{Cart, Catalog, Payments, Users};
use shop::testing::{TestStack, eventually, quick_orders};
use shop_api::payments::tokens;
use shop_discovery::{Instance, Registration, Registry};
use shop_orders::Orders as OrdersService;
use shop_proto::orders::v1::order_service_client::OrderServiceClient;
use shop_proto::orders::v1::{self as pb, CancelOrderRequest, GetOrderRequest, PlaceOrderRequest};
use shop_runtime::Running;
use shop_testkit::Engine;
use tokio::sync::watch;
use tonic::transport::Channel;

/// Units of the product the crash scenarios buy from.
const PLENTY: i64 = 1_000;
/// How long the provider takes for `tok_slow` here.
const SLOW_MS: u64 = 1_000;

/// Holds every call of one kind until the gate opens; `held` counts them.
#[derive(Clone)]
struct Hold {
    gate: watch::Receiver<bool>,
    held: Arc<Mutex<usize>>,
}

/// A proxy in front of one participant that can hold one kind of call
/// (a saga step) and that follows the participant when it restarts.
#[derive(Clone)]
struct Proxy {
    target: Arc<Mutex<String>>,
    holds: Arc<Mutex<HashMap<&'static str, Hold>>>,
    client: reqwest::Client,
}

/// The saga step a participant call is, by method and path.
fn step_of(method: &http::Method, path: &str) -> Option<&'static str> {
    let put = method == http::Method::PUT;
    if path.starts_with("/internal/payments/") {
        return Some(match path.rsplit('/').next() {
            Some("capture") => "capture",
            Some("void") => "void",
            Some("refund") => "refund",
            _ if put => "authorize",
            _ => return None,
        });
    }
    if path.starts_with("/internal/reservations/") {
        return Some(if path.ends_with("/release") {
            "release"
        } else {
            "reserve"
        });
    }
    None
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let step = step_of(&parts.method, parts.uri.path());
    let hold = step.and_then(|step| proxy.holds.lock().unwrap().get(step).cloned());
    if let Some(Hold { mut gate, held }) = hold {
        *held.lock().unwrap() += 1;
        let _ = gate.wait_for(|open| *open).await;
    }
    let target = proxy.target.lock().unwrap().clone();
    let url = format!(
        "{target}{}",
        parts.uri.path_and_query().map_or("", |pq| pq.as_str())
    );
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut outbound = proxy.client.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            outbound = outbound.header(name, value);
        }
    }
    match outbound.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        // The participant is down: what a caller sees of a stopped service.
        Err(_) => http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

impl Proxy {
    async fn start(target: String) -> (Self, String) {
        let proxy = Self {
            target: Arc::new(Mutex::new(target)),
            holds: Arc::default(),
            client: reqwest::Client::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let addr = listener.local_addr().expect("addr").to_string();
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (proxy, addr)
    }

    /// Holds calls of `step` from now on; returns the gate and the count.
    fn hold(&self, step: &'static str) -> (watch::Sender<bool>, Arc<Mutex<usize>>) {
        let (open, gate) = watch::channel(false);
        let held = Arc::new(Mutex::new(0));
        self.holds.lock().unwrap().insert(
            step,
            Hold {
                gate,
                held: held.clone(),
            },
        );
        (open, held)
    }

    /// Stops holding `step` (calls already held are let go by their gate).
    fn pass(&self, step: &'static str) {
        self.holds.lock().unwrap().remove(step);
    }
}

/// The services, the proxies orders reaches catalog and payments through,
/// and the orders instance under test.
struct Checkout {
    stack: TestStack,
    registry: Registry,
    catalog: Proxy,
    payments: Proxy,
    /// Restarted participants (the stack's own were stopped).
    restarted: Vec<Running>,
    _registrations: Vec<Registration>,
    orders: Option<Running>,
    client: reqwest::Client,
}

impl Checkout {
    async fn start(engine: Engine) -> Self {
        let stack = StackBuilder::for_tests()
            .on(engine)
            .await
            .with::<Users>()
            .with::<Catalog>()
            .with::<Payments>()
            .with::<Cart>()
            // Slow enough to outlast an answer, well within a call's
            // deadline (quick_orders gives payments 2 s).
            .configure::<Payments>(|settings| settings.provider.slow_ms = SLOW_MS)
            .start_test(engine)
            .await;
        let (catalog, catalog_addr) = Proxy::start(stack.base("catalog")).await;
        let (payments, payments_addr) = Proxy::start(stack.base("payments")).await;
        let registry = Registry::in_process();
        let mut registrations = Vec::new();
        for (service, id, addr) in [
            (
                "users",
                "users-1",
                stack.addr("users").expect("users").to_string(),
            ),
            (
                "cart",
                "cart-1",
                stack.addr("cart-1").expect("cart").to_string(),
            ),
            ("catalog", "catalog-proxy", catalog_addr),
            ("payments", "payments-proxy", payments_addr),
        ] {
            registrations.push(
                registry
                    .register(Instance::new(service, id, addr))
                    .expect("registered for orders"),
            );
        }
        let mut checkout = Self {
            stack,
            registry,
            catalog,
            payments,
            restarted: Vec::new(),
            _registrations: registrations,
            orders: None,
            client: reqwest::Client::new(),
        };
        checkout.start_orders().await;
        checkout
    }

    /// Starts an orders instance (the previous one, if any, must be gone).
    async fn start_orders(&mut self) {
        self.start_orders_with(|_| {}).await;
    }

    /// Starts an orders instance with `configure` applied after
    /// [`quick_orders`].
    async fn start_orders_with(&mut self, configure: impl FnOnce(&mut shop_orders::Settings)) {
        let running = self
            .stack
            .spawn::<OrdersService>(Some(&self.registry), |settings| {
                quick_orders(settings);
                configure(settings);
            })
            .await
            .expect("orders starts");
        self.orders = Some(running);
    }

    async fn client(&self) -> OrderServiceClient<Channel> {
        let base = self.orders.as_ref().expect("orders runs").base();
        let channel = Channel::from_shared(base)
            .expect("uri")
            .connect()
            .await
            .expect("orders accepts connections");
        OrderServiceClient::new(channel)
    }

    /// Kills orders: its task is aborted mid-call, nothing drains.
    fn kill_orders(&mut self) {
        if let Some(mut orders) = self.orders.take() {
            orders.kill();
        }
    }

    /// A new user with `quantity` of `product` in the cart; their token.
    async fn buyer(&self, name: &str, product: &str, quantity: i64) -> String {
        let token = self.stack.token(name).await;
        let put = self
            .stack
            .put_item(
                &self.stack.cart(),
                &token,
                product,
                json!({"quantity": quantity}),
            )
            .await;
        assert_eq!(put.status(), 200, "{name} fills the cart");
        token
    }

    async fn place(
        &self,
        token: &str,
        key: &str,
        payment: &str,
    ) -> Result<pb::Order, tonic::Status> {
        let request = PlaceOrderRequest {
            idempotency_key: key.to_owned(),
            payment_token: payment.to_owned(),
        };
        let answer = self
            .client()
            .await
            .place_order(authed(request, token))
            .await?;
        Ok(answer.into_inner().order.expect("an order"))
    }

    async fn get(&self, token: &str, id: &str) -> pb::Order {
        let request = GetOrderRequest {
            order_id: id.to_owned(),
        };
        self.client()
            .await
            .get_order(authed(request, token))
            .await
            .expect("the order")
            .into_inner()
    }

    /// Waits until order `id` is settled; returns it.
    async fn settled(&self, token: &str, id: &str) -> pb::Order {
        let mut last = None;
        for _ in 0..300 {
            let order = self.get(token, id).await;
            let status = order.status();
            if status != pb::OrderStatus::Pending && status != pb::OrderStatus::Cancelling {
                return order;
            }
            last = Some(status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("order {id} did not settle ({last:?})");
    }

    fn internal(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header("x-shop-service-token", self.stack.service_token())
    }

    /// The base URL of the running `service` (restarted or the stack's).
    fn participant(&self, service: &str) -> String {
        self.restarted
            .iter()
            .rev()
            .find(|running| running.name().starts_with(service))
            .map_or_else(|| self.stack.base(service), Running::base)
    }

    async fn set_stock(&self, product: &str, stock: i64) {
        let url = format!(
            "{}/internal/products/{product}/stock",
            self.participant("catalog")
        );
        let answer = self
            .internal(self.client.put(url).json(&json!({"stock": stock})))
            .send()
            .await
            .expect("catalog answers");
        assert_eq!(answer.status(), 200, "stock of {product} set");
    }

    async fn stock(&self, product: &str) -> i64 {
        let url = format!("{}/api/products/{product}", self.participant("catalog"));
        let product: Value = self
            .client
            .get(url)
            .send()
            .await
            .expect("catalog")
            .json()
            .await
            .expect("json");
        product["stock"].as_i64().expect("stock")
    }

    /// Order `id`'s payment state, or `None` when payments has none.
    async fn payment(&self, id: &str) -> Option<String> {
        let url = format!("{}/internal/payments/{id}", self.participant("payments"));
        let answer = self
            .internal(self.client.get(url))
            .send()
            .await
            .expect("payments answers");
        if answer.status() == 404 {
            return None;
        }
        assert_eq!(answer.status(), 200, "payment of {id}");
        let payment: Value = answer.json().await.expect("json");
        Some(payment["state"].as_str().expect("state").to_owned())
    }

    /// Stops the participant `service` and starts it again on its database;
    /// the proxy follows it.
    async fn restart(&mut self, service: &str) {
        let label = self
            .restarted
            .iter()
            .rposition(|running| running.name().starts_with(service));
        match label {
            Some(index) => {
                let mut running = self.restarted.remove(index);
                running.stopped().await.expect("stopped cleanly");
            }
            None => self.stack.stop_service(service).await,
        }
        let running = match service {
            "catalog" => self.stack.spawn::<Catalog>(None, |_| {}).await,
            "payments" => self.stack.spawn::<Payments>(None, |_| {}).await,
            other => panic!("no participant {other}"),
        }
        .expect("the participant starts again");
        let proxy = if service == "catalog" {
            &self.catalog
        } else {
            &self.payments
        };
        *proxy.target.lock().unwrap() = running.base();
        self.restarted.push(running);
    }

    /// The invariants over every order in `orders` (token, id, quantity,
    /// whether it is of `product`) and `product`'s stock.
    async fn assert_consistent(&self, orders: &[Bought], product: &str, initial: i64) {
        let mut confirmed = 0;
        for Bought {
            token,
            id,
            quantity,
            of_product,
        } in orders
        {
            let order = self.settled(token, id).await;
            let payment = self.payment(id).await;
            match order.status() {
                pb::OrderStatus::Confirmed => {
                    assert_eq!(
                        payment.as_deref(),
                        Some("captured"),
                        "confirmed {id} is paid"
                    );
                    if *of_product {
                        confirmed += quantity;
                    }
                }
                pb::OrderStatus::Rejected => assert!(
                    matches!(payment.as_deref(), None | Some("voided" | "declined")),
                    "rejected {id} holds no money: {payment:?}"
                ),
                pb::OrderStatus::Cancelled => {
                    assert_eq!(
                        payment.as_deref(),
                        Some("refunded"),
                        "cancelled {id} is refunded"
                    );
                }
                other => panic!("{id} is {other:?}"),
            }
        }
        assert_eq!(
            self.stock(product).await,
            initial - confirmed,
            "stock = initial − confirmed quantities"
        );
    }
}

/// An order of the crash scenarios.
struct Bought {
    token: String,
    id: String,
    quantity: i64,
    /// Of the product whose stock is checked.
    of_product: bool,
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    request
}

#[tokio::test]
async fn a_hundred_buyers_race_for_ten_units_and_exactly_ten_get_them() {
    for engine in shop_testkit::engines() {
        let checkout = Checkout::start(engine).await;
        let product = checkout.stack.product_ids().await[1].clone();
        checkout.set_stock(&product, 10).await;
        let buyers = futures::future::join_all((0..100).map(|n| {
            let (checkout, product) = (&checkout, &product);
            async move { checkout.buyer(&format!("racer{n}"), product, 1).await }
        }))
        .await;
        let placed = futures::future::join_all(buyers.iter().enumerate().map(|(n, token)| {
            let checkout = &checkout;
            async move {
                let order = checkout
                    .place(token, &format!("race-{n}"), tokens::SUCCESS)
                    .await
                    .expect("placed");
                checkout.settled(token, &order.id).await
            }
        }))
        .await;
        let confirmed: Vec<_> = placed
            .iter()
            .filter(|order| order.status() == pb::OrderStatus::Confirmed)
            .collect();
        let rejected: Vec<_> = placed
            .iter()
            .filter(|order| order.status() == pb::OrderStatus::Rejected)
            .collect();
        assert_eq!(confirmed.len(), 10, "{engine:?}: exactly the stock is sold");
        assert_eq!(
            rejected.len(),
            90,
            "{engine:?}: everyone else is turned away"
        );
        for order in &rejected {
            let rejection = order.rejection.as_ref().expect("a rejection");
            assert_eq!(rejection.reason, "out_of_stock");
            assert_eq!(rejection.out_of_stock, vec![product.clone()]);
            assert_eq!(
                checkout.payment(&order.id).await.as_deref(),
                Some("voided"),
                "the payment of a rejected order is voided"
            );
        }
        for order in &confirmed {
            assert_eq!(
                checkout.payment(&order.id).await.as_deref(),
                Some("captured")
            );
        }
        assert_eq!(
            checkout.stock(&product).await,
            0,
            "{engine:?}: stock ends at 0"
        );
    }
}

#[tokio::test]
async fn a_payment_slower_than_the_answer_is_pending_then_settles_and_every_token_has_its_outcome()
{
    for engine in shop_testkit::engines() {
        let mut checkout = Checkout::start(engine).await;
        let product = checkout.stack.product_ids().await[4].clone();
        checkout.set_stock(&product, 100).await;
        // Orders answers after 200 ms, whatever the state.
        checkout.kill_orders();
        checkout
            .start_orders_with(|settings| settings.saga.answer_within_ms = 200)
            .await;
        let token = checkout.buyer("slowpoke", &product, 2).await;
        let order = checkout
            .place(&token, "slow", tokens::SLOW)
            .await
            .expect("placed");
        assert_eq!(
            order.status(),
            pb::OrderStatus::Pending,
            "{engine:?}: answered before the provider"
        );
        let settled = checkout.settled(&token, &order.id).await;
        assert_eq!(settled.status(), pb::OrderStatus::Confirmed, "{engine:?}");
        assert_eq!(
            checkout.payment(&order.id).await.as_deref(),
            Some("captured")
        );
        // The same key again: the same order, now settled, no second charge.
        let again = checkout
            .place(&token, "slow", tokens::SLOW)
            .await
            .expect("repeat");
        assert_eq!(
            (again.id.as_str(), again.status()),
            (order.id.as_str(), pb::OrderStatus::Confirmed)
        );
        assert_eq!(checkout.stock(&product).await, 98);

        // Declines settle at once and hold nothing; a provider that keeps
        // failing is given up; an unknown token is a decline.
        checkout.kill_orders();
        checkout.start_orders().await;
        for (n, (payment, reason, decline)) in [
            (tokens::DECLINED, "payment_declined", "card_declined"),
            (
                tokens::INSUFFICIENT_FUNDS,
                "payment_declined",
                "insufficient_funds",
            ),
            (tokens::PROVIDER_ERROR, "payment_failed", ""),
            (
                "tok_mastercard",
                "payment_declined",
                "invalid_payment_token",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let token = checkout.buyer(&format!("payer{n}"), &product, 1).await;
            let order = checkout.place(&token, "k", payment).await.expect("placed");
            let order = checkout.settled(&token, &order.id).await;
            assert_eq!(
                order.status(),
                pb::OrderStatus::Rejected,
                "{engine:?} {payment}"
            );
            let rejection = order.rejection.expect("a rejection");
            assert_eq!(
                (rejection.reason.as_str(), rejection.decline_reason.as_str()),
                (reason, decline),
                "{payment}"
            );
            assert!(
                matches!(
                    checkout.payment(&order.id).await.as_deref(),
                    None | Some("declined" | "voided")
                ),
                "{payment}: nothing held"
            );
        }
        assert_eq!(
            checkout.stock(&product).await,
            98,
            "{engine:?}: rejected orders hold no stock"
        );
    }
}

/// One crash point: the step whose call is held, the fault, and what the
/// order must end as.
struct Point {
    step: &'static str,
    participant: &'static str,
    /// The order is out of stock (compensation steps).
    short: bool,
    /// The order is confirmed, then cancelled (cancellation steps).
    cancel: bool,
}

const POINTS: [Point; 7] = [
    Point {
        step: "authorize",
        participant: "payments",
        short: false,
        cancel: false,
    },
    Point {
        step: "reserve",
        participant: "catalog",
        short: false,
        cancel: false,
    },
    Point {
        step: "capture",
        participant: "payments",
        short: false,
        cancel: false,
    },
    Point {
        step: "void",
        participant: "payments",
        short: true,
        cancel: false,
    },
    Point {
        step: "release",
        participant: "catalog",
        short: true,
        cancel: false,
    },
    Point {
        step: "refund",
        participant: "payments",
        short: false,
        cancel: true,
    },
    Point {
        step: "release",
        participant: "catalog",
        short: false,
        cancel: true,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// orders dies while the step's call is in flight; the call then lands.
    KillOrders,
    /// The participant is stopped while the call is in flight (the call
    /// fails), then started again.
    StopParticipant,
}

#[tokio::test]
async fn every_crash_point_ends_confirmed_or_rejected_with_stock_and_money_matching() {
    for engine in shop_testkit::engines() {
        let mut checkout = Checkout::start(engine).await;
        let products = checkout.stack.product_ids().await;
        let (plenty, short) = (products[2].clone(), products[3].clone());
        checkout.set_stock(&plenty, PLENTY).await;
        checkout.set_stock(&short, 0).await;
        let mut orders: Vec<Bought> = Vec::new();
        let mut n = 0;
        for point in &POINTS {
            for fault in [Fault::KillOrders, Fault::StopParticipant] {
                n += 1;
                let what = format!(
                    "{engine:?} {} at {} ({fault:?})",
                    point.participant, point.step
                );
                let product = if point.short { &short } else { &plenty };
                let quantity = 1 + (n % 3);
                let token = checkout
                    .buyer(&format!("crash{n}"), product, quantity)
                    .await;
                let proxy = if point.participant == "catalog" {
                    checkout.catalog.clone()
                } else {
                    checkout.payments.clone()
                };
                // Cancellation: confirm first, then hold the cancel's step.
                let placed_id = if point.cancel {
                    let order = checkout
                        .place(&token, &format!("k{n}"), tokens::SUCCESS)
                        .await
                        .expect("placed");
                    let order = checkout.settled(&token, &order.id).await;
                    assert_eq!(order.status(), pb::OrderStatus::Confirmed, "{what}");
                    Some(order.id)
                } else {
                    None
                };
                let (open, held) = proxy.hold(point.step);
                let call = {
                    let client = checkout.client().await;
                    let token = token.clone();
                    let key = format!("k{n}");
                    let placed_id = placed_id.clone();
                    tokio::spawn(async move {
                        let mut client = client;
                        match placed_id {
                            Some(id) => client
                                .cancel_order(authed(CancelOrderRequest { order_id: id }, &token))
                                .await
                                .map(|answer| answer.into_inner()),
                            None => client
                                .place_order(authed(
                                    PlaceOrderRequest {
                                        idempotency_key: key,
                                        payment_token: tokens::SUCCESS.to_owned(),
                                    },
                                    &token,
                                ))
                                .await
                                .map(|answer| answer.into_inner().order.expect("order")),
                        }
                    })
                };
                eventually(&format!("{what}: the call is held"), || {
                    let held = held.clone();
                    async move { *held.lock().unwrap() > 0 }
                })
                .await;
                match fault {
                    Fault::KillOrders => {
                        checkout.kill_orders();
                        // The call goes through; its answer has no one to
                        // go to.
                        proxy.pass(point.step);
                        let _ = open.send(true);
                        let _ = call.await;
                        checkout.start_orders().await;
                    }
                    Fault::StopParticipant => {
                        let restart = checkout.restart(point.participant);
                        // The held call is let go once the participant is
                        // down, so it fails; the saga retries it against the
                        // participant started again.
                        let stopped = async {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            proxy.pass(point.step);
                            let _ = open.send(true);
                        };
                        let ((), ()) = tokio::join!(restart, stopped);
                        let _ = call.await;
                    }
                }
                let id = match placed_id {
                    Some(id) => id,
                    None => {
                        // The order exists (the call was held after the
                        // insert): find it through the list.
                        let list = checkout
                            .client()
                            .await
                            .list_orders(authed(
                                pb::ListOrdersRequest {
                                    page_size: 10,
                                    page_token: String::new(),
                                },
                                &token,
                            ))
                            .await
                            .expect("list")
                            .into_inner();
                        assert_eq!(list.orders.len(), 1, "{what}: one order");
                        list.orders[0].id.clone()
                    }
                };
                let order = checkout.settled(&token, &id).await;
                let want = match (point.short, point.cancel) {
                    (true, _) => pb::OrderStatus::Rejected,
                    (_, true) => pb::OrderStatus::Cancelled,
                    _ => pb::OrderStatus::Confirmed,
                };
                assert_eq!(order.status(), want, "{what}");
                orders.push(Bought {
                    token,
                    id,
                    quantity,
                    of_product: !point.short,
                });
                checkout.assert_consistent(&orders, &plenty, PLENTY).await;
                assert_eq!(checkout.stock(&short).await, 0, "{what}: nothing oversold");
            }
        }
        assert_eq!(orders.len(), 14);
    }
}
