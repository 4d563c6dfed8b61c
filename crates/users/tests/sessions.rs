//! `POST /api/sessions`, `GET /api/users/me` and `GET /.well-known/jwks.json`
//! over real HTTP on SQLite and PostgreSQL.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{apps, assert_limited, assert_problem, spawn_app, spawn_app_with};
use serde_json::Value;
use shop_common::auth::TokenVerifier;
use shop_testkit::TestDatabase;
use shop_testkit::send;
use shop_users::routes::CLIENT_IP_HEADER;

#[tokio::test]
async fn login_by_username_or_email_issues_a_bearer_token() {
    for app in apps().await {
        let registered: Value = app
            .register("carol", "Carol@Example.com", "correct horse battery")
            .await
            .json()
            .await
            .expect("json");
        for login in ["carol", "CAROL", "carol@example.com", "Carol@Example.com"] {
            let response = app.login(login, "correct horse battery").await;
            assert_eq!(response.status(), 200, "{}: {login}", app.engine);
            let session: Value = response.json().await.expect("json");
            assert_eq!(session["token_type"], "Bearer");
            assert_eq!(session["expires_in"], 900);
            let token = session["access_token"].as_str().expect("token");
            let claims = app.issuer.verifier().verify(token).expect("valid token");
            assert_eq!(claims.sub, registered["id"].as_str().expect("id"));
        }
    }
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer() {
    for app in apps().await {
        app.register_as("dave").await;
        let wrong = app.login("dave", "wrong horse battery").await;
        let unknown = app.login("nobody", "wrong horse battery").await;
        assert_eq!(
            wrong.headers()["www-authenticate"],
            unknown.headers()["www-authenticate"]
        );
        let wrong = assert_problem(wrong, 401, "wrong password").await;
        let unknown = assert_problem(unknown, 401, "unknown user").await;
        assert_eq!(
            wrong, unknown,
            "{}: the body must not reveal which accounts exist",
            app.engine
        );
        let overlong = app.login(&"x".repeat(20_000), &"y".repeat(20_000)).await;
        assert_eq!(assert_problem(overlong, 401, "overlong").await, unknown);
        let missing = app
            .post_json("/api/sessions", &serde_json::json!({"login": "dave"}))
            .await;
        assert_problem(missing, 422, "missing password").await;
    }
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_client_and_login() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    app.register_as("erin").await;
    for attempt in 0..5 {
        assert_eq!(
            app.login("erin", "wrong horse battery").await.status(),
            401,
            "attempt {attempt}"
        );
    }
    let limited = app.login("Erin", "correct horse battery").await;
    assert_limited(limited, 300, "sixth attempt, even with the right password").await;

    app.register_as("frank").await;
    assert_eq!(
        app.login("frank", "correct horse battery").await.status(),
        200,
        "other logins are unaffected"
    );
}

#[tokio::test]
async fn a_successful_login_resets_the_failure_count() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    app.register_as("gina").await;
    for round in 0..3 {
        for _ in 0..4 {
            assert_eq!(app.login("gina", "wrong horse battery").await.status(), 401);
        }
        assert_eq!(
            app.login("gina", "correct horse battery").await.status(),
            200,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn me_returns_the_caller_and_rejects_bad_tokens() {
    for app in apps().await {
        let token = app.token_for("hank").await;
        let me: Value = app.me(Some(&token)).await.json().await.expect("json");
        assert_eq!(me["username"], "hank", "{}", app.engine);

        let now = jsonwebtoken::get_current_timestamp();
        let subject = me["id"].as_str().expect("id");
        let expired = app
            .issuer
            .issue_at(subject, now - 7200, now - 3600)
            .expect("token")
            .token;
        let ghost = app
            .issuer
            .issue(&uuid::Uuid::now_v7().to_string())
            .expect("token")
            .token;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload =
            String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("utf8");
        let forged_sub = payload.replace(subject, &uuid::Uuid::now_v7().to_string());
        parts[1] = URL_SAFE_NO_PAD.encode(forged_sub);
        let tampered = parts.join(".");
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            app.issuer.kid()
        ));
        let alg_none = format!("{header}.{}.", parts[1]);

        for (name, bad) in [
            ("expired", expired),
            ("unknown user", ghost),
            ("tampered", tampered),
            ("alg none", alg_none),
        ] {
            assert_problem(app.me(Some(&bad)).await, 401, name).await;
        }
        assert_problem(app.me(None).await, 401, "no token").await;
    }
}

#[tokio::test]
async fn the_published_jwks_verifies_issued_tokens() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    let token = app.token_for("ivan").await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200);
    let jwks: jsonwebtoken::jwk::JwkSet = response.json().await.expect("jwks");
    let verifier = TokenVerifier::new(
        shop_common::auth::DEFAULT_ISSUER,
        shop_common::auth::DEFAULT_AUDIENCE,
    );
    assert_eq!(verifier.set_keys(&jwks), 1);
    assert!(verifier.verify(&token).is_ok());
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready: Value = app.get("/readyz").await.json().await.expect("json");
    assert_eq!(ready["checks"]["database"], "ok");
    app.login("nobody", "whatever").await;
    // Metrics are not on the API port: only on the admin listener.
    assert_problem(app.get("/metrics").await, 404, "/metrics on the API port").await;
    let metrics = app.scrape().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.contains(r#"service="users""#)
                && line.contains(r#"route="/api/sessions""#)
                && line.contains(r#"status="401""#)),
        "{metrics}"
    );
}

#[tokio::test]
async fn behind_the_gateway_failures_count_per_resolved_client_address() {
    let app = spawn_app_with(TestDatabase::sqlite(), |settings| {
        settings.login_limit.trust_forwarded_for = true;
    })
    .await;
    app.register_as("ivy").await;
    let attempt = |client_ip: &'static str, forwarded_for: &'static str| {
        let request = app.login_request("ivy", "wrong horse battery");
        send(
            request
                .header(CLIENT_IP_HEADER, client_ip)
                .header("x-forwarded-for", forwarded_for),
        )
    };
    // A client rotating X-Forwarded-For gains nothing: the gateway's resolved address counts.
    for (i, spoof) in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            attempt("198.51.100.1", spoof).await.status(),
            401,
            "attempt {i}"
        );
    }
    assert_eq!(attempt("198.51.100.1", "6.6.6.6").await.status(), 429);
    assert_eq!(
        attempt("198.51.100.2", "6.6.6.6").await.status(),
        401,
        "another client is not limited"
    );
}

#[tokio::test]
async fn concurrent_wrong_guesses_are_limited_before_any_is_verified() {
    const LIMIT: u32 = 5;
    let app = spawn_app_with(TestDatabase::sqlite(), |settings| {
        settings.login_limit.max_failures = LIMIT;
    })
    .await;
    app.register_as("jack").await;
    let passwords: Vec<String> = (0..50).map(|i| format!("wrong horse {i}")).collect();
    let guesses = passwords.iter().map(|password| app.login("jack", password));
    let mut verified = 0;
    let mut limited = 0;
    for response in futures::future::join_all(guesses).await {
        match response.status().as_u16() {
            401 => verified += 1,
            429 => {
                assert_limited(response, 300, "a guess over the limit").await;
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        verified <= LIMIT,
        "{verified} of 50 concurrent guesses were verified; the limit is {LIMIT}"
    );
    assert_eq!(verified + limited, 50);
    assert_limited(
        app.login("jack", "correct horse battery").await,
        300,
        "the right password while limited",
    )
    .await;
}

#[tokio::test]
async fn guesses_at_one_account_are_limited_together_across_logins_and_clients() {
    const ACCOUNT_LIMIT: u32 = 6;
    let app = spawn_app_with(TestDatabase::sqlite(), |settings| {
        settings.login_limit.trust_forwarded_for = true;
        settings.login_limit.account_max_failures = ACCOUNT_LIMIT;
        settings.login_limit.account_window_secs = 600;
    })
    .await;
    app.register("kate", "Kate@example.com", "correct horse battery")
        .await;
    app.register_as("liam").await;
    // Each (client, login) pair guesses once, far below the per-client limit
    // of 5: only a per-account count can stop this spraying.
    let sprayers = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    let mut guesses = 0;
    for client in sprayers {
        for login in ["kate", "KATE@example.com"] {
            let response = app.login_from(client, login, "wrong horse battery").await;
            assert_eq!(response.status(), 401, "{client} {login}");
            guesses += 1;
        }
    }
    assert_eq!(guesses, ACCOUNT_LIMIT);
    let fresh = "a fresh client with the right password, once the account is limited";
    let known = app
        .login_from("198.51.100.9", "kate@example.com", "correct horse battery")
        .await;
    let known = assert_limited(known, 600, fresh).await;
    assert_eq!(
        app.login_from("198.51.100.9", "liam", "correct horse battery")
            .await
            .status(),
        200,
        "other accounts are unaffected"
    );

    // An unknown login counts the same way and answers the same, so the
    // limiter does not tell which accounts exist.
    for client in sprayers.into_iter().chain(sprayers) {
        let response = app
            .login_from(client, "nobody", "wrong horse battery")
            .await;
        assert_eq!(response.status(), 401, "{client}");
    }
    let unknown = app
        .login_from("198.51.100.9", "nobody", "wrong horse battery")
        .await;
    let unknown = assert_limited(unknown, 600, "an unknown login past the account limit").await;
    assert_eq!(known, unknown);
}

#[tokio::test]
async fn any_password_that_registers_can_log_in_and_overlong_ones_just_fail() {
    for app in apps().await {
        // Characters of one to four bytes, at and past the 256-character
        // bound: the first four register, the last two are refused.
        let candidates = [
            "é".repeat(256),
            "€".repeat(256),
            "😀".repeat(256),
            "x".repeat(256),
            "😀".repeat(257),
            "€".repeat(300),
        ];
        let mut registered = 0;
        for (i, password) in candidates.iter().enumerate() {
            let username = format!("long{i}");
            let response = app
                .register(&username, &format!("{username}@example.com"), password)
                .await;
            match response.status().as_u16() {
                201 => {
                    registered += 1;
                    assert_eq!(
                        app.login(&username, password).await.status(),
                        200,
                        "{}: a {}-byte password registered but cannot log in",
                        app.engine,
                        password.len()
                    );
                }
                422 => {}
                other => panic!("{}: unexpected status {other}", app.engine),
            }
        }
        assert_eq!(registered, 4, "{}", app.engine);

        app.register_as("mona").await;
        let wrong = assert_problem(
            app.login("mona", "wrong horse battery").await,
            401,
            "wrong password",
        )
        .await;
        for overlong in ["é".repeat(1_000), "x".repeat(257), "😀".repeat(257)] {
            let response = app.login("mona", &overlong).await;
            assert_eq!(
                assert_problem(response, 401, "an overlong password").await,
                wrong,
                "{}",
                app.engine
            );
        }
    }
}

#[tokio::test]
async fn the_token_response_is_never_stored() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    app.register_as("nina").await;
    let response = app.login("nina", "correct horse battery").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
}
