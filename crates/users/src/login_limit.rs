//! Login limiting: attempts counted per client and login, and per account,
//! in bounded memory.
//!
//! Two counters guard every login:
//! - **per client and login** — at most `max_failures` failed attempts for
//!   one (client address, case-folded login) within `window_secs`;
//! - **per account** — at most `account_max_failures` failed attempts on one
//!   account within `account_window_secs`, from any client and under any of
//!   its logins: the key is the user id, so the username and the email share
//!   it. A login that names no account counts under a key derived from the
//!   folded login, with the same limit and the same answers, so the limiter
//!   does not tell which accounts exist.
//!
//! Past a limit, attempts answer 429 with `Retry-After` until the window that
//! began with the first counted attempt ends — even with the right password,
//! which is not verified then.
//!
//! An attempt *takes a slot before its password is verified*
//! ([`LoginLimiter::reserve`], then [`LoginLimiter::reserve_account`]). So a
//! burst of concurrent guesses gets at most the limit's worth of verifies: a
//! check that only later-recorded failures would close lets the whole burst
//! through. A failed attempt keeps its slots ([`LoginLimiter::failed`], or
//! dropping the [`Reservation`]); a success clears the client count and gives
//! the account slot back ([`LoginLimiter::succeeded`]), so a user who types
//! the right password is not throttled by their own typos from that client,
//! while one success cannot wipe what a spray across many clients has
//! counted. An attempt that never reached the verify (the store failed, or
//! the account was limited) gives its slots back ([`LoginLimiter::release`]).
//!
//! The limiter reads no header: it counts whatever client address it is
//! given. The routes pass the TCP peer or, when `trust_forwarded_for` is on,
//! the address the gateway resolved and put in
//! [`shop_common::wire::CLIENT_IP`] (`x-shop-client-ip`), overwriting
//! whatever a client sent there ([`crate::routes::AppState::client_addr`]).
//! Despite the setting's name, `X-Forwarded-For` is never read.
//!
//! Memory is bounded whatever clients send: a key is a keyed 64-bit SipHash
//! of the address and folded login (fixed size, however long the login), and
//! each counter map is a `moka` cache capped at `max_entries` whose entries
//! expire with their window. Its TinyLFU admission keeps counters that keep
//! being hit (a guessed account) over a flood of one-off keys, so flooding
//! distinct logins neither grows memory nor cheaply evicts a live count.
//!
//! The counters live in memory, per instance: with `n` replicas behind a
//! balancer, a client may get up to `n` times each limit.

use std::hash::BuildHasher;
use std::hash::RandomState;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;
use serde::Deserialize;
use uuid::Uuid;

/// Longest window accepted: keeps `Instant` arithmetic far from overflow and
/// a mistyped value from locking logins out for years.
pub const MAX_WINDOW_SECS: u64 = 86_400;

/// Login limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimitSettings {
    /// Failed attempts allowed per client address and login within
    /// `window_secs` (default 5): a person mistyping gets a few tries, a
    /// guesser from one address gets very few.
    pub max_failures: u32,
    /// Length of the per-client window in seconds, 1 to 86 400 (default 300).
    pub window_secs: u64,
    /// Failed attempts allowed per account within `account_window_secs`,
    /// from all clients together (default 20). Bounds password spraying from
    /// many addresses; set it well above `max_failures`, because anyone can
    /// spend it and so keep the account's owner out for a window.
    pub account_max_failures: u32,
    /// Length of the per-account window in seconds, 1 to 86 400 (default
    /// 900): 20 guesses per 15 minutes is under 2 000 a day per account.
    pub account_window_secs: u64,
    /// Most counters kept in each of the two maps (default 50 000). A counter
    /// costs about 360 bytes with the cache's bookkeeping (measured), so both
    /// maps full hold about 35 MiB, within the pod's memory limit next to
    /// Argon2's 19 MiB per hash in flight. Past the cap the least useful
    /// counters are evicted: memory stays bounded under a flood of distinct
    /// logins or addresses.
    pub max_entries: u64,
    /// Take the client address from the gateway's
    /// [`shop_common::wire::CLIENT_IP`] header (`x-shop-client-ip`, which the
    /// gateway overwrites with the address it resolved), not from
    /// `X-Forwarded-For`, which is never read (default false). Turn it on
    /// only when nothing but the gateway can reach this service: any other
    /// caller could pick its own address per attempt.
    pub trust_forwarded_for: bool,
}

impl Default for LoginLimitSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_secs: 300,
            account_max_failures: 20,
            account_window_secs: 900,
            max_entries: 50_000,
            trust_forwarded_for: false,
        }
    }
}

/// Whose account an attempt is on, once the login has been looked up.
#[derive(Debug, Clone, Copy)]
pub enum Account<'a> {
    /// The login names this user (by username or by email).
    Known(Uuid),
    /// The login names nobody; counted under the folded login itself.
    Unknown(&'a str),
}

/// Slots an attempt holds. Dropping it keeps them: the attempt counts as
/// failed (as when a client hangs up mid-verify).
#[derive(Debug)]
#[must_use = "hand the reservation back with succeeded, failed or release"]
pub struct Reservation {
    client: Slot,
    account: Option<Slot>,
}

/// One taken slot: the counter's key and the start of the window it was
/// taken in, so that giving it back never touches a later window.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    started: Instant,
}

/// Attempts counted in one window.
#[derive(Debug, Clone, Copy)]
struct Count {
    used: u32,
    started: Instant,
}

/// One map of counters with its limit.
#[derive(Debug)]
struct Counters {
    max: u32,
    window: Duration,
    map: Cache<u64, Count>,
}

impl Counters {
    fn new(max: u32, window_secs: u64, max_entries: u64) -> Self {
        let window = Duration::from_secs(window_secs.min(MAX_WINDOW_SECS));
        Self {
            max,
            window,
            map: Cache::builder()
                .max_capacity(max_entries)
                // An entry can be dropped once its window is over; a count
                // updated late in its window may linger up to one more.
                .time_to_live(window.max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// Takes a slot under `key`, or says how long until one frees up. Atomic
    /// per key: concurrent callers are serialized, so at most `max` succeed
    /// per window.
    fn take(&self, key: u64) -> Result<Slot, Duration> {
        let now = Instant::now();
        let mut outcome = Ok(Slot { key, started: now });
        self.map
            .entry(key)
            .and_compute_with(|entry| match entry.map(moka::Entry::into_value) {
                Some(count) if now < count.started + self.window => {
                    if count.used >= self.max {
                        outcome = Err(count.started + self.window - now);
                        Op::Nop
                    } else {
                        outcome = Ok(Slot {
                            key,
                            started: count.started,
                        });
                        Op::Put(Count {
                            used: count.used + 1,
                            ..count
                        })
                    }
                }
                _ => Op::Put(Count {
                    used: 1,
                    started: now,
                }),
            });
        outcome
    }

    /// Gives a slot back, if its window is still the current one.
    fn give_back(&self, slot: Slot) {
        self.map.entry(slot.key).and_compute_with(|entry| {
            match entry.map(moka::Entry::into_value) {
                Some(count) if count.started == slot.started => match count.used {
                    0 | 1 => Op::Remove,
                    used => Op::Put(Count {
                        used: used - 1,
                        ..count
                    }),
                },
                _ => Op::Nop,
            }
        });
    }

    fn clear(&self, slot: Slot) {
        self.map.invalidate(&slot.key);
    }

    fn len(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }
}

/// Counts login attempts per (client address, folded login) and per account.
#[derive(Debug)]
pub struct LoginLimiter {
    clients: Counters,
    accounts: Counters,
    /// Keys SipHash with a random per-process key, so nobody can craft
    /// logins whose counters collide with someone else's.
    keys: RandomState,
}

impl LoginLimiter {
    /// A limiter with the given limits.
    pub fn new(settings: &LoginLimitSettings) -> Self {
        Self {
            clients: Counters::new(
                settings.max_failures,
                settings.window_secs,
                settings.max_entries,
            ),
            accounts: Counters::new(
                settings.account_max_failures,
                settings.account_window_secs,
                settings.max_entries,
            ),
            keys: RandomState::new(),
        }
    }

    /// Takes a slot for an attempt by `client` on `login`, before the login is
    /// looked up or any password verified.
    ///
    /// # Errors
    /// How long to wait, when this client has used up its attempts on `login`.
    pub fn reserve(&self, client: IpAddr, login: &str) -> Result<Reservation, Duration> {
        let key = self.keys.hash_one((client, fold(login)));
        Ok(Reservation {
            client: self.clients.take(key)?,
            account: None,
        })
    }

    /// Takes a slot on the account the login resolved to, before its password
    /// is verified. On refusal the client slot is given back: nothing was
    /// verified, so nothing was guessed.
    ///
    /// # Errors
    /// How long to wait, when the account has used up its attempts.
    pub fn reserve_account(
        &self,
        reservation: Reservation,
        account: Account<'_>,
    ) -> Result<Reservation, Duration> {
        let key = match account {
            Account::Known(id) => self.keys.hash_one((0_u8, id)),
            Account::Unknown(login) => self.keys.hash_one((1_u8, fold(login))),
        };
        match self.accounts.take(key) {
            Ok(slot) => Ok(Reservation {
                account: Some(slot),
                ..reservation
            }),
            Err(wait) => {
                self.release(reservation);
                Err(wait)
            }
        }
    }

    /// The password was right: clears the client's count and gives the
    /// account slot back.
    pub fn succeeded(&self, reservation: Reservation) {
        self.clients.clear(reservation.client);
        if let Some(slot) = reservation.account {
            self.accounts.give_back(slot);
        }
    }

    /// The password was wrong (or the login unknown): the slots stay taken
    /// until their windows end.
    pub fn failed(&self, reservation: Reservation) {
        let Reservation { .. } = reservation;
    }

    /// The attempt never reached the verify (for example the store failed):
    /// gives every slot back.
    pub fn release(&self, reservation: Reservation) {
        self.clients.give_back(reservation.client);
        if let Some(slot) = reservation.account {
            self.accounts.give_back(slot);
        }
    }

    /// How many counters are held in all, after pending evictions and
    /// expiries have been applied; for tests and diagnostics.
    pub fn tracked(&self) -> u64 {
        self.clients.len() + self.accounts.len()
    }
}

/// The login as the store matches it (case-insensitively).
fn fold(login: &str) -> String {
    login.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    fn limiter(window_secs: u64) -> LoginLimiter {
        LoginLimiter::new(&LoginLimitSettings {
            max_failures: 3,
            window_secs,
            account_max_failures: 5,
            ..LoginLimitSettings::default()
        })
    }

    /// One whole failed attempt: both slots taken and kept.
    fn fail(limiter: &LoginLimiter, client: IpAddr, login: &str, account: Account<'_>) {
        let reservation = limiter.reserve(client, login).expect("client slot");
        let reservation = limiter
            .reserve_account(reservation, account)
            .expect("account slot");
        limiter.failed(reservation);
    }

    #[test]
    fn slots_are_taken_before_verifying_and_kept_by_failures() {
        let limiter = limiter(60);
        let held: Vec<_> = (0..3)
            .map(|_| limiter.reserve(CLIENT, "alice").expect("free slot"))
            .collect();
        let wait = limiter
            .reserve(CLIENT, "ALICE")
            .expect_err("all slots taken");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(limiter.reserve(CLIENT, "bob").is_ok(), "other logins");
        assert!(limiter.reserve(OTHER, "alice").is_ok(), "other clients");
        for reservation in held {
            limiter.failed(reservation);
        }
        assert!(limiter.reserve(CLIENT, "Alice").is_err(), "failures stay");
    }

    #[test]
    fn a_success_clears_the_client_and_gives_the_account_slot_back() {
        let limiter = limiter(60);
        let id = Uuid::now_v7();
        fail(&limiter, CLIENT, "alice", Account::Known(id));
        fail(&limiter, CLIENT, "alice", Account::Known(id));
        let reservation = limiter.reserve(CLIENT, "alice").expect("slot");
        let reservation = limiter
            .reserve_account(reservation, Account::Known(id))
            .expect("slot");
        limiter.succeeded(reservation);
        for _ in 0..3 {
            fail(&limiter, CLIENT, "alice", Account::Known(id));
        }
        assert!(
            limiter.reserve(CLIENT, "alice").is_err(),
            "three new failures after the success"
        );
        let reservation = limiter.reserve(OTHER, "alice").expect("other client");
        let wait = limiter
            .reserve_account(reservation, Account::Known(id))
            .expect_err("the account's five failures remain: 2 before, 3 after");
        assert!(
            wait > Duration::from_secs(800),
            "the account window: {wait:?}"
        );
        assert!(
            limiter.reserve(OTHER, "alice").is_ok(),
            "a refused account slot gives the client slot back"
        );
    }

    #[test]
    fn logins_of_one_account_share_its_count_and_unknown_logins_count_too() {
        let limiter = limiter(60);
        let id = Uuid::now_v7();
        for (i, login) in ["alice", "alice@example.com"]
            .iter()
            .cycle()
            .take(5)
            .enumerate()
        {
            let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8));
            fail(&limiter, client, login, Account::Known(id));
        }
        let fresh = limiter.reserve(CLIENT, "alice").expect("client slot");
        assert!(limiter.reserve_account(fresh, Account::Known(id)).is_err());

        for i in 0..5 {
            let client = IpAddr::V4(Ipv4Addr::new(10, 0, 1, i));
            fail(&limiter, client, "nobody", Account::Unknown("NoBody"));
        }
        let fresh = limiter.reserve(CLIENT, "nobody").expect("client slot");
        assert!(
            limiter
                .reserve_account(fresh, Account::Unknown("nobody"))
                .is_err()
        );
        let fresh = limiter.reserve(CLIENT, "somebody").expect("client slot");
        assert!(
            limiter
                .reserve_account(fresh, Account::Unknown("somebody"))
                .is_ok()
        );
    }

    #[test]
    fn released_slots_are_free_again_and_windows_expire() {
        let released = limiter(60);
        for _ in 0..10 {
            let reservation = released.reserve(CLIENT, "alice").expect("slot");
            released.release(reservation);
        }
        assert!(released.reserve(CLIENT, "alice").is_ok());

        let expired = limiter(0);
        for _ in 0..5 {
            fail(&expired, CLIENT, "alice", Account::Unknown("alice"));
        }
        assert!(
            expired.reserve(CLIENT, "alice").is_ok(),
            "a window of zero never blocks"
        );
    }

    #[test]
    fn many_distinct_long_logins_stay_within_the_cap() {
        let limiter = LoginLimiter::new(&LoginLimitSettings {
            max_entries: 1_000,
            ..LoginLimitSettings::default()
        });
        let padding = "x".repeat(4_000);
        for i in 0..20_000 {
            let login = format!("{i}{padding}");
            fail(&limiter, CLIENT, &login, Account::Unknown(&login));
        }
        for (name, map) in [
            ("clients", &limiter.clients),
            ("accounts", &limiter.accounts),
        ] {
            let len = map.len();
            assert!(len <= 1_000, "{len} {name} counters for a cap of 1 000");
        }
        assert!(limiter.tracked() <= 2_000);
    }
}
