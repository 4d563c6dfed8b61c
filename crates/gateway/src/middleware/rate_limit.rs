//! A per-client rate limit: a GCRA token bucket (governor) per client IP
//! address, `per_second` sustained with `burst` on top; over it, 429 with
//! `Retry-After` saying when the next request would be let through.
//!
//! The client is the TCP peer; behind a trusted proxy (see
//! [`crate::config::ProxySettings`]) it is the last `X-Forwarded-For`
//! entry, the one that proxy added. Buckets of clients that went quiet are
//! dropped once a minute, so memory follows the number of active clients.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, StatusCode};
use shop_common::error::Problem;

use super::{Verdict, guard_layer, reject};
use crate::config::RateLimitSettings;

/// How often buckets of quiet clients are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The shared state of [`RateLimitLayer`].
#[derive(Clone)]
pub struct Limiter {
    buckets: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded: bool,
}

guard_layer!(
    /// Limits the request rate of each client IP with 429.
    RateLimitLayer,
    RateLimit,
    Limiter,
    (),
    check
);

impl RateLimitLayer {
    /// A layer with the rate and burst of `settings`; `None` when rate
    /// limiting is off or a value is zero. Starts the pruning task (it ends
    /// with the last clone of the layer), so it needs a Tokio runtime.
    pub fn new(settings: &RateLimitSettings, trust_forwarded: bool) -> Option<Self> {
        if !settings.enabled {
            return None;
        }
        let quota = Quota::per_second(NonZeroU32::new(settings.per_second)?)
            .allow_burst(NonZeroU32::new(settings.burst)?);
        let buckets = Arc::new(RateLimiter::keyed(quota));
        tokio::spawn(prune(Arc::downgrade(&buckets)));
        Some(Self {
            state: Limiter {
                buckets,
                trust_forwarded,
            },
        })
    }
}

async fn prune(buckets: Weak<DefaultKeyedRateLimiter<IpAddr>>) {
    loop {
        tokio::time::sleep(PRUNE_INTERVAL).await;
        let Some(buckets) = buckets.upgrade() else {
            return;
        };
        buckets.retain_recent();
        buckets.shrink_to_fit();
    }
}

/// The client address a request is counted against.
pub fn client_ip(request: &Request, trust_forwarded: bool) -> IpAddr {
    if trust_forwarded && let Some(ip) = last_forwarded_for(request.headers()) {
        return ip;
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get_all("x-forwarded-for").iter().next_back()?;
    value.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
}

fn check(limiter: &Limiter, request: &mut Request) -> Verdict<()> {
    let client = client_ip(request, limiter.trust_forwarded);
    match limiter.buckets.check_key(&client) {
        Ok(()) => Verdict::Pass(()),
        Err(not_until) => {
            let wait = not_until.wait_time_from(limiter.buckets.clock().now());
            Verdict::Refuse(reject(
                "rate_limited",
                Problem::with_detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests from this client; slow down",
                )
                .retry_after(wait.as_secs_f64().ceil() as u64),
            ))
        }
    }
}
