//! The upstream client's own HTTP/1 connection pool against a real hyper
//! server on loopback that counts its connections: reuse, a request that
//! meets a stale pooled connection, idle expiry, an upstream that closes
//! every connection, and response bodies that break or are dropped.
//!
//! The server runs on a runtime of its own, in its own thread, so a test can
//! close the server's connections while the client's runtime is held: the
//! client then finds out only when it hands a request to a pooled
//! connection, which is the race a stale connection is.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed setup should fail the test

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, get, post, settings, text};
use http::StatusCode;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use shop_discovery::{
    Instance, PolicySettings, Registration, Registry, UpstreamClient, UpstreamSettings,
};
use tokio::sync::mpsc;

const SERVICE: &str = "catalog";

/// Commands to the server's thread.
enum Command {
    /// Close every open connection, then answer.
    Close(std::sync::mpsc::Sender<()>),
}

/// A hyper HTTP/1 server on its own thread and runtime, counting the
/// connections it accepted and those still open.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Upstream {
    /// A server keeping connections alive when `keep_alive`, or closing
    /// each after its response (saying so with `connection: close`).
    fn start(keep_alive: bool) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (commands, mut receiver) = mpsc::unbounded_channel();
        let (counted, still_open) = (Arc::clone(&accepted), Arc::clone(&open));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            counted.fetch_add(1, Ordering::SeqCst);
                            still_open.fetch_add(1, Ordering::SeqCst);
                            let guard = OpenGuard(Arc::clone(&still_open));
                            connections.spawn(async move {
                                let _guard = guard;
                                let service = hyper::service::service_fn(answer);
                                hyper::server::conn::http1::Builder::new()
                                    .keep_alive(keep_alive)
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await
                                    .ok();
                            });
                        }
                        command = receiver.recv() => match command {
                            Some(Command::Close(done)) => {
                                connections.shutdown().await;
                                done.send(()).ok();
                            }
                            None => return,
                        },
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                }
            });
        });
        Self {
            addr,
            accepted,
            open,
            commands,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Closes every connection the server has open and returns once they
    /// are closed — blocking the calling thread, so a client on it cannot
    /// notice before its next request.
    fn close_connections_blocking(&self) {
        let (done, closed) = std::sync::mpsc::channel();
        self.commands.send(Command::Close(done)).unwrap();
        closed.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    /// A registry holding this server as the one instance of [`SERVICE`],
    /// and a client of it.
    fn client(&self, adjust: impl FnOnce(&mut UpstreamSettings)) -> (UpstreamClient, Registration) {
        let registry = Registry::in_process();
        let registration = registry
            .register(Instance::new(SERVICE, "only", self.addr.to_string()))
            .unwrap();
        let mut settings = settings(PolicySettings::RoundRobin);
        adjust(&mut settings);
        let client = UpstreamClient::new(SERVICE, &settings, &registry).unwrap();
        (client, registration)
    }
}

/// Counts a connection as open until its task ends or is aborted.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

/// `/broken`: a chunked body cut off after its first chunk. `/endless`: a
/// first chunk, then nothing, ever. `/echo`: the request body. Anything
/// else: `ok`.
async fn answer(request: http::Request<Incoming>) -> Result<http::Response<Body>, Infallible> {
    let body = match request.uri().path() {
        "/broken" => {
            let first = futures::stream::iter([Ok(Frame::data(Bytes::from_static(b"first;")))]);
            // Later, so the head and first chunk are out before the cut.
            let cut = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("cut off"))
            });
            StreamBody::new(futures::StreamExt::chain(first, cut)).boxed()
        }
        "/endless" => {
            let first = futures::stream::iter([Ok(Frame::data(Bytes::from_static(b"first;")))]);
            StreamBody::new(futures::StreamExt::chain(first, futures::stream::pending())).boxed()
        }
        "/echo" => {
            let bytes = request
                .into_body()
                .collect()
                .await
                .map_or_else(|_| Bytes::new(), http_body_util::Collected::to_bytes);
            Full::new(bytes).map_err(|never| match never {}).boxed()
        }
        _ => Full::new(Bytes::from_static(b"ok"))
            .map_err(|never| match never {})
            .boxed(),
    };
    Ok(http::Response::new(body))
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection_and_concurrent_ones_a_few() {
    let upstream = Upstream::start(true);
    let (client, _registration) = upstream.client(|_| {});
    for _ in 0..20 {
        let response = client.send(get("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "ok");
    }
    assert_eq!(upstream.accepted(), 1, "one connection, reused");

    for _ in 0..5 {
        let calls = (0..8).map(|_| {
            let client = client.clone();
            async move { text(client.send(get("/")).await.unwrap()).await }
        });
        for body in futures::future::join_all(calls).await {
            assert_eq!(body, "ok");
        }
    }
    assert!(
        upstream.accepted() <= 9,
        "at most one connection per concurrent request: {}",
        upstream.accepted()
    );
}

#[tokio::test]
async fn a_post_that_meets_a_stale_pooled_connection_is_sent_on_a_fresh_one() {
    let upstream = Upstream::start(true);
    let (client, _registration) = upstream.client(|_| {});
    let response = client.send(post("/echo", "one")).await.unwrap();
    assert_eq!(text(response).await, "one");

    // The server closes its idle connection while the client's runtime is
    // held; one yield lets the runtime see the close, but whether the
    // connection's task or this request gets there first is up to the
    // scheduler: the pool either skips the closed connection or, when it
    // has handed the request over already, gets it back unsent and sends
    // it on a fresh one. A POST is never retried by the client's retry
    // rules (one instance, nothing else to try): only the pool can make it
    // succeed. (A close that crosses a request already written is an
    // error, as with any HTTP/1 client: the server may have acted on it.)
    upstream.close_connections_blocking();
    tokio::task::yield_now().await;
    let response = client.send(post("/echo", "two")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "two");
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn connections_the_server_closed_while_idle_are_not_used_again() {
    let upstream = Upstream::start(true);
    let (client, _registration) = upstream.client(|_| {});
    for round in 1..=3 {
        let response = client.send(post("/echo", "again")).await.unwrap();
        assert_eq!(text(response).await, "again");
        upstream.close_connections_blocking();
        // Let the client see the close this time.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(upstream.accepted(), round);
    }
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let upstream = Upstream::start(true);
    let (client, _registration) = upstream.client(|settings| settings.pool_idle_timeout_ms = 100);
    assert_eq!(text(client.send(get("/")).await.unwrap()).await, "ok");
    assert_eq!(upstream.open(), 1);
    assert!(
        eventually(Duration::from_secs(5), || upstream.open() == 0).await,
        "the idle connection was closed by the client"
    );
    assert_eq!(text(client.send(get("/")).await.unwrap()).await, "ok");
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn an_upstream_closing_every_connection_gets_a_new_one_per_request() {
    let upstream = Upstream::start(false);
    let (client, _registration) = upstream.client(|_| {});
    for _ in 0..10 {
        let response = client.send(post("/echo", "once")).await.unwrap();
        assert_eq!(text(response).await, "once");
    }
    assert_eq!(upstream.accepted(), 10);
    assert!(eventually(Duration::from_secs(5), || upstream.open() == 0).await);
}

#[tokio::test]
async fn a_body_cut_off_is_an_error_and_its_connection_is_not_reused() {
    let upstream = Upstream::start(true);
    let (client, _registration) = upstream.client(|_| {});
    let response = client.send(get("/broken")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.into_body().collect().await.is_err());

    assert_eq!(text(client.send(get("/")).await.unwrap()).await, "ok");
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
    let upstream = Upstream::start(true);
    let (client, _registration) = upstream.client(|_| {});
    let mut response = client.send(get("/endless")).await.unwrap();
    let first = response.body_mut().frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first;");
    drop(response);
    assert_eq!(text(client.send(get("/")).await.unwrap()).await, "ok");
    assert_eq!(upstream.accepted(), 2);
    assert!(
        eventually(Duration::from_secs(5), || upstream.open() == 1).await,
        "the dropped body's connection was closed"
    );
}

#[tokio::test]
async fn no_more_idle_connections_are_kept_than_allowed() {
    let upstream = Upstream::start(true);
    let (client, _registration) = upstream.client(|settings| settings.pool_max_idle_per_host = 1);
    let calls = (0..4).map(|_| {
        let client = client.clone();
        async move { client.send(get("/")).await.unwrap() }
    });
    // Four responses held at once: four connections.
    let responses = futures::future::join_all(calls).await;
    for response in responses {
        assert_eq!(text(response).await, "ok");
    }
    assert!(
        eventually(Duration::from_secs(5), || upstream.open() == 1).await,
        "all but one were closed once idle: {} open",
        upstream.open()
    );
}
