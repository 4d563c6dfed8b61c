//! Rotating the signing key across two users replicas while tokens flow,
//! following docs/operations.md ("Secrets and key rotation"), one replica
//! restarted at a time: no valid token is rejected by a verifier that
//! fetches the key set through the balanced users upstream, every key a
//! replica publishes stays trusted however the fetches land, and the
//! retired key stops being trusted once its grace period is over.

#![allow(clippy::expect_used)] // test helpers: a failed setup should fail the test

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use shop_common::auth::{
    IssuerSettings, TokenError, TokenIssuer, TokenVerifier, VerifierSettings,
    generate_signing_key_pem,
};
use shop_discovery::{
    JwksSource, PolicySettings, Registry, RequestBody, UpstreamClient, UpstreamSettings,
};
use shop_testkit::TestDatabase;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Token lifetime: short, so that waiting it out between phases is quick.
const TTL_SECS: u64 = 4;
/// The verifier's refresh interval.
const REFRESH: Duration = Duration::from_millis(100);
/// The verifier's grace period.
const GRACE: Duration = Duration::from_secs(2);
/// Long enough for every verifier to have fetched from every replica
/// (round robin over two) several times.
const SETTLE: Duration = Duration::from_millis(600);
const PASSWORD: &str = "correct horse battery";

/// A running users replica.
struct Replica {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Replica {
    /// Starts a replica over the shared database, in the shared registry,
    /// signing with `signing` and publishing `published` beside it.
    async fn start(
        db: &TestDatabase,
        registry: &Registry,
        signing: &Path,
        published: &[&Path],
    ) -> Self {
        let mut settings = common::settings(db);
        settings.auth.signing_key_file = Some(signing.to_path_buf());
        settings.auth.published_key_files =
            published.iter().map(|path| path.to_path_buf()).collect();
        settings.auth.token_ttl_secs = TTL_SECS;
        settings.validate().expect("valid settings");
        let app = shop_users::Application::build_in(settings, registry.clone())
            .await
            .expect("the users replica starts");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Self { addr, stop, task }
    }

    /// Stops the replica (it deregisters, then drains) and waits for it.
    async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("replica task")
            .expect("stopped cleanly");
    }
}

/// A rejected token: when, signed by which key, and why.
struct Rejection {
    step: &'static str,
    what: &'static str,
    kid: String,
    error: String,
}

/// What the client side shares with the test body.
struct Traffic {
    /// Keys some live replica has published for at least [`SETTLE`]: a
    /// fresh token signed by each must verify.
    probes: Mutex<Vec<Arc<TokenIssuer>>>,
    step: Mutex<&'static str>,
    rejections: Mutex<Vec<Rejection>>,
    /// Logged-in tokens verified, by kid.
    verified: Mutex<BTreeMap<String, usize>>,
    login_failures: AtomicUsize,
    done: AtomicBool,
}

impl Traffic {
    fn step(&self) -> &'static str {
        *self.step.lock().expect("lock")
    }

    fn reject(&self, what: &'static str, kid: String, error: &TokenError) {
        self.rejections.lock().expect("lock").push(Rejection {
            step: self.step(),
            what,
            kid,
            error: error.to_string(),
        });
    }
}

/// The `exp` the issuing replica wrote into `token`.
fn exp_of(token: &str) -> u64 {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .and_then(|claims| claims["exp"].as_u64())
        .unwrap_or_default()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|header| header.kid)
        .unwrap_or_default()
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Logs in through `users` (round robin: each replica in turn).
async fn login(users: &UpstreamClient) -> Option<String> {
    let body = serde_json::to_vec(&json!({"login": "rotor", "password": PASSWORD})).ok()?;
    let request = Request::post("/api/sessions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(RequestBody::full(body))
        .ok()?;
    let response = users.send(request).await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let body = response.into_body().bytes(64 * 1024).await.ok()?;
    let session: Value = serde_json::from_slice(&body).ok()?;
    session["access_token"].as_str().map(str::to_owned)
}

/// Logs in again and again, and verifies every token logged in so far that
/// has not expired, plus a fresh token of every probed key, the way a
/// service does it ([`TokenVerifier::verify_fresh`]).
async fn run_traffic(users: UpstreamClient, verifier: TokenVerifier, traffic: Arc<Traffic>) {
    let mut live: Vec<(String, u64)> = Vec::new();
    while !traffic.done.load(Ordering::SeqCst) {
        match login(&users).await {
            Some(token) => {
                let exp = exp_of(&token);
                live.push((token, exp));
            }
            None => {
                traffic.login_failures.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Valid means unexpired, without counting the verifier's leeway.
        let now = now_secs();
        live.retain(|(_, exp)| *exp >= now);
        for (token, _) in &live {
            match verifier.verify_fresh(token).await {
                Ok(_) => {
                    *traffic
                        .verified
                        .lock()
                        .expect("lock")
                        .entry(kid_of(token))
                        .or_default() += 1;
                }
                Err(err) => traffic.reject("logged-in token", kid_of(token), &err),
            }
        }
        let probes = traffic.probes.lock().expect("lock").clone();
        for key in probes {
            let token = key.issue("probe").expect("signs").token;
            if let Err(err) = verifier.verify_fresh(&token).await {
                traffic.reject("published key", key.kid().to_owned(), &err);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_key(dir: &Path, name: &str) -> (PathBuf, Arc<TokenIssuer>) {
    let pem = generate_signing_key_pem().expect("pem");
    let path = dir.join(name);
    std::fs::write(&path, &pem).expect("key written");
    let issuer = TokenIssuer::from_settings(&IssuerSettings {
        signing_key_file: Some(path.clone()),
        ..IssuerSettings::default()
    })
    .expect("key loads");
    (path, Arc::new(issuer))
}

fn round_robin() -> UpstreamSettings {
    UpstreamSettings {
        balance: PolicySettings::RoundRobin,
        ..UpstreamSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_signing_key_across_two_replicas_rejects_no_valid_token() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (old, old_key) = write_key(keys.path(), "old.pem");
    let (new, new_key) = write_key(keys.path(), "new.pem");
    let db = TestDatabase::sqlite();
    let registry = Registry::in_process();

    let a = Replica::start(&db, &registry, &old, &[]).await;
    let b = Replica::start(&db, &registry, &old, &[]).await;
    let registered = reqwest::Client::new()
        .post(format!("http://{}/api/users", a.addr))
        .json(&json!({"username": "rotor", "email": "rotor@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(registered.status(), 201);

    // A verifying service: its users upstream balances round robin, so
    // fetches alternate between the replicas.
    let users = UpstreamClient::new("users", &round_robin(), &registry).expect("users upstream");
    assert!(users.wait_for_instances(2, Duration::from_secs(5)).await);
    let verifier = TokenVerifier::from_settings(
        &VerifierSettings {
            jwks_refresh_ms: REFRESH.as_millis() as u64,
            key_grace_secs: GRACE.as_secs(),
            ..VerifierSettings::default()
        },
        Arc::new(JwksSource::new(users.clone())),
    );
    let traffic = Arc::new(Traffic {
        probes: Mutex::new(vec![Arc::clone(&old_key)]),
        step: Mutex::new("before"),
        rejections: Mutex::new(Vec::new()),
        verified: Mutex::new(BTreeMap::new()),
        login_failures: AtomicUsize::new(0),
        done: AtomicBool::new(false),
    });
    let client = tokio::spawn(run_traffic(
        users.clone(),
        verifier.clone(),
        Arc::clone(&traffic),
    ));
    let step = |name: &'static str| *traffic.step.lock().expect("lock") = name;
    let probe = |keys: &[&Arc<TokenIssuer>]| {
        *traffic.probes.lock().expect("lock") = keys.iter().map(|key| Arc::clone(key)).collect();
    };
    tokio::time::sleep(SETTLE).await;

    // Phase 1: publish the new key beside the old one, still signing with
    // the old one. Half-way, one replica publishes {old, new}, the other
    // {old}: once learnt, the new key must stay trusted.
    step("phase 1: a restarted");
    a.stop().await;
    let a = Replica::start(&db, &registry, &old, &[&new]).await;
    tokio::time::sleep(SETTLE).await;
    probe(&[&old_key, &new_key]);
    tokio::time::sleep(SETTLE).await;
    step("phase 1: b restarted");
    b.stop().await;
    let b = Replica::start(&db, &registry, &old, &[&new]).await;
    // The documented wait: every verifier refreshes once after phase 1.
    tokio::time::sleep(SETTLE).await;

    // Phase 2: sign with the new key, publishing the old one beside it.
    step("phase 2: a restarted");
    a.stop().await;
    let a = Replica::start(&db, &registry, &new, &[&old]).await;
    tokio::time::sleep(SETTLE).await;
    step("phase 2: b restarted");
    b.stop().await;
    let b = Replica::start(&db, &registry, &new, &[&old]).await;
    // The documented wait: the token lifetime, so that no token signed with
    // the old key is still valid.
    tokio::time::sleep(Duration::from_secs(TTL_SECS + 1)).await;

    // Phase 3: drop the old key. Half-way, only b still publishes it.
    step("phase 3: a restarted");
    a.stop().await;
    let a = Replica::start(&db, &registry, &new, &[]).await;
    tokio::time::sleep(SETTLE).await;
    step("phase 3: b restarted");
    probe(&[&new_key]);
    b.stop().await;
    let stopped_publishing = Instant::now();
    let b = Replica::start(&db, &registry, &new, &[]).await;

    // Nothing publishes the old key any more: it stays trusted for the
    // grace period after it was last fetched, then no longer.
    let late = old_key.issue("late").expect("signs").token;
    let trusted_within_grace = verifier.verify_fresh(&late).await.is_ok();
    let dropped_after = loop {
        let elapsed = stopped_publishing.elapsed();
        match verifier.verify_fresh(&late).await {
            Err(TokenError::UnknownKey(_)) => break Some(elapsed),
            _ if elapsed > GRACE + Duration::from_secs(5) => break None,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    tokio::time::sleep(SETTLE).await;

    traffic.done.store(true, Ordering::SeqCst);
    client.await.expect("traffic task");
    let rejections = std::mem::take(&mut *traffic.rejections.lock().expect("lock"));
    let mut by_step: BTreeMap<String, usize> = BTreeMap::new();
    for r in rejections.iter() {
        *by_step
            .entry(format!("{}: {}", r.step, r.what))
            .or_default() += 1;
    }
    let first: Vec<String> = rejections
        .iter()
        .take(3)
        .map(|r| format!("{}: {} ({}): {}", r.step, r.what, r.kid, r.error))
        .collect();
    assert!(
        rejections.is_empty(),
        "{} valid tokens rejected: {by_step:#?}, the first: {first:#?}",
        rejections.len()
    );
    assert!(
        trusted_within_grace,
        "the old key was dropped at once, not after its grace period"
    );
    let dropped_after = dropped_after.unwrap_or_else(|| {
        panic!("the old key is still trusted {GRACE:?} + 5 s after the last replica stopped publishing it")
    });
    assert!(
        dropped_after >= GRACE / 2,
        "dropped after {dropped_after:?}: the grace period is {GRACE:?}"
    );
    assert_eq!(verifier.kids(), vec![new_key.kid().to_owned()]);
    let verified = traffic.verified.lock().expect("lock").clone();
    for (name, key) in [("old", &old_key), ("new", &new_key)] {
        let count = verified.get(key.kid()).copied().unwrap_or_default();
        assert!(
            count >= 20,
            "only {count} tokens of the {name} key verified: {verified:?}"
        );
    }
    let failures = traffic.login_failures.load(Ordering::SeqCst);
    assert!(failures <= 10, "{failures} logins failed");
    a.stop().await;
    b.stop().await;
}
