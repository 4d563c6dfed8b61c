//! `shop-bench`: the pieces `scripts/bench.sh` needs that the shelf tools
//! (wrk, nginx, HAProxy) do not provide.
//!
//! - `bench-backend`: the smallest useful HTTP server, answering every request
//!   with a fixed body, so that a proxy measurement measures the proxy.
//! - `bench-checkout`: N users who log in once and then, in a loop, put an
//!   item in their cart and place an order, through the gateway.
//!
//! Neither is a test: no timing here is asserted anywhere.

pub mod stats;
