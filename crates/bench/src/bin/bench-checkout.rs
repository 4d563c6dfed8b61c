//! `bench-checkout`: the checkout load, through the gateway.
//!
//! `--users` simulated users register (or reuse their account), log in once,
//! and then each loops for `--duration-secs`: put one product in the cart,
//! place an order with a fresh `Idempotency-Key`, paid with the test token
//! that always succeeds. User `n` buys the `n mod N`-th of the `--products`
//! (N) products in stock, in id order — every one in stock by default, as
//! a shop's buyers spread over its catalog; `--products 1` has every user
//! buy the same one (a flash sale: every reservation waits for the one
//! product row). Every confirmed order takes a unit: restock before a run.
//! One line of `key=value` results is printed at the end for
//! `scripts/bench.sh` to parse.
//!
//! An order counts when checkout confirmed it before the answer (201,
//! `confirmed`). A 201 `rejected` (out of stock once the product sells out,
//! or a payment refused) and a 202 (still pending when the gateway had to
//! answer) are counted apart, neither as an order nor as an error: the
//! system behaved as specified, but they are not the measured checkout.
//!
//! Bounded on purpose: at most [`MAX_USERS`] users, [`MAX_DURATION_SECS`]
//! seconds, and loopback addresses only — it is a benchmark, not a load
//! testing tool to point at someone else's server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shop_bench::stats::Samples;

/// Most simulated users.
const MAX_USERS: usize = 512;
/// Longest measured window.
const MAX_DURATION_SECS: u64 = 60;
/// Per-request timeout: a stuck request ends the iteration, not the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Password of every benchmark user (they exist only in a throwaway stack).
const PASSWORD: &str = "bench password 1234";
/// Registrations and logins at once: each costs an Argon2id hash (~19 MiB,
/// tens of ms of CPU), and 32 at once overrun the gateway's 2 s per-try
/// timeout to users on 2 cores.
const LOGIN_CONCURRENCY: usize = 4;
/// Attempts per registration or login before the run gives up.
const LOGIN_ATTEMPTS: u32 = 3;
/// The payment token of every order: the built-in provider's test token
/// that is always authorized and captured (`shop_api::payments::tokens::SUCCESS`).
const PAYMENT_TOKEN: &str = "tok_visa";

#[derive(Debug, Parser)]
#[command(about = "Checkout load through the ferroshop gateway")]
struct Args {
    /// The gateway's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: reqwest::Url,
    /// Concurrent users.
    #[arg(long, default_value_t = 32)]
    users: usize,
    /// Length of the measured window in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds of load before the measured window (not counted).
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// How many of the products in stock the users buy (0: all of them).
    #[arg(long, default_value_t = 0)]
    products: usize,
    /// Prefix of the user names, so that runs against one database differ.
    #[arg(long, default_value = "bench")]
    prefix: String,
}

/// What one user saw in the measured window.
#[derive(Default)]
struct Tally {
    orders: Samples,
    iterations: Samples,
    errors: u64,
    /// `POST /api/orders` answered 409 (empty cart): the outbox relay of
    /// the previous order cleared the line just put back. Not counted in
    /// `errors`: the system behaved as specified.
    empty_carts: u64,
    /// 201 with the order `rejected`: checkout ran to its end and refused.
    rejected: u64,
    /// Of `rejected`, those for want of stock (the product sold out).
    out_of_stock: u64,
    /// 202: the order was still pending when the gateway answered.
    pending: u64,
    first_error: Option<String>,
}

/// What one `POST /api/orders` ended in.
enum Placed {
    /// 201, the order confirmed.
    Confirmed,
    /// 201, the order rejected; true when for want of stock.
    Rejected { out_of_stock: bool },
    /// 202, the order still pending.
    Pending,
    /// 409, the cart was empty.
    EmptyCart,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=MAX_USERS).contains(&args.users),
        "--users must be 1..={MAX_USERS}"
    );
    ensure!(
        (1..=MAX_DURATION_SECS).contains(&args.duration_secs)
            && args.warmup_secs <= MAX_DURATION_SECS,
        "--duration-secs must be 1..={MAX_DURATION_SECS}"
    );
    ensure!(
        shop_bench::is_loopback(&args.base),
        "--base must be a loopback address"
    );

    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(args.users)
        .build()?;
    let base = Arc::new(args.base.as_str().trim_end_matches('/').to_owned());

    let products = Arc::new(products_in_stock(&client, &base, args.products).await?);
    let started = Instant::now();
    let mut logins = tokio::task::JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(LOGIN_CONCURRENCY));
    for n in 0..args.users {
        let (client, base, permits) = (client.clone(), base.clone(), permits.clone());
        let name = format!("{}{n}", args.prefix);
        logins.spawn(async move {
            let _permit = permits.acquire().await?;
            let mut attempt = 1;
            loop {
                match log_in(&client, &base, &name).await {
                    Ok(token) => return Ok(token),
                    Err(err) if attempt >= LOGIN_ATTEMPTS => return Err(err),
                    Err(err) => eprintln!("bench-checkout: {name}: {err:#}; retrying"),
                }
                attempt += 1;
            }
        });
    }
    let mut tokens = Vec::with_capacity(args.users);
    while let Some(token) = logins.join_next().await {
        let token: anyhow::Result<String> = token?;
        tokens.push(token?);
    }
    eprintln!(
        "bench-checkout: {} users logged in in {:.1}s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );

    let warmup_end = Instant::now() + Duration::from_secs(args.warmup_secs);
    let end = warmup_end + Duration::from_secs(args.duration_secs);
    let mut workers = tokio::task::JoinSet::new();
    for (n, token) in tokens.into_iter().enumerate() {
        let (client, base) = (client.clone(), base.clone());
        let product = products[n % products.len()].clone();
        workers.spawn(async move { shop(&client, &base, &token, &product, warmup_end, end).await });
    }
    let mut total = Tally::default();
    while let Some(tally) = workers.join_next().await {
        let tally = tally?;
        total.orders.merge(tally.orders);
        total.iterations.merge(tally.iterations);
        total.errors += tally.errors;
        total.empty_carts += tally.empty_carts;
        total.rejected += tally.rejected;
        total.out_of_stock += tally.out_of_stock;
        total.pending += tally.pending;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    if let Some(error) = &total.first_error {
        eprintln!("bench-checkout: first error: {error}");
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = total.orders.len() as f64 / args.duration_secs as f64;
    if total.out_of_stock > 0 {
        eprintln!(
            "bench-checkout: {} orders rejected out of stock: a product of {} sold out during the run; restock them for a longer one",
            total.out_of_stock,
            products.join(", ")
        );
    }
    // `errors=` stays the only key ending so: scripts/bench.sh reads it
    // with a greedy pattern.
    println!(
        "orders={} seconds={} orders_per_s={rate:.1} order_p50_ms={:.2} order_p99_ms={:.2} iteration_p99_ms={:.2} errors={} empty_cart_409={} rejected={} rejected_out_of_stock={} pending_202={}",
        total.orders.len(),
        args.duration_secs,
        total.orders.quantile_ms(0.5),
        total.orders.quantile_ms(0.99),
        total.iterations.quantile_ms(0.99),
        total.errors,
        total.empty_carts,
        total.rejected,
        total.out_of_stock,
        total.pending,
    );
    Ok(())
}

/// Sends `request` (`what` names it in errors) and reads a 2xx answer's
/// JSON body.
async fn json_of(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request.send().await.context(what.to_owned())?;
    let response = response.error_for_status().context(what.to_owned())?;
    response.json().await.context(what.to_owned())
}

/// The ids of the first `wanted` products in stock (all when 0), in id
/// order.
async fn products_in_stock(
    client: &reqwest::Client,
    base: &str,
    wanted: usize,
) -> anyhow::Result<Vec<String>> {
    let page = json_of(
        client.get(format!("{base}/api/products?limit=100")),
        "GET /api/products",
    )
    .await?;
    let items = page.get("items").unwrap_or(&page);
    let items = items.as_array().context("the catalog lists no product")?;
    let mut ids: Vec<String> = items
        .iter()
        .filter(|item| item.get("stock").and_then(Value::as_i64).unwrap_or(0) > 0)
        .filter_map(|item| item.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    ids.sort();
    if wanted > 0 {
        ids.truncate(wanted);
    }
    if ids.is_empty() {
        bail!("every product is sold out: restock before a run");
    }
    Ok(ids)
}

/// Registers `name` (an existing account is fine) and returns its token.
async fn log_in(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<String> {
    let created = client
        .post(format!("{base}/api/users"))
        .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .context("POST /api/users")?;
    if !(created.status() == StatusCode::CREATED || created.status() == StatusCode::CONFLICT) {
        bail!("POST /api/users -> {}", created.status());
    }
    let login = json!({"login": name, "password": PASSWORD});
    let session = json_of(
        client.post(format!("{base}/api/sessions")).json(&login),
        "POST /api/sessions",
    )
    .await?;
    session
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("no access_token in the login response")
}

/// One user's loop: cart, order, until `end`; only what ends after
/// `warmup_end` is counted.
async fn shop(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
    warmup_end: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let auth = format!("Bearer {token}");
    let item = format!("{base}/api/cart/items/{product}");
    let orders = format!("{base}/api/orders");
    while Instant::now() < end {
        let begun = Instant::now();
        let put = client
            .put(&item)
            .header("authorization", &auth)
            .json(&json!({"quantity": 1}))
            .send()
            .await;
        let ordered_at = Instant::now();
        let outcome = match put {
            Ok(response) if response.status().is_success() => {
                let placing = client
                    .post(&orders)
                    .header("authorization", &auth)
                    .header("idempotency-key", uuid::Uuid::now_v7().to_string())
                    .json(&json!({"payment_token": PAYMENT_TOKEN}))
                    .send()
                    .await;
                match placing {
                    Ok(response) => placed(response).await,
                    Err(err) => Err(format!("POST /api/orders: {err}")),
                }
            }
            Ok(response) => Err(failure("PUT /api/cart/items", response).await),
            Err(err) => Err(format!("PUT /api/cart/items: {err}")),
        };
        let done = Instant::now();
        if done < warmup_end || done > end {
            continue;
        }
        match outcome {
            Ok(Placed::Confirmed) => {
                tally.orders.record(done - ordered_at);
                tally.iterations.record(done - begun);
            }
            Ok(Placed::Rejected { out_of_stock }) => {
                tally.rejected += 1;
                tally.out_of_stock += u64::from(out_of_stock);
            }
            Ok(Placed::Pending) => tally.pending += 1,
            Ok(Placed::EmptyCart) => tally.empty_carts += 1,
            Err(error) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(error);
            }
        }
    }
    tally
}

/// What the answer to `POST /api/orders` says of the order; anything but
/// 201 confirmed or rejected, 202 or 409 is an error.
async fn placed(response: reqwest::Response) -> Result<Placed, String> {
    const WHAT: &str = "POST /api/orders";
    match response.status() {
        StatusCode::ACCEPTED => Ok(Placed::Pending),
        StatusCode::CONFLICT => Ok(Placed::EmptyCart),
        StatusCode::CREATED => {
            let order: Value = response
                .json()
                .await
                .map_err(|err| format!("{WHAT} -> 201: {err}"))?;
            match order.get("status").and_then(Value::as_str) {
                Some("confirmed") => Ok(Placed::Confirmed),
                Some("rejected") => Ok(Placed::Rejected {
                    out_of_stock: order.pointer("/rejection/reason").and_then(Value::as_str)
                        == Some("out_of_stock"),
                }),
                _ => Err(format!("{WHAT} -> 201 with an unsettled order: {order}")),
            }
        }
        _ => Err(failure(WHAT, response).await),
    }
}

/// "`what` -> status: body" of a failed call, the body cut at 300 bytes.
async fn failure(what: &str, response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let cut = body
        .char_indices()
        .nth(300)
        .map_or(body.as_str(), |(at, _)| &body[..at]);
    format!("{what} -> {status}: {cut}")
}
