//! The edge load balancer the shoppers go through: it spreads requests over
//! the gateways round robin, skips a gateway whose `/readyz` failed its last
//! probe (as an edge balancer's health check does), and sends a request
//! whose TCP connection could not be made to the next gateway. Those
//! fail-overs are counted apart: they are the edge's job, not errors the
//! shopper sees. Every other failure is handed back as it happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

/// How often each gateway's `/readyz` is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A probe slower than this counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a TCP connection to a gateway may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What one request came back with.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An HTTP answer.
    Status(StatusCode),
    /// No answer within the client's timeout.
    Timeout,
    /// The connection broke (reset, closed early, a malformed answer).
    Broken(String),
    /// No gateway accepted a connection.
    Unreachable,
}

impl Outcome {
    /// The label errors are counted under: the status code, or a word.
    pub fn label(&self) -> String {
        match self {
            Self::Status(status) => status.as_u16().to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Broken(_) => "broken".to_owned(),
            Self::Unreachable => "unreachable".to_owned(),
        }
    }

    /// Whether it is a failure worth a retry: a 5xx or no answer.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::Status(status) => status.is_server_error(),
            _ => true,
        }
    }
}

/// An answer: its outcome, its JSON body (when it had one) and its
/// `Location` header.
#[derive(Debug, Clone)]
pub struct Answer {
    /// What came back.
    pub outcome: Outcome,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// Connections that could not be made before one was (edge fail-overs).
    pub failovers: u32,
}

/// The balancer over the gateways.
pub struct Edge {
    client: Client,
    gateways: Vec<String>,
    ready: Vec<AtomicBool>,
    next: AtomicUsize,
    failovers: AtomicU64,
    answered: Vec<AtomicU64>,
}

/// A request to send.
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: &'a str,
    /// A bearer token.
    pub token: Option<&'a str>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<&'a str>,
    /// A JSON body.
    pub body: Option<&'a Value>,
}

impl Edge {
    /// A balancer over `gateways` (base URLs), each request bounded by
    /// `timeout`; every gateway starts ready.
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(gateways: Vec<String>, timeout: Duration) -> Result<Arc<Self>> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        let ready = gateways.iter().map(|_| AtomicBool::new(true)).collect();
        let answered = gateways.iter().map(|_| AtomicU64::new(0)).collect();
        Ok(Arc::new(Self {
            client,
            gateways: gateways
                .into_iter()
                .map(|g| g.trim_end_matches('/').to_owned())
                .collect(),
            ready,
            next: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
            answered,
        }))
    }

    /// Probes every gateway's `/readyz` each second until the balancer is
    /// dropped elsewhere (the task holds a clone; abort it to stop).
    pub fn spawn_probes(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let edge = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                for (i, gateway) in edge.gateways.iter().enumerate() {
                    let ready = edge
                        .client
                        .get(format!("{gateway}/readyz"))
                        .timeout(PROBE_TIMEOUT)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if let Some(flag) = edge.ready.get(i) {
                        flag.store(ready, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        })
    }

    /// Edge fail-overs so far (connections refused by one gateway and made
    /// to another).
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Requests each gateway answered so far, in the order of the gateways.
    pub fn answered(&self) -> Vec<u64> {
        self.answered
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    /// The gateways' base URLs.
    pub fn gateways(&self) -> &[String] {
        &self.gateways
    }

    /// The gateways in the order this request tries them: round robin from
    /// the next ready one (every gateway when none is ready).
    fn order(&self) -> Vec<usize> {
        let n = self.gateways.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let all: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let (ready, unready): (Vec<usize>, Vec<usize>) = all
            .into_iter()
            .partition(|&i| self.ready.get(i).is_some_and(|r| r.load(Ordering::Relaxed)));
        ready.into_iter().chain(unready).collect()
    }

    /// Sends `request` through the first gateway that accepts a connection.
    pub async fn send(&self, request: &Request<'_>) -> Answer {
        let mut refused = 0;
        for i in self.order() {
            let Some(gateway) = self.gateways.get(i) else {
                continue;
            };
            let mut builder = self
                .client
                .request(request.method.clone(), format!("{gateway}{}", request.path));
            if let Some(token) = request.token {
                builder = builder.bearer_auth(token);
            }
            if let Some(key) = request.idempotency_key {
                builder = builder.header("idempotency-key", key);
            }
            if let Some(body) = request.body {
                builder = builder.json(body);
            }
            match builder.send().await {
                Ok(response) => {
                    if let Some(n) = self.answered.get(i) {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    if refused > 0 {
                        self.failovers
                            .fetch_add(u64::from(refused), Ordering::Relaxed);
                    }
                    let status = response.status();
                    return match response.bytes().await {
                        Ok(bytes) => Answer {
                            outcome: Outcome::Status(status),
                            body: serde_json::from_slice(&bytes).ok(),
                            failovers: refused,
                        },
                        Err(err) if err.is_timeout() => Answer {
                            outcome: Outcome::Timeout,
                            body: None,
                            failovers: refused,
                        },
                        Err(err) => Answer {
                            outcome: Outcome::Broken(format!("{err:#}")),
                            body: None,
                            failovers: refused,
                        },
                    };
                }
                Err(err) if err.is_connect() => {
                    refused += 1;
                }
                Err(err) if err.is_timeout() => {
                    return Answer {
                        outcome: Outcome::Timeout,
                        body: None,
                        failovers: refused,
                    };
                }
                Err(err) => {
                    return Answer {
                        outcome: Outcome::Broken(error_chain(&err)),
                        body: None,
                        failovers: refused,
                    };
                }
            }
        }
        Answer {
            outcome: Outcome::Unreachable,
            body: None,
            failovers: 0,
        }
    }
}

/// An error with its causes, for the log of broken connections.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
