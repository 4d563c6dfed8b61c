//! The checkout load: shoppers registered and logged in once, each looping
//! browse → put a cart line → place an order with a fresh `Idempotency-Key`
//! (retried with the same key on any failure until it is answered) →
//! sometimes read the order back. Every request is recorded with its route,
//! when it started and ended, and what came back; every key with what the
//! shopper was finally told.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rand::Rng as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use crate::edge::{Edge, Outcome, Request};

/// The password of every shopper (they live in a throwaway stack).
const PASSWORD: &str = "faults password 1234";
/// The payment token of every order: always authorized and captured.
pub const PAYMENT_TOKEN: &str = "tok_visa";
/// Registrations and logins at once: each is an Argon2id hash on 2 cores.
const LOGIN_CONCURRENCY: usize = 4;
/// How long a registration or login is retried (429s included).
const LOGIN_RETRY: Duration = Duration::from_secs(120);
/// A token older than this is renewed between scenarios (they live 15 min).
pub const TOKEN_RENEW_AFTER: Duration = Duration::from_secs(600);
/// Pause between two attempts of a failed request.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The routes the load calls, as the gateway's route templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// `GET /api/products`: browsing.
    Browse,
    /// `PUT /api/cart/items/{product_id}`.
    PutCartItem,
    /// `POST /api/orders` with an `Idempotency-Key`.
    PlaceOrder,
    /// `GET /api/orders/{id}`.
    GetOrder,
}

impl Route {
    /// Method and route template.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browse => "GET /api/products",
            Self::PutCartItem => "PUT /api/cart/items/{product_id}",
            Self::PlaceOrder => "POST /api/orders",
            Self::GetOrder => "GET /api/orders/{id}",
        }
    }

    /// Every route.
    pub const ALL: [Route; 4] = [
        Self::Browse,
        Self::PutCartItem,
        Self::PlaceOrder,
        Self::GetOrder,
    ];
}

/// One request as a shopper saw it; times are seconds since the scenario's
/// load started.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Its route.
    pub route: Route,
    /// When it was sent.
    pub start: f64,
    /// When its answer (or failure) arrived.
    pub end: f64,
    /// What came back.
    pub outcome: Outcome,
}

impl Attempt {
    /// Whether the shopper saw an error: a 5xx, a timeout, a broken or
    /// impossible connection. (4xx answers are the API's own answers.)
    pub fn is_error(&self) -> bool {
        self.outcome.is_failure()
    }

    /// Latency in seconds.
    pub fn latency(&self) -> f64 {
        self.end - self.start
    }
}

/// What became of one idempotency key.
#[derive(Debug, Clone)]
pub enum KeyOutcome {
    /// Answered 200/201/202 with this order id (each answer's id: a key
    /// answered with two ids is a duplicate the client saw).
    Told(Vec<String>),
    /// Answered with a 4xx (409: the cart was empty).
    Refused(u16),
    /// Never answered within the retry bound.
    Lost,
}

/// One idempotency key and its fate.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key.
    pub key: String,
    /// What the shopper was told.
    pub outcome: KeyOutcome,
}

/// Everything one shopper saw in one scenario.
#[derive(Debug, Default)]
pub struct Log {
    /// Every request.
    pub attempts: Vec<Attempt>,
    /// Every key sent.
    pub keys: Vec<Key>,
}

/// A registered shopper.
#[derive(Debug, Clone)]
pub struct Shopper {
    /// The user name.
    pub name: String,
    token: String,
    logged_in: Instant,
}

impl Shopper {
    /// Registers `name` and logs in (both retried through 429s and
    /// failures for up to two minutes).
    ///
    /// # Errors
    /// Registration or login kept failing.
    pub async fn register(edge: &Edge, name: String) -> Result<Self> {
        let body =
            json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
        let answer = setup_call(
            edge,
            "/api/users",
            &body,
            &[StatusCode::CREATED, StatusCode::CONFLICT],
        )
        .await?;
        drop(answer);
        let mut shopper = Self {
            name,
            token: String::new(),
            logged_in: Instant::now(),
        };
        shopper.login(edge).await?;
        Ok(shopper)
    }

    /// Logs in again.
    ///
    /// # Errors
    /// Login kept failing, or answered no token.
    pub async fn login(&mut self, edge: &Edge) -> Result<()> {
        let body = json!({"login": self.name, "password": PASSWORD});
        let answer = setup_call(edge, "/api/sessions", &body, &[StatusCode::OK]).await?;
        let token = answer
            .as_ref()
            .and_then(|b| b.get("access_token"))
            .and_then(Value::as_str)
            .with_context(|| format!("login of {} answered no access_token", self.name))?;
        self.token = token.to_owned();
        self.logged_in = Instant::now();
        Ok(())
    }

    /// Whether the token should be renewed before the next scenario.
    pub fn token_is_old(&self) -> bool {
        self.logged_in.elapsed() > TOKEN_RENEW_AFTER
    }
}

/// Registers `count` shoppers named `<prefix>-<n>`, a few at a time.
///
/// # Errors
/// One of them could not register or log in.
pub async fn register_all(edge: &Arc<Edge>, prefix: &str, count: usize) -> Result<Vec<Shopper>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(LOGIN_CONCURRENCY));
    let mut tasks = Vec::new();
    for n in 0..count {
        let edge = Arc::clone(edge);
        let semaphore = Arc::clone(&semaphore);
        let name = format!("{prefix}{n}");
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.context("semaphore closed")?;
            Shopper::register(&edge, name).await
        }));
    }
    let mut shoppers = Vec::new();
    for task in tasks {
        shoppers.push(task.await.context("a registration task panicked")??);
    }
    Ok(shoppers)
}

/// A POST of the setup (sign-up, login): retried through 429 (waiting as
/// the gateway asks) and failures; `accept` are the statuses that end it.
async fn setup_call(
    edge: &Edge,
    path: &str,
    body: &Value,
    accept: &[StatusCode],
) -> Result<Option<Value>> {
    let deadline = Instant::now() + LOGIN_RETRY;
    loop {
        let answer = edge
            .send(&Request {
                method: Method::POST,
                path,
                token: None,
                idempotency_key: None,
                body: Some(body),
            })
            .await;
        match &answer.outcome {
            Outcome::Status(status) if accept.contains(status) => return Ok(answer.body),
            Outcome::Status(status)
                if status.is_client_error() && *status != StatusCode::TOO_MANY_REQUESTS =>
            {
                bail!("POST {path} answered {status}: {:?}", answer.body);
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            bail!("POST {path} kept failing: last {}", answer.outcome.label());
        }
        sleep(Duration::from_secs(1)).await;
    }
}

/// What every shopper of a scenario shares.
pub struct Plan {
    /// The balancer.
    pub edge: Arc<Edge>,
    /// The products the load buys (their stock is set high at the start).
    pub products: Vec<String>,
    /// Prefix of this scenario's idempotency keys.
    pub key_prefix: String,
    /// How long one order is retried with its key.
    pub order_retry: Duration,
    /// When the scenario's load started (time zero of its records).
    pub zero: Instant,
}

impl Plan {
    fn now(&self) -> f64 {
        self.zero.elapsed().as_secs_f64()
    }
}

/// Runs `shopper`'s loop until `stop` turns true; an order under way is
/// finished (answered or given up) first.
pub async fn shop(
    plan: Arc<Plan>,
    shopper: Shopper,
    index: usize,
    mut stop: watch::Receiver<bool>,
) -> Log {
    let mut log = Log::default();
    let mut n = 0_u64;
    while !*stop.borrow_and_update() {
        n += 1;
        let (product, quantity, think) = {
            let mut rng = rand::rng();
            let product = rng.random_range(0..plan.products.len().max(1));
            (
                product,
                rng.random_range(1..=3_i64),
                rng.random_range(50..250_u64),
            )
        };
        let Some(product) = plan.products.get(product) else {
            break;
        };

        // Browse.
        call(
            &plan,
            &mut log,
            &shopper,
            Route::Browse,
            Method::GET,
            "/api/products?limit=20",
            None,
            None,
        )
        .await;

        // Put a cart line, retried until it is taken (it is idempotent).
        let path = format!("/api/cart/items/{product}");
        let line = json!({"quantity": quantity});
        let deadline = Instant::now() + plan.order_retry;
        let mut put = false;
        while !put && Instant::now() < deadline && !*stop.borrow() {
            let outcome = call(
                &plan,
                &mut log,
                &shopper,
                Route::PutCartItem,
                Method::PUT,
                &path,
                None,
                Some(&line),
            )
            .await;
            put = matches!(outcome.0, Outcome::Status(s) if s.is_success());
            if !put {
                sleep(RETRY_PAUSE).await;
            }
        }
        if !put {
            continue;
        }

        // Place the order: the same key until it is answered.
        let key = format!("{}-{index}-{n}", plan.key_prefix);
        let body = json!({"payment_token": PAYMENT_TOKEN});
        let deadline = Instant::now() + plan.order_retry;
        let mut told: Vec<String> = Vec::new();
        let outcome = loop {
            let (outcome, answer) = call(
                &plan,
                &mut log,
                &shopper,
                Route::PlaceOrder,
                Method::POST,
                "/api/orders",
                Some(&key),
                Some(&body),
            )
            .await;
            match outcome {
                Outcome::Status(s)
                    if s == StatusCode::OK
                        || s == StatusCode::CREATED
                        || s == StatusCode::ACCEPTED =>
                {
                    if let Some(id) = answer
                        .as_ref()
                        .and_then(|b| b.get("id"))
                        .and_then(Value::as_str)
                    {
                        told.push(id.to_owned());
                    }
                    break KeyOutcome::Told(told.clone());
                }
                Outcome::Status(s) if s.is_client_error() => break KeyOutcome::Refused(s.as_u16()),
                _ => {}
            }
            if Instant::now() >= deadline {
                break KeyOutcome::Lost;
            }
            sleep(RETRY_PAUSE).await;
        };
        let id = match &outcome {
            KeyOutcome::Told(ids) => ids.first().cloned(),
            _ => None,
        };
        log.keys.push(Key { key, outcome });

        // Sometimes read it back.
        if let Some(id) = id
            && rand::rng().random_bool(0.3)
        {
            let path = format!("/api/orders/{id}");
            call(
                &plan,
                &mut log,
                &shopper,
                Route::GetOrder,
                Method::GET,
                &path,
                None,
                None,
            )
            .await;
        }
        tokio::select! {
            () = sleep(Duration::from_millis(think)) => {}
            _ = stop.changed() => {}
        }
    }
    log
}

/// Sends one request and records it.
#[allow(clippy::too_many_arguments)]
async fn call(
    plan: &Plan,
    log: &mut Log,
    shopper: &Shopper,
    route: Route,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (Outcome, Option<Value>) {
    let start = plan.now();
    let answer = plan
        .edge
        .send(&Request {
            method,
            path,
            token: Some(&shopper.token),
            idempotency_key: key,
            body,
        })
        .await;
    let end = plan.now();
    log.attempts.push(Attempt {
        route,
        start,
        end,
        outcome: answer.outcome.clone(),
    });
    (answer.outcome, answer.body)
}
