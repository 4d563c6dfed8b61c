//! Per-client rate limits: a GCRA token bucket (governor) per client,
//! `per_second` sustained with `burst` on top, and a stricter bucket of its
//! own for login and registration (`POST /api/sessions`, `POST /api/users`,
//! each an Argon2 hash at the users service). Over either, 429 with
//! `Retry-After` saying when the next request would be let through.
//!
//! The client is [`ClientAddr::client`](crate::headers::ClientAddr): the
//! peer, or behind a trusted proxy the address that proxy saw, or for the
//! storefront's API calls (the service credential) the browser it names —
//! so one web instance serving many people is not one client, and a person
//! is counted the same through the pages as through the API. An IPv4
//! client is its address; an IPv6 client is its prefix (`/64` by default),
//! since one subscriber holds a whole prefix and can rotate through it.
//!
//! The buckets live in a bounded cache (moka): at most `max_clients` per
//! bucket kind, an entry dropped once its client has been quiet long enough
//! for its bucket to refill — a full bucket is what a new entry starts as,
//! so expiry forgets nothing. Past the cap the least valuable entries are
//! evicted (moka's TinyLFU keeps the busiest clients, who are the ones to
//! limit), so memory stays bounded under a flood of addresses.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use http::{Method, StatusCode};
use moka::sync::Cache;
use shop_common::error::Problem;

use super::{Verdict, guard_layer, reject};
use crate::config::RateLimitSettings;
use crate::headers::{ClientAddr, ClientTrust};

/// The paths whose `POST` draws on the login bucket as well.
const LOGIN_PATHS: [&str; 2] = ["/api/sessions", "/api/users"];

/// The shared state of [`RateLimitLayer`]; cloning it is one reference count.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    general: Bucket,
    login: Bucket,
    trust: ClientTrust,
    ipv6_prefix_len: u8,
}

guard_layer!(
    /// Limits the request rate of each client with 429.
    RateLimitLayer,
    RateLimit,
    Limiter,
    (),
    check
);

impl RateLimitLayer {
    /// A layer with the buckets of `settings`, resolving clients as
    /// `trust` allows; `None` when rate limiting is off or a value is
    /// zero (which [`crate::Settings::validate`] refuses).
    pub fn new(settings: &RateLimitSettings, trust: &ClientTrust) -> Option<Self> {
        if !settings.enabled {
            return None;
        }
        let general = Quota::per_second(NonZeroU32::new(settings.per_second)?)
            .allow_burst(NonZeroU32::new(settings.burst)?);
        let login = Quota::per_minute(NonZeroU32::new(settings.login.per_minute)?)
            .allow_burst(NonZeroU32::new(settings.login.burst)?);
        Some(Self {
            state: Limiter {
                inner: Arc::new(Inner {
                    general: Bucket::new(
                        general,
                        settings.max_clients,
                        "rate_limited",
                        "too many requests from this client; slow down",
                    ),
                    login: Bucket::new(
                        login,
                        settings.max_clients,
                        "login_rate_limited",
                        "too many login or registration attempts from this client; slow down",
                    ),
                    trust: trust.clone(),
                    ipv6_prefix_len: settings.ipv6_prefix_len,
                }),
            },
        })
    }
}

/// The key a client is counted under: an IPv4 address as it is, an IPv6
/// address cut to its first `ipv6_prefix_len` bits (IPv4-mapped IPv6
/// addresses count as IPv4).
pub fn bucket_key(client: IpAddr, ipv6_prefix_len: u8) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let host_bits = 128 - u32::from(ipv6_prefix_len.min(128));
            let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
        }
    }
}

type KeyedLimiter =
    RateLimiter<IpAddr, Buckets, DefaultClock, NoOpMiddleware<<DefaultClock as Clock>::Instant>>;

/// One kind of bucket: its quota over its bounded cache, and how a
/// refusal is counted and worded.
struct Bucket {
    limiter: KeyedLimiter,
    /// The limiter's cache too (a clone shares it), to size it in tests.
    #[cfg_attr(not(test), allow(dead_code))]
    cache: Cache<IpAddr, Arc<InMemoryState>>,
    reason: &'static str,
    detail: &'static str,
}

impl Bucket {
    fn new(quota: Quota, max_clients: u64, reason: &'static str, detail: &'static str) -> Self {
        // The time an empty bucket takes to fill up again; an entry idle that
        // long is as good as a fresh one. A second on top absorbs rounding.
        let refill = quota
            .replenish_interval()
            .saturating_mul(quota.burst_size().get())
            .saturating_add(Duration::from_secs(1));
        let cache = Cache::builder()
            .max_capacity(max_clients)
            .time_to_idle(refill)
            .build();
        Self {
            limiter: RateLimiter::new(quota, Buckets(cache.clone()), DefaultClock::default()),
            cache,
            reason,
            detail,
        }
    }

    /// Takes a token of `key`'s bucket, or refuses with 429.
    fn check(&self, key: &IpAddr) -> Verdict<()> {
        match self.limiter.check_key(key) {
            Ok(()) => Verdict::Pass(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Verdict::Refuse(reject(
                    self.reason,
                    Problem::with_detail(StatusCode::TOO_MANY_REQUESTS, self.detail)
                        .retry_after(wait.as_secs_f64().ceil() as u64),
                ))
            }
        }
    }
}

/// Governor's state store over a bounded, expiring cache: one GCRA state
/// (an atomic timestamp) per key, updated in place.
struct Buckets(Cache<IpAddr, Arc<InMemoryState>>);

impl StateStore for Buckets {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0
            .get_with(*key, Arc::default)
            .measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// Whether `request` is a login or a registration.
fn is_login(request: &Request) -> bool {
    request.method() == Method::POST && LOGIN_PATHS.contains(&request.uri().path())
}

fn check(limiter: &Limiter, request: &mut Request) -> Verdict<()> {
    let inner = &*limiter.inner;
    let client = ClientAddr::of(request, &inner.trust).client;
    let key = bucket_key(client, inner.ipv6_prefix_len);
    match inner.general.check(&key) {
        Verdict::Pass(()) if is_login(request) => inner.login.check(&key),
        verdict => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoginRateLimitSettings;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn limiter(settings: RateLimitSettings) -> Limiter {
        RateLimitLayer::new(&settings, &ClientTrust::default())
            .expect("enabled")
            .state
    }

    fn request(method: Method, path: &str, peer: &str) -> Request {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let peer = std::net::SocketAddr::new(ip(peer), 4711);
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request
    }

    fn passes(limiter: &Limiter, method: Method, path: &str, peer: &str) -> bool {
        matches!(
            check(limiter, &mut request(method, path, peer)),
            Verdict::Pass(())
        )
    }

    #[test]
    fn ipv6_clients_are_keyed_by_prefix_and_ipv4_by_address() {
        let key = |client: &str, len| bucket_key(ip(client), len);
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), ip("2001:db8:1:2::"));
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            ip("2001:db8:1:2::")
        );
        assert_ne!(key("2001:db8:1:3::1", 64), key("2001:db8:1:2::1", 64));
        assert_eq!(key("2001:db8:1:2ff::1", 56), ip("2001:db8:1:200::"));
        assert_eq!(key("2001:db8::1", 128), ip("2001:db8::1"));
        assert_eq!(key("198.51.100.7", 64), ip("198.51.100.7"));
        assert_ne!(key("198.51.100.7", 64), key("198.51.100.8", 64));
        assert_eq!(key("::ffff:198.51.100.7", 64), ip("198.51.100.7"));
    }

    #[test]
    fn the_bucket_map_stays_bounded_under_a_flood_of_addresses() {
        let limiter = limiter(RateLimitSettings {
            max_clients: 100,
            ..RateLimitSettings::default()
        });
        for i in 0..5_000u32 {
            let peer = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            assert!(passes(&limiter, Method::GET, "/api/products", &peer));
        }
        let cache = &limiter.inner.general.cache;
        cache.run_pending_tasks();
        assert!(
            cache.entry_count() <= 100,
            "{} buckets",
            cache.entry_count()
        );
    }

    #[test]
    fn buckets_of_quiet_clients_are_forgotten_once_full_again() {
        // A bucket of one that refills in a millisecond: kept about a second.
        let limiter = limiter(RateLimitSettings {
            per_second: 1_000,
            burst: 1,
            ..RateLimitSettings::default()
        });
        for peer in ["198.51.100.1", "198.51.100.2", "2001:db8::1"] {
            assert!(passes(&limiter, Method::GET, "/api/products", peer));
        }
        let cache = &limiter.inner.general.cache;
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 3);
        std::thread::sleep(Duration::from_millis(1_300));
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 0);
    }

    #[test]
    fn login_and_registration_draw_on_a_stricter_bucket_of_their_own() {
        let limiter = limiter(RateLimitSettings {
            per_second: 1_000,
            burst: 1_000,
            login: LoginRateLimitSettings {
                per_minute: 1,
                burst: 2,
            },
            ..RateLimitSettings::default()
        });
        let peer = "198.51.100.7";
        assert!(passes(&limiter, Method::POST, "/api/sessions", peer));
        assert!(passes(&limiter, Method::POST, "/api/users", peer));
        assert!(!passes(&limiter, Method::POST, "/api/sessions", peer));
        assert!(!passes(&limiter, Method::POST, "/api/users", peer));
        // Other requests, and other clients, are not held back by it.
        assert!(passes(&limiter, Method::GET, "/api/users/me", peer));
        assert!(passes(&limiter, Method::GET, "/api/products", peer));
        assert!(passes(
            &limiter,
            Method::POST,
            "/api/sessions",
            "198.51.100.8"
        ));
    }
}
