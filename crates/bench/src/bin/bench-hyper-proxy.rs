//! `bench-hyper-proxy`: the least a proxy built on axum and hyper can do —
//! one handler passing every request to one backend through hyper's pooled
//! client, with no middleware, discovery or resilience.
//!
//! `scripts/bench.sh` runs it next to the gateway, nginx and HAProxy as a
//! reference: the distance from it to the gateway is what ferroshop's own
//! layers cost; the distance from it to nginx is what the HTTP stack costs.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The same allocator as ferroshop's binaries (`shop_common::alloc`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "A minimal axum + hyper reverse proxy for proxy benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// The backend every request goes to.
    #[arg(long, default_value = "127.0.0.1:9000")]
    backend: SocketAddr,
}

#[derive(Clone)]
struct Proxy {
    client: Client<HttpConnector, Body>,
    backend: SocketAddr,
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    parts.uri = match format!("http://{}{path}", proxy.backend).parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    parts.headers.remove(header::HOST);
    match proxy.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(Body::new),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let proxy = Proxy {
        client: Client::builder(TokioExecutor::new()).build(connector),
        backend: args.backend,
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("bench-hyper-proxy listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
