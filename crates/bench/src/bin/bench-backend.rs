//! `bench-backend`: answers every request with a small fixed body.
//!
//! The backend that the gateway, nginx and HAProxy all proxy to in
//! `scripts/bench.sh`, so the comparison measures the proxies and not a
//! service. It accepts any method and path (the gateway's upstream health
//! check asks for `/readyz`; the benchmark asks for `/api/products/…` and
//! `/api/cart`) and ignores any token.

use std::net::SocketAddr;

use clap::Parser;

/// The body of every answer: small, fixed, and JSON like a real API's.
const BODY: &str = "{\"pong\":true}\n";

#[derive(Debug, Parser)]
#[command(about = "A minimal HTTP backend for proxy benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = axum::Router::new().fallback(|| async {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            BODY,
        )
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("bench-backend listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
