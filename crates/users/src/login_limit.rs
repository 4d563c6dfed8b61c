//! Failed-login limiting per client address and login.
//!
//! After `max_failures` failed attempts for the same (client, login) within
//! `window_secs`, further attempts answer 429 with `Retry-After` until the
//! window that began with the first failure ends. A success clears the count.
//! Counting failures only (not all attempts) means a user who types the right
//! password is never throttled by their own earlier logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Entries kept before expired ones are swept; bounds memory under a flood of
/// distinct logins.
const SWEEP_THRESHOLD: usize = 10_000;

/// Failed-login limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimitSettings {
    /// Failed attempts allowed per client and login within the window.
    pub max_failures: u32,
    /// Length of the window in seconds.
    pub window_secs: u64,
    /// Take the client address from the first `X-Forwarded-For` entry (set
    /// this only behind a proxy that sets it, such as the gateway).
    pub trust_forwarded_for: bool,
}

impl Default for LoginLimitSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_secs: 300,
            trust_forwarded_for: false,
        }
    }
}

#[derive(Debug)]
struct Window {
    failures: u32,
    started: Instant,
}

/// Counts failed logins per (client address, folded login).
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    windows: Mutex<HashMap<(IpAddr, String), Window>>,
}

impl LoginLimiter {
    /// A limiter with the given limits.
    pub fn new(settings: &LoginLimitSettings) -> Self {
        Self {
            max_failures: settings.max_failures,
            window: Duration::from_secs(settings.window_secs),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when this client has used up its failures for `login`.
    pub fn check(&self, client: IpAddr, login: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let windows = self.lock();
        match windows.get(&(client, login.to_lowercase())) {
            Some(window) if window.failures >= self.max_failures => {
                let ends = window.started + self.window;
                if ends > now { Err(ends - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn record_failure(&self, client: IpAddr, login: &str) {
        let now = Instant::now();
        let mut windows = self.lock();
        if windows.len() >= SWEEP_THRESHOLD {
            windows.retain(|_, window| window.started + self.window > now);
        }
        let window = windows
            .entry((client, login.to_lowercase()))
            .or_insert(Window {
                failures: 0,
                started: now,
            });
        if window.started + self.window <= now {
            *window = Window {
                failures: 0,
                started: now,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// Forgets the failures of a successful login.
    pub fn record_success(&self, client: IpAddr, login: &str) {
        self.lock().remove(&(client, login.to_lowercase()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(IpAddr, String), Window>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn limiter(window_secs: u64) -> LoginLimiter {
        LoginLimiter::new(&LoginLimitSettings {
            max_failures: 3,
            window_secs,
            trust_forwarded_for: false,
        })
    }

    #[test]
    fn blocks_after_max_failures_per_client_and_login() {
        let limiter = limiter(60);
        for _ in 0..3 {
            assert!(limiter.check(CLIENT, "Alice").is_ok());
            limiter.record_failure(CLIENT, "alice");
        }
        let wait = limiter.check(CLIENT, "ALICE").expect_err("blocked");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(
            limiter.check(CLIENT, "bob").is_ok(),
            "other logins unaffected"
        );
        assert!(
            limiter
                .check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), "alice")
                .is_ok(),
            "other clients unaffected"
        );
    }

    #[test]
    fn success_clears_and_windows_expire() {
        let limiter = limiter(60);
        limiter.record_failure(CLIENT, "alice");
        limiter.record_failure(CLIENT, "alice");
        limiter.record_success(CLIENT, "alice");
        limiter.record_failure(CLIENT, "alice");
        assert!(limiter.check(CLIENT, "alice").is_ok());

        let expired = limiter_with_zero_window();
        for _ in 0..5 {
            expired.record_failure(CLIENT, "alice");
        }
        assert!(
            expired.check(CLIENT, "alice").is_ok(),
            "a window of zero never blocks"
        );
    }

    fn limiter_with_zero_window() -> LoginLimiter {
        limiter(0)
    }
}
