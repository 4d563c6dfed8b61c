//! Test support shared by every ferroshop crate's tests.
//!
//! - [`TestDatabase`]: a fresh, empty database per test, on SQLite (a temp
//!   file) or on PostgreSQL (a new database named by a UUID on the server in
//!   `SHOP_TEST_POSTGRES_URL`). [`databases`] yields one of each so a store
//!   test runs its body against both.
//! - [`etcd_endpoints`]: the throwaway etcd that `scripts/test.sh` starts.
//! - [`TestService`]: a started service's URLs, client and database, stopped
//!   when dropped; [`send`] and [`scrape`] for requests; [`assert_problem`]
//!   and [`metric_value`] for reading answers; [`started`] wraps a service
//!   a test spawned in-process, [`per_database`] starts one on each engine.
//! - [`assert_limited`]: a 429 that says when to retry.
//! - [`otlp::OtlpReceiver`]: an OTLP/gRPC trace receiver collecting the
//!   spans services export to it.
//!
//! `scripts/test.sh` starts PostgreSQL and etcd and exports their URLs. When
//! a URL is missing, tests that need it are skipped with a note on stderr —
//! except under `CI=true`, where a missing server fails the test instead.

// Test support: a broken test machine (no temp dir, unreachable test server)
// should fail the test loudly, so panicking is the point here.
#![allow(clippy::expect_used, clippy::panic)]

mod http;
pub mod otlp;
mod settings;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub use http::{TestService, scrape, send};
pub use settings::assert_rejected;

/// Environment variable holding an admin URL of the test PostgreSQL server.
pub const POSTGRES_ENV: &str = "SHOP_TEST_POSTGRES_URL";
/// Environment variable holding the comma-separated endpoints of the test etcd.
pub const ETCD_ENV: &str = "SHOP_TEST_ETCD_ENDPOINTS";

/// The address tests bind their services to (with port 0).
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Whether `TEST_LOG` asks for the services' logs on the test's output.
pub fn test_log() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

/// Which engine a [`TestDatabase`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// A fresh, empty database for one test. A SQLite file is removed with its
/// directory when this is dropped; a PostgreSQL database lives as long as the
/// throwaway server `scripts/test.sh` started.
#[derive(Debug)]
pub struct TestDatabase {
    /// The engine.
    pub engine: Engine,
    /// The URL to connect to.
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    /// A new SQLite database file in its own temporary directory.
    ///
    /// # Panics
    /// If no temporary directory can be created (a broken test machine).
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite:{}", dir.path().join("test.db").display());
        Self {
            engine: Engine::Sqlite,
            url,
            _dir: Some(dir),
        }
    }

    /// A new database on the test PostgreSQL server, or `None` when
    /// `SHOP_TEST_POSTGRES_URL` is not set (outside CI).
    ///
    /// # Panics
    /// Under `CI=true` when the server is not configured, and whenever the
    /// configured server cannot be reached or the database not created.
    pub async fn postgres() -> Option<Self> {
        let admin_url = required_env(POSTGRES_ENV)?;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!("cannot reach the test PostgreSQL at {POSTGRES_ENV}: {err}")
            });
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
        conn.close().await.ok();
        Some(Self {
            engine: Engine::Postgres,
            url: with_database(&admin_url, &name),
            _dir: None,
        })
    }
}

/// SQLite and, when configured, PostgreSQL: the engines a test that builds
/// its own databases (a whole stack on one engine) runs on. Creates nothing.
///
/// # Panics
/// Under `CI=true` when PostgreSQL is not configured.
pub fn engines() -> Vec<Engine> {
    let mut all = vec![Engine::Sqlite];
    all.extend(required_env(POSTGRES_ENV).map(|_| Engine::Postgres));
    all
}

/// One fresh SQLite database and, when configured, one fresh PostgreSQL
/// database: run a store test's body for each.
pub async fn databases() -> Vec<TestDatabase> {
    let mut all = vec![TestDatabase::sqlite()];
    all.extend(TestDatabase::postgres().await);
    all
}

/// `start` run once per database of [`databases`]: one service (or any
/// per-database fixture) on each engine.
pub async fn per_database<T>(start: impl AsyncFn(TestDatabase) -> T) -> Vec<T> {
    let mut all = Vec::new();
    for db in databases().await {
        all.push(start(db).await);
    }
    all
}

/// A [`TestService`] for a service the test already spawned, listening on
/// `api` and `admin`: `running` (its handle, which stops the service when
/// dropped) is kept until the [`TestService`] is dropped.
pub fn started(
    api: impl fmt::Display,
    admin: impl fmt::Display,
    running: impl Send + 'static,
    db: TestDatabase,
) -> TestService {
    let stop = CancellationToken::new();
    let dropped = stop.clone();
    tokio::spawn(async move {
        dropped.cancelled().await;
        drop(running);
    });
    TestService::new(api, admin, stop, db)
}

/// The endpoints of the test etcd, or `None` when `SHOP_TEST_ETCD_ENDPOINTS`
/// is not set (outside CI).
///
/// # Panics
/// Under `CI=true` when the variable is not set.
pub fn etcd_endpoints() -> Option<Vec<String>> {
    required_env(ETCD_ENV).map(|value| value.split(',').map(str::trim).map(str::to_owned).collect())
}

/// Reads a server URL from the environment; missing is a skip outside CI and
/// a failure in CI.
fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            let in_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
            assert!(
                !in_ci,
                "{name} is not set: under CI=true every test server must be available (run scripts/test.sh)"
            );
            eprintln!(
                "note: {name} is not set; skipping the part of this test that needs it (run scripts/test.sh)"
            );
            None
        }
    }
}

/// `url` with its database path replaced by `/name` (query kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Asserts that `response` is an RFC 9457 problem+json answer with `status`
/// (HTTP status, media type, the body's `status`, and a `type` and `title`)
/// and returns its body; `context` names the case in a failure.
///
/// # Panics
/// When any of that does not hold — that is the assertion.
pub async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    context: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status, "{context}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{context}"
    );
    let body: serde_json::Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "{context}");
    assert!(
        body["title"].is_string() && body["type"].is_string(),
        "{context}: {body}"
    );
    body
}

/// Asserts a 429 problem+json answer whose `Retry-After` is a whole number
/// of seconds within `1..=window_secs`, and returns its body; `context`
/// names the case in a failure.
///
/// # Panics
/// When any of that does not hold — that is the assertion.
pub async fn assert_limited(
    response: reqwest::Response,
    window_secs: u64,
    context: &str,
) -> serde_json::Value {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{context}: no Retry-After"))
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (1..=window_secs).contains(&retry_after),
        "{context}: Retry-After {retry_after}"
    );
    assert_problem(response, 429, context).await
}

/// The value of the first series of metric `name` in Prometheus text whose
/// labels include all of `labels` (none: any series, or an unlabelled one);
/// `None` when there is none.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!(r#"{key}="{value}""#))
        .collect();
    text.lines()
        .find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels.iter().all(|label| line.contains(label.as_str()))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn a_metric_is_found_by_name_and_labels() {
        let text =
            "# TYPE a counter\na_total{x=\"1\",y=\"2\"} 3\na_total{x=\"2\"} 4\nab_total 9\nb 5\n";
        assert_eq!(metric_value(text, "a_total", &[("x", "2")]), Some(4.0));
        assert_eq!(metric_value(text, "a_total", &[]), Some(3.0));
        assert_eq!(metric_value(text, "b", &[]), Some(5.0));
        assert_eq!(
            metric_value(text, "a", &[]),
            None,
            "a prefix of another name"
        );
        assert_eq!(metric_value(text, "a_total", &[("x", "3")]), None);
    }

    use super::*;

    #[test]
    fn database_names_replace_the_path() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u@h:1/p?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
    }
}
