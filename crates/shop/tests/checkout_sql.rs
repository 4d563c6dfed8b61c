//! `bench/pgbench/checkout.sql` — the database's limit for the checkout
//! benchmark (`scripts/bench/limit.sh`) — must be the SQL one checkout
//! iteration really sends. This test runs the whole stack in-process with
//! every service's database on the test PostgreSQL, performs one iteration
//! of `bench-checkout` (`PUT /api/cart/items/{id}`, then `POST /api/orders`
//! paid with the test token) through the gateway after a warm-up
//! iteration, captures every statement sqlx executed (its `sqlx::query`
//! event carries the text), and compares them with the script's.
//!
//! Attribution is by trace, not by time: each of the two requests carries
//! a `traceparent` of its own, every service joins that trace (the saga's
//! steps and the outbox relay's delivery included, which continue the
//! order's trace), and a statement belongs to the service whose server or
//! worker span it ran under. Pollers (backlog sampler, recovery worker,
//! relay rounds, purges) run in no trace and are not counted. The one
//! piece of the iteration's work done outside its trace is the outbox
//! acknowledger's batched `UPDATE` (one statement for many deliveries):
//! the script's `background` block must appear, in order, among the
//! untraced statements run between the iteration's start and its row
//! being marked delivered.
//!
//! Skipped (with a note) when `SHOP_TEST_POSTGRES_URL` is not set; under
//! `CI=true` that fails instead.

#![allow(clippy::expect_used, clippy::panic)] // a failed setup should fail the test

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use opentelemetry::trace::TracerProvider as _;
use serde_json::Value;
use shop::StackBuilder;
use shop::stack::Cart;
use shop::testing::{Shopper, WAIT};
use shop_testkit::Engine;
use sqlx::Connection as _;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Instrument as _, Level, Metadata, Subscriber};
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// The script under test, relative to this crate.
const SCRIPT: &str = "../../bench/pgbench/checkout.sql";
/// Target of the spans the test wraps its own queries in (not counted).
const PROBE_TARGET: &str = "checkout_sql";

// --- the script --------------------------------------------------------------

/// Which part of the iteration a block of the script belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// `PUT /api/cart/items/{id}`'s trace.
    Put,
    /// `POST /api/orders`'s trace (the saga and the relay's delivery).
    Order,
    /// Batched work outside the trace (the acknowledger).
    Background,
    /// pgbench's own (fresh ids and timestamps): not the services' SQL.
    Setup,
}

impl Phase {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "put" => Some(Self::Put),
            "order" => Some(Self::Order),
            "background" => Some(Self::Background),
            "setup" => Some(Self::Setup),
            _ => None,
        }
    }
}

/// The statements of the script, by phase and service, in script order.
type Expected = BTreeMap<(Phase, String), Vec<String>>;

/// Parses the script: a `-- @<phase> <service>: what` line starts a block;
/// every SQL command (up to a `;` ending a line, or a `\gset` line)
/// belongs to the block above it; comments and other pgbench
/// meta-commands (`\set`) are skipped.
fn parse_script(text: &str) -> Result<Expected, String> {
    let mut expected = Expected::new();
    let mut block: Option<(Phase, String)> = None;
    let mut command = String::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(marker) = trimmed.strip_prefix("-- @") {
            if !command.trim().is_empty() {
                return Err(format!(
                    "line {}: a block starts inside a command",
                    number + 1
                ));
            }
            let head = marker.split(':').next().unwrap_or_default();
            let mut words = head.split_whitespace();
            let (Some(phase), Some(service), None) = (words.next(), words.next(), words.next())
            else {
                return Err(format!(
                    "line {}: expected `-- @<phase> <service>: …`",
                    number + 1
                ));
            };
            let phase = Phase::parse(phase)
                .ok_or_else(|| format!("line {}: unknown phase {phase:?}", number + 1))?;
            block = Some((phase, service.to_owned()));
            continue;
        }
        let gset = trimmed.starts_with("\\gset") || trimmed.starts_with("\\aset");
        if !gset && (trimmed.is_empty() || trimmed.starts_with("--") || trimmed.starts_with('\\')) {
            continue;
        }
        if !gset {
            command.push_str(trimmed);
            command.push(' ');
        }
        if gset || trimmed.ends_with(';') {
            let key = block
                .clone()
                .ok_or_else(|| format!("line {}: a command before any block", number + 1))?;
            expected.entry(key).or_default().push(normalize(&command));
            command.clear();
        }
    }
    if !command.trim().is_empty() {
        return Err("the script ends inside a command".to_owned());
    }
    Ok(expected)
}

/// A statement as compared: whitespace collapsed, a trailing `;` dropped,
/// and every placeholder — sqlx's `$1`, pgbench's `:name` (not a `::`
/// cast) — written `?`.
fn normalize(sql: &str) -> String {
    let sql = sql.trim().trim_end_matches(';');
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        let placeholder = match c {
            '$' => chars.peek().is_some_and(char::is_ascii_digit),
            ':' => {
                previous != ':'
                    && chars
                        .peek()
                        .is_some_and(|next| next.is_ascii_alphabetic() || *next == '_')
            }
            _ => false,
        };
        if placeholder {
            while chars
                .peek()
                .is_some_and(|next| next.is_ascii_alphanumeric() || *next == '_')
            {
                chars.next();
            }
            out.push('?');
            previous = '?';
        } else if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
            previous = ' ';
        } else {
            out.push(c);
            previous = c;
        }
    }
    out.trim_end().to_owned()
}

// --- capturing statements -------------------------------------------------------

/// One statement sqlx executed.
#[derive(Debug, Clone)]
struct Executed {
    sql: String,
    /// The OpenTelemetry trace it ran in, if any.
    trace: Option<String>,
    /// The `service` field of the nearest span that has one.
    service: Option<String>,
    /// Run by this test itself.
    probe: bool,
}

/// Every statement executed since the subscriber was installed.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Executed>>>);

impl Captured {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn since(&self, mark: usize) -> Vec<Executed> {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(mark..).unwrap_or_default().to_vec()
    }
}

/// The `service` field of a span, kept in its extensions.
struct ServiceField(String);

/// Reads a span's `service` field.
#[derive(Default)]
struct ServiceVisitor(Option<String>);

impl Visit for ServiceVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "service" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "service" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

/// Reads a `sqlx::query` event: `summary` (the first words) and
/// `db.statement` (the whole text, empty when the summary is all of it).
#[derive(Default)]
struct QueryVisitor {
    summary: String,
    statement: String,
}

impl Visit for QueryVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}").trim_matches('"').to_owned(),
            "db.statement" => self.statement = format!("{value:?}"),
            _ => {}
        }
    }
}

/// The layer that records statements.
struct Capture(Captured);

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut visitor = ServiceVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(service), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(ServiceField(service));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut visitor = QueryVisitor::default();
        event.record(&mut visitor);
        let sql = if visitor.statement.trim().is_empty() {
            visitor.summary
        } else {
            visitor.statement
        };
        let mut service = None;
        let mut probe = false;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                probe |= span.metadata().target() == PROBE_TARGET;
                if service.is_none() {
                    service = span
                        .extensions()
                        .get::<ServiceField>()
                        .map(|field| field.0.clone());
                }
            }
        }
        let trace =
            shop_common::telemetry::log_format::current_ids().map(|(trace, _)| trace.to_string());
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Executed {
                sql,
                trace,
                service,
                probe,
            });
    }
}

/// Installs (once) the process's subscriber: OpenTelemetry over
/// ferroshop's spans, as the services' own subscriber has it (trace ids
/// given, nothing exported), and the capture of every statement.
fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
            let spans = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("checkout_sql"))
                .with_filter(
                    DynFilterFn::new(|metadata: &Metadata<'_>, _| {
                        metadata.is_span()
                            && metadata.target().starts_with("shop_")
                            && *metadata.level() <= Level::INFO
                    })
                    .with_callsite_filter(|_| Interest::sometimes()),
                );
            let statements = Capture(captured.clone()).with_filter(
                DynFilterFn::new(|metadata: &Metadata<'_>, _| {
                    let target = metadata.target();
                    if metadata.is_span() {
                        target.starts_with("shop_") || target == PROBE_TARGET
                    } else {
                        target == "sqlx::query"
                    }
                })
                .with_callsite_filter(|_| Interest::sometimes()),
            );
            let subscriber = Registry::default().with(spans).with(statements);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other subscriber in this test process");
            captured
        })
        .clone()
}

// --- the iteration ------------------------------------------------------------------

/// A fresh W3C `traceparent` and its trace id.
fn new_trace() -> (String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    (format!("00-{trace}-{span}-01"), trace)
}

/// One iteration of `bench-checkout`: put one unit of `product` in the
/// cart, place the cart paid with `tok_visa`, each request under its
/// `traceparent`; returns the confirmed order's id.
async fn iteration(shopper: &Shopper, product: &str, traces: [&str; 2]) -> String {
    let put = shopper
        .client
        .put(shopper.url(&format!("/api/cart/items/{product}")))
        .bearer_auth(&shopper.token)
        .header("traceparent", traces[0])
        .json(&serde_json::json!({"quantity": 1}));
    let put = shop_testkit::send(put).await;
    assert_eq!(put.status(), 200, "PUT /api/cart/items/{product}");
    let place = shopper
        .client
        .post(shopper.url("/api/orders"))
        .bearer_auth(&shopper.token)
        .header("traceparent", traces[1])
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .json(&serde_json::json!({"payment_token": shop_api::payments::tokens::SUCCESS}));
    let placed = shop_testkit::send(place).await;
    let status = placed.status();
    let order: Value = placed.json().await.expect("json");
    assert_eq!(status, 201, "POST /api/orders: {order}");
    assert_eq!(order["status"], "confirmed", "{order}");
    order["id"].as_str().expect("order id").to_owned()
}

/// Waits until order `id`'s outbox row is marked delivered (by the
/// acknowledger, after the relay's delivery), reading the orders
/// database in a probe span (not counted).
async fn wait_for_acknowledgement(orders_db: &str, id: &str) {
    let probe = || tracing::info_span!(target: PROBE_TARGET, "probe");
    let mut conn = sqlx::PgConnection::connect(orders_db)
        .instrument(probe())
        .await
        .expect("connect to the orders database");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let marked: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE order_id = $1 AND delivered_at IS NOT NULL",
        )
        .bind(id)
        .fetch_one(&mut conn)
        .instrument(probe())
        .await
        .expect("read the outbox");
        if marked == 1 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for order {id}'s outbox row to be marked delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// `expected` and `actual` side by side, a `!` on each line that differs.
fn diff(expected: &[String], actual: &[String]) -> String {
    let mut text = String::new();
    for i in 0..expected.len().max(actual.len()) {
        let (want, got) = (expected.get(i), actual.get(i));
        let mark = if want == got { ' ' } else { '!' };
        let _ = writeln!(
            text,
            "  {mark} {i:>2} expected: {}\n  {mark}    actual:   {}",
            want.map_or("(none)", String::as_str),
            got.map_or("(none)", String::as_str)
        );
    }
    text
}

/// Whether `wanted` occurs in `within` in order (other statements between).
fn is_subsequence(wanted: &[String], within: &[String]) -> bool {
    let mut rest = within.iter();
    wanted
        .iter()
        .all(|statement| rest.any(|other| other == statement))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pgbench_script_is_the_sql_of_one_checkout() {
    let captured = capture();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT);
    let text = std::fs::read_to_string(&script).expect("bench/pgbench/checkout.sql");
    let expected = parse_script(&text).unwrap_or_else(|err| panic!("{SCRIPT}: {err}"));
    if !shop_testkit::engines().contains(&Engine::Postgres) {
        return;
    }
    // As `shop` runs in the benchmark, but one cart (the warm-up warms the
    // cart that serves the measured iteration) whose catalog cache does
    // not expire between the two iterations: under load, its 1 s entries
    // are hit by all but one lookup per second.
    let stack = StackBuilder::for_tests()
        .on(Engine::Postgres)
        .await
        .everything(1)
        .configure::<Cart>(|settings| settings.catalog_cache.ttl_ms = 3_600_000)
        .start_test(Engine::Postgres)
        .await;
    stack.wait_ready().await;
    // The product bench-checkout buys: the first with the most stock.
    let products = stack.products().await;
    let stock = |product: &Value| product["stock"].as_i64().unwrap_or(0);
    let best = products
        .iter()
        .rev()
        .max_by_key(|product| stock(product))
        .expect("a product");
    let product = best["id"].as_str().expect("id").to_owned();
    let shopper = stack.shopper("checkout-sql").await;
    let orders_db = stack.db_url("orders");

    // Warm-up: tokens, keys, the catalog cache, pooled connections and
    // their prepared statements as in a steady run.
    let warm = iteration(&shopper, &product, [&new_trace().0, &new_trace().0]).await;
    wait_for_acknowledgement(&orders_db, &warm).await;

    let mark = captured.len();
    let (put_parent, put_trace) = new_trace();
    let (order_parent, order_trace) = new_trace();
    let order = iteration(&shopper, &product, [&put_parent, &order_parent]).await;
    wait_for_acknowledgement(&orders_db, &order).await;
    let executed = captured.since(mark);

    let mut actual = Expected::new();
    let mut untraced = Vec::new();
    let mut set_up = Vec::new();
    for statement in executed.iter().filter(|statement| !statement.probe) {
        let sql = normalize(&statement.sql);
        // A new pooled connection's `after_connect`: under steady load
        // every pool is full and none is opened per order.
        if sql.starts_with(CONNECTION_SET_UP) {
            set_up.push(sql);
            continue;
        }
        let phase = match statement.trace.as_deref() {
            Some(trace) if trace == put_trace => Phase::Put,
            Some(trace) if trace == order_trace => Phase::Order,
            Some(_) => continue,
            None => {
                untraced.push(sql);
                continue;
            }
        };
        let service = statement.service.clone().unwrap_or_else(|| "?".to_owned());
        actual.entry((phase, service)).or_default().push(sql);
    }
    if !set_up.is_empty() {
        eprintln!("not counted (new pooled connections set up during the iteration): {set_up:?}");
    }

    let report = compare(&expected, &actual, &untraced);
    assert!(
        report.is_empty(),
        "{SCRIPT} no longer matches the SQL one checkout runs; update the script \
         (statements by request and service, BEGIN left out: sqlx sends it without a \
         `sqlx::query` event):\n{report}\nuntraced statements in the iteration's window:\n  {}",
        untraced.join("\n  ")
    );
}

/// A pooled connection's set-up statement (`shop_common::db`'s
/// `after_connect`), normalized.
const CONNECTION_SET_UP: &str = "SET statement_timeout =";

/// What differs between the script (`expected`) and what ran (`actual`,
/// and `untraced` for the background blocks); empty when they agree.
///
/// sqlx queues `BEGIN` and waits for its answer without a `sqlx::query`
/// event: a round trip the capture cannot see. So `BEGIN` is dropped from
/// the script's statements before comparing, and each block's `BEGIN`s
/// must each open a transaction its `COMMIT` closes.
fn compare(expected: &Expected, actual: &Expected, untraced: &[String]) -> String {
    let mut report = String::new();
    let keys: std::collections::BTreeSet<_> = expected
        .keys()
        .chain(actual.keys())
        .filter(|(phase, _)| !matches!(phase, Phase::Background | Phase::Setup))
        .cloned()
        .collect();
    for key in keys {
        let script = expected.get(&key).map_or(&[][..], Vec::as_slice);
        if let Err(problem) = balanced(script) {
            let _ = writeln!(report, "{:?} {}: {problem}", key.0, key.1);
        }
        let want = without_begin(script);
        let got = actual.get(&key).map_or(&[][..], Vec::as_slice);
        if want != got {
            let _ = writeln!(report, "{:?} {}:\n{}", key.0, key.1, diff(&want, got));
        }
    }
    for ((phase, service), want) in expected {
        let want = without_begin(want);
        if *phase == Phase::Background && !is_subsequence(&want, untraced) {
            let _ = writeln!(
                report,
                "Background {service}: expected, in order, among the untraced statements:\n{}",
                diff(&want, untraced)
            );
        }
    }
    report
}

/// `statements` without `BEGIN`.
fn without_begin(statements: &[String]) -> Vec<String> {
    statements
        .iter()
        .filter(|statement| *statement != "BEGIN")
        .cloned()
        .collect()
}

/// Whether every `BEGIN` in `statements` is closed by a `COMMIT` (or
/// `ROLLBACK`) before the next, and every `COMMIT` follows one.
fn balanced(statements: &[String]) -> Result<(), String> {
    let mut open = false;
    for (i, statement) in statements.iter().enumerate() {
        match statement.as_str() {
            "BEGIN" if open => return Err(format!("statement {i}: BEGIN inside a transaction")),
            "BEGIN" => open = true,
            "COMMIT" | "ROLLBACK" if !open => {
                return Err(format!("statement {i}: {statement} without BEGIN"));
            }
            "COMMIT" | "ROLLBACK" => open = false,
            _ => {}
        }
    }
    if open {
        return Err("a transaction is left open".to_owned());
    }
    Ok(())
}

#[test]
fn placeholders_and_whitespace_are_normalized() {
    assert_eq!(
        normalize("SELECT a::text\n   FROM t WHERE id = $1 AND b = $12;"),
        "SELECT a::text FROM t WHERE id = ? AND b = ?"
    );
    assert_eq!(
        normalize("UPDATE t SET x = :qty WHERE id = :id AND y = 'a'::text"),
        "UPDATE t SET x = ? WHERE id = ? AND y = 'a'::text"
    );
    assert_eq!(normalize("  BEGIN "), "BEGIN");
}

#[test]
fn the_script_parser_reads_blocks_and_skips_meta_commands() {
    let script = "\\set qty 1\n-- header\n-- @put cart: set the line\nBEGIN;\nUPDATE carts\n  SET v = :v\n  WHERE id = :id;\nCOMMIT;\n\n-- @order orders: place\nSELECT 1;\n";
    let parsed = parse_script(script).expect("parses");
    assert_eq!(
        parsed[&(Phase::Put, "cart".to_owned())],
        ["BEGIN", "UPDATE carts SET v = ? WHERE id = ?", "COMMIT"]
    );
    assert_eq!(parsed[&(Phase::Order, "orders".to_owned())], ["SELECT 1"]);
    assert!(
        parse_script("SELECT 1;\n").is_err(),
        "a command outside a block"
    );
    assert!(
        parse_script("-- @put cart: x\nSELECT 1\n").is_err(),
        "unterminated"
    );
    assert!(
        parse_script("-- @later cart: x\n").is_err(),
        "unknown phase"
    );
    let gset = parse_script(
        "-- @setup pgbench: ids\nSELECT 1 AS a\n\\gset\n-- @put cart: x\nSELECT :a;\n",
    )
    .expect("parses");
    assert_eq!(
        gset[&(Phase::Setup, "pgbench".to_owned())],
        ["SELECT 1 AS a"]
    );
    assert_eq!(gset[&(Phase::Put, "cart".to_owned())], ["SELECT ?"]);
}

#[test]
fn begin_is_left_out_and_must_be_balanced() {
    let statements = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let block = statements(&["SELECT 1", "BEGIN", "UPDATE t SET a = ?", "COMMIT"]);
    assert!(balanced(&block).is_ok());
    assert_eq!(
        without_begin(&block),
        statements(&["SELECT 1", "UPDATE t SET a = ?", "COMMIT"])
    );
    assert!(balanced(&statements(&["BEGIN", "SELECT 1"])).is_err());
    assert!(balanced(&statements(&["SELECT 1", "COMMIT"])).is_err());
    assert!(balanced(&statements(&["BEGIN", "BEGIN", "COMMIT"])).is_err());

    let key = (Phase::Put, "cart".to_owned());
    let expected = Expected::from([(key.clone(), block.clone())]);
    let same = Expected::from([(key.clone(), without_begin(&block))]);
    assert_eq!(compare(&expected, &same, &[]), "");
    let drifted = Expected::from([(
        key,
        statements(&["SELECT 1", "UPDATE t SET b = ?", "COMMIT"]),
    )]);
    let report = compare(&expected, &drifted, &[]);
    assert!(
        report.contains("UPDATE t SET b = ?") && report.contains('!'),
        "{report}"
    );
    let background = Expected::from([(
        (Phase::Background, "orders".to_owned()),
        statements(&["UPDATE o SET d = ?"]),
    )]);
    let polled = statements(&["SELECT COUNT(*) FROM o", "UPDATE o SET d = ?"]);
    assert_eq!(compare(&background, &Expected::new(), &polled), "");
    assert!(!compare(&background, &Expected::new(), &polled[..1]).is_empty());
}

#[test]
fn the_checked_in_script_parses() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT);
    let text = std::fs::read_to_string(&script).expect("bench/pgbench/checkout.sql");
    let parsed = parse_script(&text).unwrap_or_else(|err| panic!("{SCRIPT}: {err}"));
    assert!(parsed.keys().any(|(phase, _)| *phase == Phase::Order));
}
