//! The `AuthUser` extractor over real HTTP: every bad token is a 401
//! problem+json with a Bearer challenge, and the handler never runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use shop_common::auth::{AuthUser, IssuerSettings, TokenIssuer, TokenVerifier};
use tokio::net::TcpListener;

#[derive(Clone)]
struct State {
    verifier: TokenVerifier,
    calls: Arc<AtomicUsize>,
}

impl FromRef<State> for TokenVerifier {
    fn from_ref(state: &State) -> Self {
        state.verifier.clone()
    }
}

async fn whoami(
    axum::extract::State(state): axum::extract::State<State>,
    user: AuthUser,
) -> String {
    state.calls.fetch_add(1, Ordering::SeqCst);
    user.user_id.to_string()
}

#[tokio::test]
async fn only_valid_tokens_reach_the_handler() {
    let issuer = TokenIssuer::from_settings(&IssuerSettings::default()).expect("key");
    let stranger = TokenIssuer::from_settings(&IssuerSettings::default()).expect("key");
    let calls = Arc::new(AtomicUsize::new(0));
    let state = State {
        verifier: issuer.verifier(),
        calls: Arc::clone(&calls),
    };
    let router = Router::new()
        .route("/whoami", get(whoami))
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/whoami", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();

    let user = uuid::Uuid::now_v7();
    let good = issuer.issue(&user.to_string()).expect("token").token;
    let response = client
        .get(&url)
        .bearer_auth(&good)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), user.to_string());
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let now = jsonwebtoken::get_current_timestamp();
    let expired = issuer
        .issue_at(&user.to_string(), now - 7200, now - 3600)
        .expect("token")
        .token;
    let foreign = stranger.issue(&user.to_string()).expect("token").token;
    let not_a_uuid = issuer.issue("alice").expect("token").token;
    let (head, rest) = good.split_once('.').expect("jwt");
    let tampered = format!(
        "{head}.{}",
        rest.replacen(|c: char| c.is_ascii_alphanumeric(), "A", 3)
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("basic scheme", Some("Basic YWxpY2U6cHc=".to_owned())),
        ("garbage", Some("Bearer not.a.jwt".to_owned())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("unknown key", Some(format!("Bearer {foreign}"))),
        (
            "subject not a user id",
            Some(format!("Bearer {not_a_uuid}")),
        ),
        ("tampered", Some(format!("Bearer {tampered}"))),
    ];
    for (name, header) in cases {
        let mut request = client.get(&url);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 401, "{name}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["status"], 401, "{name}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no bad token reached the handler"
    );
}
