//! `shop-bench`: the pieces `scripts/bench.sh` needs that the shelf tools
//! (wrk, nginx, HAProxy) do not provide.
//!
//! - `bench-backend`: the smallest useful HTTP server, answering every request
//!   with a fixed body, so that a proxy measurement measures the proxy.
//! - `bench-checkout`: N users who log in once and then, in a loop, put an
//!   item in their cart and place an order, through the gateway.
//! - `bench-growth`: seeds the catalog, orders and users to a size and
//!   measures the index-backed paths' latency at it ([`growth`]).
//!
//! None of them is a test: no timing here is asserted anywhere.

pub mod growth;
pub mod stats;

use std::net::IpAddr;

/// Whether `url` names this machine (`localhost` or a loopback address):
/// the load generators refuse any other target — they are benchmarks, not
/// load testing tools to point at someone else's server.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
