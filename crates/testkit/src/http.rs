//! Requests a test sends and the answers it reads: sending without a status
//! check, and scraping a service's Prometheus text from its admin listener.

use crate::{Engine, TestDatabase};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Sends `request` and returns the answer, whatever its status.
///
/// # Panics
/// When nothing answers (connection refused, reset, timed out): a test that
/// expects no answer checks `send()`'s error itself.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("request sent")
}

/// `GET {admin}/metrics`, asserting a 200 answer in Prometheus text; returns
/// the text (read it with [`crate::metric_value`]).
///
/// # Panics
/// When the scrape does not answer 200 `text/plain` — that is the assertion.
pub async fn scrape(client: &reqwest::Client, admin: &str) -> String {
    let response = send(client.get(format!("{admin}/metrics"))).await;
    assert_eq!(response.status(), 200, "{admin}/metrics");
    let content_type = response.headers()["content-type"].clone();
    assert!(
        content_type
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain")),
        "{admin}/metrics: {content_type:?}"
    );
    response.text().await.expect("metrics text")
}

/// One service a test started over its own [`TestDatabase`]: where it
/// listens, a client, and the database. Dropping it stops the service (its
/// stop token is cancelled) and then removes the database.
#[derive(Debug)]
pub struct TestService {
    /// The API listener's base URL (`http://127.0.0.1:port`).
    pub base: String,
    /// The admin listener's base URL (`/metrics`, probes).
    pub admin: String,
    /// A client for the test's requests.
    pub client: reqwest::Client,
    /// The database's engine, for failure messages.
    pub engine: Engine,
    /// The database's URL, for reading or arranging data directly.
    pub db_url: String,
    _stop: DropGuard,
    _db: TestDatabase,
}

impl TestService {
    /// A handle on a service listening on `api` and `admin` (socket
    /// addresses or `host:port`), stopped through `stop` when dropped.
    pub fn new(
        api: impl std::fmt::Display,
        admin: impl std::fmt::Display,
        stop: CancellationToken,
        db: TestDatabase,
    ) -> Self {
        Self {
            base: format!("http://{api}"),
            admin: format!("http://{admin}"),
            client: reqwest::Client::new(),
            engine: db.engine,
            db_url: db.url.clone(),
            _stop: stop.drop_guard(),
            _db: db,
        }
    }

    /// The absolute URL of `path` on the API listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` on the API listener (with its query string as given).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        send(self.client.get(self.url(path))).await
    }

    /// `POST path` on the API listener with a JSON `body`.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        send(self.client.post(self.url(path)).json(body)).await
    }

    /// The admin listener's `/metrics`, checked as in [`scrape`].
    pub async fn scrape(&self) -> String {
        scrape(&self.client, &self.admin).await
    }
}
