//! `POST /api/users` over real HTTP on SQLite and PostgreSQL.

mod common;

use common::{apps, assert_problem};
use futures::future::join_all;
use serde_json::{Value, json};
use shop_testkit::send;

#[tokio::test]
async fn registration_returns_the_user_without_password_material() {
    for app in apps().await {
        let response = app
            .register("Alice", "Alice@Example.com", "correct horse battery")
            .await;
        assert_eq!(response.status(), 201, "{}", app.engine);
        let text = response.text().await.expect("body");
        assert!(
            !text.to_lowercase().contains("password") && !text.contains("argon2"),
            "{text}"
        );
        let user: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(user["username"], "alice", "usernames are stored folded");
        assert_eq!(
            user["email"], "Alice@Example.com",
            "emails are kept as typed"
        );
        let id = user["id"].as_str().expect("id");
        assert_eq!(
            uuid::Uuid::parse_str(id).expect("uuid").get_version_num(),
            7
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(user["created_at"].as_str().expect("time"))
                .is_ok()
        );
    }
}

#[tokio::test]
async fn taken_usernames_and_emails_are_409_case_insensitively() {
    for app in apps().await {
        app.register_as("bob").await;
        for (username, email, problem) in [
            ("BOB", "other@example.com", "username-taken"),
            ("robert", "BOB@EXAMPLE.COM", "email-taken"),
        ] {
            let taken = app.register(username, email, "correct horse battery").await;
            let body = assert_problem(taken, 409, problem).await;
            assert_eq!(
                body["type"],
                format!("/problems/{problem}"),
                "{}",
                app.engine
            );
        }
        assert_eq!(app.user_count().await, 1, "{}", app.engine);
    }
}

#[tokio::test]
async fn concurrent_duplicate_registrations_create_exactly_one_user() {
    for app in apps().await {
        let emails: Vec<String> = (0..12).map(|i| format!("racer{i}@example.com")).collect();
        let same_name = emails
            .iter()
            .map(|email| app.register("racer", email, "correct horse battery"));
        let statuses = statuses_of(same_name).await;
        assert_eq!(
            (count(&statuses, 201), count(&statuses, 409)),
            (1, 11),
            "{}: {statuses:?}",
            app.engine
        );

        let names: Vec<String> = (0..12).map(|i| format!("mail{i}")).collect();
        let same_email = names
            .iter()
            .map(|name| app.register(name, "Same@Example.com", "correct horse battery"));
        let statuses = statuses_of(same_email).await;
        assert_eq!(count(&statuses, 201), 1, "{}: {statuses:?}", app.engine);
        assert_eq!(app.user_count().await, 2, "{}", app.engine);
    }
}

/// The statuses of `requests`, sent all at once.
async fn statuses_of(
    requests: impl IntoIterator<Item = impl Future<Output = reqwest::Response>>,
) -> Vec<u16> {
    let responses = join_all(requests).await;
    responses.iter().map(|r| r.status().as_u16()).collect()
}

/// How many of `statuses` are `status`.
fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[tokio::test]
async fn invalid_fields_are_422_with_an_error_per_field_and_nothing_stored() {
    for app in apps().await {
        let cases = [
            (json!({}), vec!["username", "email", "password"]),
            (
                json!({"username": "ab", "email": "nope", "password": "short"}),
                vec!["username", "email", "password"],
            ),
            (
                json!({"username": "ålice", "email": "a@example.com", "password": "correct horse battery"}),
                vec!["username"],
            ),
            (
                json!({"username": "x".repeat(10_000), "email": format!("{}@example.com", "y".repeat(10_000)), "password": "z".repeat(10_000)}),
                vec!["username", "email", "password"],
            ),
            (
                json!({"username": "samesame12", "email": "s@example.com", "password": "SameSame12"}),
                vec!["password"],
            ),
            (
                json!({"username": "'; DROP TABLE users;--", "email": "a@example.com", "password": "correct horse battery"}),
                vec!["username"],
            ),
            (
                json!({"username": "null\u{0}byte", "email": "a@example.com", "password": "correct horse battery"}),
                vec!["username"],
            ),
        ];
        for (body, fields) in cases {
            let problem = assert_problem(
                app.post_json("/api/users", &body).await,
                422,
                &body.to_string(),
            )
            .await;
            let errors = problem["errors"].as_object().expect("per-field errors");
            let mut got: Vec<&str> = errors.keys().map(String::as_str).collect();
            got.sort_unstable();
            let mut want = fields.clone();
            want.sort_unstable();
            assert_eq!(got, want, "{}: {body}", app.engine);
        }
        let wrong_type = app
            .post_json(
                "/api/users",
                &json!({"username": 42, "email": [], "password": {}}),
            )
            .await;
        assert_problem(wrong_type, 422, "wrong JSON types").await;
        assert_eq!(
            app.user_count().await,
            0,
            "{}: nothing half-written",
            app.engine
        );
    }
}

#[tokio::test]
async fn malformed_requests_get_the_right_4xx_problem() {
    let app = common::spawn_app(shop_testkit::TestDatabase::sqlite()).await;
    let url = app.url("/api/users");
    let huge = format!("{{\"username\":\"{}\"}}", "a".repeat(1024 * 1024));
    let cases: [(&[u8], Option<&str>, u16, &str); 5] = [
        (
            b"{\"username\":",
            Some("application/json"),
            400,
            "truncated JSON",
        ),
        (b"not json", Some("application/json"), 400, "not JSON"),
        (b"{}", Some("text/plain"), 415, "text/plain"),
        (b"{}", None, 415, "no content type"),
        (huge.as_bytes(), Some("application/json"), 413, "1 MiB body"),
    ];
    for (body, content_type, status, context) in cases {
        let mut request = app.client.post(&url).body(body.to_vec());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_problem(send(request).await, status, context).await;
    }
    assert_problem(app.get("/api/users").await, 405, "GET on a POST route").await;
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn sql_metacharacters_are_only_data() {
    for app in apps().await {
        let email = "o'brien+tag--%$*@example.com";
        let password = "'; DROP TABLE users; -- \\ % _ $1";
        let response = app.register("o.brien_-", email, password).await;
        assert_eq!(response.status(), 201, "{}", app.engine);
        assert_eq!(
            app.login(email, password).await.status(),
            200,
            "{}",
            app.engine
        );
        assert_eq!(
            app.login("' OR '1'='1", "' OR '1'='1").await.status(),
            401,
            "{}",
            app.engine
        );
        assert_eq!(
            app.login("%", password).await.status(),
            401,
            "{}",
            app.engine
        );
        assert_eq!(app.user_count().await, 1, "{}", app.engine);
    }
}
