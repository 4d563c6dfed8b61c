//! The HTTP/1 connection pool of an upstream client, on hyper's
//! connection-level API (`hyper::client::conn::http1`), as linkerd2-proxy
//! drives its own connections: per instance, a list of idle connections
//! ready for a request.
//!
//! A try takes the most recently used idle connection of its instance (or
//! opens one, with the connect timeout), sends on it, and its response body
//! puts the connection back when it ends; a body dropped before its end
//! takes the connection with it (hyper closes it). Each connection is
//! driven by its own task. Idle connections are closed after the idle
//! timeout, by a sweep and on checkout.
//!
//! A request that met a stale pooled connection — closed by the server
//! while idle, noticed only when the request was handed to it — is sent on
//! the next idle or a fresh connection, as hyper-util's pooled client does
//! (`retry_canceled_requests`): hyper gives the request back untouched
//! when none of it was written. On a fresh connection that is a try that
//! reached no server (see `TryFailure::Unsent`).
//!
//! Why not hyper-util's pooled client, which gRPC (HTTP/2) still uses: it
//! costs a dispatch through its pool's bookkeeping and, when a connection
//! is not ready the moment a response arrives, a spawned task per request
//! to put it back; this pool is a lock, a `Vec` push and pop per request
//! (see `docs/benchmarks.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::Uri;
use http::uri::Authority;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_util::sync::CancellationToken;
use tower::Service as _;

use super::body::RequestBody;
use crate::error::BoxError;

/// The sending half of one HTTP/1 connection.
type Sender = SendRequest<RequestBody>;

/// The HTTP/1 connections of one upstream client, per instance address.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    connector: HttpConnector,
    idle: Mutex<HashMap<Authority, Vec<Idle>>>,
    idle_timeout: Duration,
    max_idle: usize,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// A connection checked out for one request. Put it back with
/// [`Pooled::release`] once the response body has ended; dropping it
/// closes the connection once hyper is done with it.
pub(crate) struct Pooled {
    sender: Sender,
    key: Authority,
    pool: Weak<Shared>,
    /// Whether it served an earlier request (so may be stale).
    reused: bool,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("key", &self.key)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

/// Why a request got no response on a pooled connection.
pub(crate) enum SendError {
    /// No connection could be made (refused, unresolvable, timed out).
    Connect(BoxError),
    /// A fresh connection closed before any of the request was written.
    Unsent(BoxError),
    /// The connection failed after the request may have been sent.
    Protocol(BoxError),
}

impl Pool {
    /// A pool connecting with `connector`, keeping at most `max_idle` idle
    /// connections per instance for at most `idle_timeout` each.
    pub(crate) fn new(connector: HttpConnector, idle_timeout: Duration, max_idle: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                connector,
                idle: Mutex::new(HashMap::new()),
                idle_timeout,
                max_idle,
            }),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to the instance at
    /// `authority` on an idle connection or a new one, and returns the
    /// response with the connection it came on.
    pub(crate) async fn send(
        &self,
        authority: &Authority,
        mut request: http::Request<RequestBody>,
    ) -> Result<(http::Response<hyper::body::Incoming>, Pooled), SendError> {
        loop {
            let mut pooled = match self.checkout(authority).await {
                Some(pooled) => pooled,
                None => self.connect(authority).await.map_err(SendError::Connect)?,
            };
            match pooled.sender.try_send_request(request).await {
                Ok(response) => return Ok((response, pooled)),
                Err(mut err) => match err.take_message() {
                    // A stale idle connection: none of the request went
                    // out, so it goes on the next one (ending, at worst,
                    // on a fresh connection).
                    Some(unsent) if pooled.reused => {
                        tracing::debug!(error = %err.error(), "pooled connection was stale; sending on another");
                        request = unsent;
                    }
                    Some(_) => return Err(SendError::Unsent(err.into_error().into())),
                    None if err.error().is_canceled() => {
                        return Err(SendError::Unsent(err.into_error().into()));
                    }
                    None => return Err(SendError::Protocol(err.into_error().into())),
                },
            }
        }
    }

    /// The most recently used idle connection to `authority` that is still
    /// open and not expired, waiting for it to be ready (its task may not
    /// have finished the previous exchange yet).
    async fn checkout(&self, authority: &Authority) -> Option<Pooled> {
        loop {
            let idle = {
                let mut all = self.shared.lock();
                let list = all.get_mut(authority)?;
                let idle = list.pop()?;
                if idle.since.elapsed() >= self.shared.idle_timeout {
                    // The newest one expired, so have all older ones.
                    list.clear();
                    continue;
                }
                idle
            };
            let mut sender = idle.sender;
            if sender.is_closed() {
                continue;
            }
            if !sender.is_ready() && sender.ready().await.is_err() {
                continue;
            }
            return Some(Pooled {
                sender,
                key: authority.clone(),
                pool: Arc::downgrade(&self.shared),
                reused: true,
            });
        }
    }

    /// A new connection to `authority`, driven by its own task.
    async fn connect(&self, authority: &Authority) -> Result<Pooled, BoxError> {
        let uri = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()?;
        let io = self.shared.connector.clone().call(uri).await?;
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(Pooled {
            sender,
            key: authority.clone(),
            pool: Arc::downgrade(&self.shared),
            reused: false,
        })
    }

    /// Closes idle connections past the idle timeout every so often, until
    /// `stop` or the pool is dropped.
    pub(crate) fn sweep(&self, stop: CancellationToken) -> impl Future<Output = ()> + use<> {
        let shared = Arc::downgrade(&self.shared);
        let every = (self.shared.idle_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(30));
        async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = interval.tick() => {}
                }
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                // Dropped outside the lock: a sender's drop wakes its task.
                let mut expired = Vec::new();
                {
                    let mut all = shared.lock();
                    all.retain(|_, list| {
                        // Oldest first: expired ones are a prefix.
                        let keep = list
                            .iter()
                            .position(|idle| {
                                idle.since.elapsed() < shared.idle_timeout
                                    && !idle.sender.is_closed()
                            })
                            .unwrap_or(list.len());
                        expired.extend(list.drain(..keep));
                        list.retain(|idle| !idle.sender.is_closed());
                        !list.is_empty()
                    });
                }
                drop(expired);
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Authority, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pooled {
    /// Puts the connection back in its pool, once the response is over.
    pub(crate) fn release(self) {
        let Some(shared) = self.pool.upgrade() else {
            return;
        };
        if self.sender.is_closed() || shared.max_idle == 0 {
            return;
        }
        let mut all = shared.lock();
        let list = all.entry(self.key).or_default();
        if list.len() < shared.max_idle {
            list.push(Idle {
                sender: self.sender,
                since: Instant::now(),
            });
        }
    }
}
