//! Measuring: p50/p99 of each index-backed path through a running gateway.
//!
//! A few seeded users log in once; then each path is warmed up and takes a
//! fixed number of samples at a small fixed concurrency, each worker as
//! its own user (a cart is per user). Products and cursors are drawn from
//! the seeded range, so every request names rows that exist at this size.
//! Orders are placed before the order lists are read, so every list page
//! read is full at every size: what changes between sizes is the table, not
//! the page.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::rows::{self, USERS};
use crate::stats::Samples;

/// Per-request timeout: a stuck request is an error, not a stuck run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The measured paths, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `GET /api/products`: the first page of the list.
    ProductsFirstPage,
    /// `GET /api/products?cursor=…`: a page 85–95 % through the list.
    ProductsDeepPage,
    /// `GET /api/products/{id}` of a random seeded product.
    ProductById,
    /// `PUT /api/cart/items/{id}` then `POST /api/orders`: the whole saga.
    PlaceOrder,
    /// `GET /api/orders`: the first page of the caller's orders.
    OrdersFirstPage,
}

impl Path {
    /// Every path, in the order they are measured.
    pub const ALL: [Self; 5] = [
        Self::ProductsFirstPage,
        Self::ProductsDeepPage,
        Self::ProductById,
        Self::PlaceOrder,
        Self::OrdersFirstPage,
    ];

    /// The name printed in the results.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProductsFirstPage => "products_first_page",
            Self::ProductsDeepPage => "products_deep_page",
            Self::ProductById => "product_by_id",
            Self::PlaceOrder => "place_order",
            Self::OrdersFirstPage => "orders_first_page",
        }
    }
}

/// How to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The gateway's base URL, without a trailing slash.
    pub base: String,
    /// Seeded products in the catalog.
    pub products: u64,
    /// Seeded users to log in as (each worker uses one).
    pub users: usize,
    /// Samples per path.
    pub samples: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests per path before the samples (not counted).
    pub warmup: usize,
}

/// One path's result.
#[derive(Debug)]
pub struct Measured {
    /// The path.
    pub path: Path,
    /// Successful requests' latencies.
    pub samples: Samples,
    /// Requests that failed (or, for an order, did not end confirmed).
    pub errors: usize,
    /// The first failure, for the log.
    pub first_error: Option<String>,
}

/// Runs `plan`: logs in, then warms up and measures each path in turn.
///
/// # Errors
/// When a login fails or a task panics; failed requests are counted, not
/// returned.
pub async fn run(plan: &Plan) -> anyhow::Result<Vec<Measured>> {
    ensure!(plan.products > 0, "--products must be at least 1");
    ensure!(
        (1..=64).contains(&plan.users) && (1..=64).contains(&plan.concurrency),
        "--users and --concurrency must be 1..=64"
    );
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(plan.concurrency)
        .build()?;
    let mut tokens = Vec::with_capacity(plan.users);
    // Users spread over the seeded range, one login (one Argon2id hash) at a time.
    let step = USERS / u64::try_from(plan.users).unwrap_or(1);
    for k in 0..u64::try_from(plan.users).unwrap_or(1) {
        tokens.push(log_in(&client, &plan.base, &rows::username(k * step)).await?);
    }
    let shared = Arc::new(Shared {
        client,
        base: plan.base.clone(),
        products: plan.products,
        tokens,
    });
    let mut results = Vec::with_capacity(Path::ALL.len());
    for path in Path::ALL {
        if plan.warmup > 0 {
            sample(&shared, path, plan.warmup, plan.concurrency).await?;
        }
        results.push(sample(&shared, path, plan.samples, plan.concurrency).await?);
    }
    Ok(results)
}

/// What every worker reads.
struct Shared {
    client: reqwest::Client,
    base: String,
    products: u64,
    tokens: Vec<String>,
}

/// `count` requests of `path`, `concurrency` at a time.
async fn sample(
    shared: &Arc<Shared>,
    path: Path,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Measured> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (shared, next) = (shared.clone(), next.clone());
        workers.spawn(async move {
            let token = &shared.tokens[worker % shared.tokens.len()];
            let mut measured = Measured {
                path,
                samples: Samples::default(),
                errors: 0,
                first_error: None,
            };
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let started = Instant::now();
                match request(&shared, path, token).await {
                    Ok(()) => measured.samples.record(started.elapsed()),
                    Err(error) => {
                        measured.errors += 1;
                        measured.first_error.get_or_insert(error);
                    }
                }
            }
            measured
        });
    }
    let mut total = Measured {
        path,
        samples: Samples::default(),
        errors: 0,
        first_error: None,
    };
    while let Some(measured) = workers.join_next().await {
        let measured = measured.context("a measuring task failed")?;
        total.samples.merge(measured.samples);
        total.errors += measured.errors;
        if total.first_error.is_none() {
            total.first_error = measured.first_error;
        }
    }
    Ok(total)
}

/// A random seeded product number in `[from, to)` of the range.
fn random_product(products: u64, from: f64, to: f64) -> u64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let (low, high) = (
        (products as f64 * from) as u64,
        ((products as f64 * to) as u64).max(1),
    );
    rand::random_range(low.min(high - 1)..high)
}

/// One request (two for an order) of `path` as the user of `token`.
async fn request(shared: &Shared, path: Path, token: &str) -> Result<(), String> {
    let base = &shared.base;
    let client = &shared.client;
    let auth = format!("Bearer {token}");
    match path {
        Path::ProductsFirstPage => {
            expect(
                client.get(format!("{base}/api/products")),
                StatusCode::OK,
                "GET /api/products",
            )
            .await?;
        }
        Path::ProductsDeepPage => {
            let cursor = rows::cursor_after(random_product(shared.products, 0.85, 0.95));
            let page = expect(
                client.get(format!("{base}/api/products?cursor={cursor}")),
                StatusCode::OK,
                "GET /api/products?cursor",
            )
            .await?;
            // A cursor the catalog did not understand would list nothing.
            let listed = page
                .get("items")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if listed == 0 {
                return Err(format!("GET /api/products?cursor={cursor}: an empty page"));
            }
        }
        Path::ProductById => {
            let id = rows::product_id(random_product(shared.products, 0.0, 1.0));
            expect(
                client.get(format!("{base}/api/products/{id}")),
                StatusCode::OK,
                "GET /api/products/{id}",
            )
            .await?;
        }
        Path::PlaceOrder => {
            let id = rows::product_id(random_product(shared.products, 0.0, 1.0));
            expect(
                client
                    .put(format!("{base}/api/cart/items/{id}"))
                    .header("authorization", &auth)
                    .json(&json!({"quantity": 1})),
                StatusCode::OK,
                "PUT /api/cart/items",
            )
            .await?;
            let order = expect(
                client
                    .post(format!("{base}/api/orders"))
                    .header("authorization", &auth)
                    .header("idempotency-key", uuid::Uuid::now_v7().to_string())
                    .json(&json!({"payment_token": rows::PAYMENT_TOKEN})),
                StatusCode::CREATED,
                "POST /api/orders",
            )
            .await?;
            let status = order.get("status").and_then(Value::as_str);
            if status != Some("confirmed") {
                return Err(format!("POST /api/orders: not confirmed: {order}"));
            }
        }
        Path::OrdersFirstPage => {
            expect(
                client
                    .get(format!("{base}/api/orders"))
                    .header("authorization", &auth),
                StatusCode::OK,
                "GET /api/orders",
            )
            .await?;
        }
    }
    Ok(())
}

/// Sends `request` and reads its JSON body, failing unless the status is
/// `status` (any 2xx when `status` is 200, since a PUT may answer 200 or 201).
async fn expect(
    request: reqwest::RequestBuilder,
    status: StatusCode,
    what: &str,
) -> Result<Value, String> {
    let response = request
        .send()
        .await
        .map_err(|err| format!("{what}: {err}"))?;
    let got = response.status();
    let ok = if status == StatusCode::OK {
        got.is_success()
    } else {
        got == status
    };
    if !ok {
        let body = response.text().await.unwrap_or_default();
        let cut: String = body.chars().take(300).collect();
        return Err(format!("{what} -> {got}: {cut}"));
    }
    if got == StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    response
        .json()
        .await
        .map_err(|err| format!("{what}: {err}"))
}

/// Logs seeded user `name` in and returns the access token.
async fn log_in(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<String> {
    let session = client
        .post(format!("{base}/api/sessions"))
        .json(&json!({"login": name, "password": rows::PASSWORD}))
        .send()
        .await
        .context("POST /api/sessions")?
        .error_for_status()
        .with_context(|| format!("logging in as {name} (is the users database seeded?)"))?;
    let session: Value = session.json().await.context("POST /api/sessions")?;
    session
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("no access_token in the login response")
}
