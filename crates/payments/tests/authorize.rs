//! `PUT /internal/payments/{order_id}`: what each test token decides, once
//! per order — repeats and concurrent first calls answer the one payment
//! recorded — and what is refused before the provider is asked, on SQLite
//! and PostgreSQL.

mod common;

use std::time::Instant;

use common::{SLOW, apps, authorize, new_order, read};
use futures::future::join_all;
use serde_json::json;
use shop_api::payments::{Payment, PaymentState, tokens};

#[tokio::test]
async fn every_token_decides_as_documented() {
    for app in apps().await {
        let cases = [
            (tokens::SUCCESS, PaymentState::Authorized, None),
            (
                tokens::DECLINED,
                PaymentState::Declined,
                Some("card_declined"),
            ),
            (
                tokens::INSUFFICIENT_FUNDS,
                PaymentState::Declined,
                Some("insufficient_funds"),
            ),
            (tokens::SLOW, PaymentState::Authorized, None),
        ];
        for (token, state, reason) in cases {
            let order = new_order();
            let started = Instant::now();
            let payment = app.authorize_ok(order, &authorize(2500, token)).await;
            let context = format!("{}: {token}", app.engine);
            assert_eq!(payment.order_id, order, "{context}");
            assert_eq!(payment.state, state, "{context}");
            assert_eq!(payment.decline_reason.as_deref(), reason, "{context}");
            assert_eq!(
                (payment.amount_cents, payment.currency.as_str()),
                (2500, "EUR"),
                "{context}"
            );
            assert_eq!(payment.created_at, payment.updated_at, "{context}");
            assert!(
                payment.created_at.ends_with('Z'),
                "{context}: {}",
                payment.created_at
            );
            if token == tokens::SLOW {
                assert!(
                    started.elapsed() >= SLOW,
                    "{context}: took {:?}",
                    started.elapsed()
                );
            }
            let fetched = read(app.fetch(order).await).await;
            assert_eq!(fetched.0, 200, "{context}");
            let fetched: Payment = serde_json::from_value(fetched.1).expect("payment");
            assert_eq!(fetched, payment, "{context}: GET answers what was recorded");
            assert_eq!(app.rows(order).await, 1, "{context}");
        }
    }
}

#[tokio::test]
async fn a_provider_error_records_nothing_and_a_retry_can_succeed() {
    for app in apps().await {
        let order = new_order();
        let failed = app
            .put(order, &authorize(500, tokens::PROVIDER_ERROR))
            .await;
        assert_eq!(
            failed.headers().get("retry-after").map(|v| v.to_str().ok()),
            Some(Some("1")),
            "{}: the caller is told to retry",
            app.engine
        );
        let body = app.assert_problem(failed, 502, "provider error").await;
        assert_eq!(body["type"], "/problems/provider-error", "{body}");
        assert_eq!(app.rows(order).await, 0, "{}: nothing recorded", app.engine);
        let missing = app.fetch(order).await;
        app.assert_problem(missing, 404, "no payment after a provider error")
            .await;

        let payment = app.authorized(order).await;
        assert_eq!(payment.amount_cents, 1999);
        assert_eq!(app.rows(order).await, 1, "{}", app.engine);
    }
}

#[tokio::test]
async fn a_repeat_answers_the_recorded_payment_unchanged_whatever_it_asks() {
    for app in apps().await {
        let declined = new_order();
        let first = app
            .authorize_ok(declined, &authorize(700, tokens::DECLINED))
            .await;
        // Same order, another token and amount: the decline stands, and
        // the provider is not asked again.
        for body in [
            authorize(700, tokens::DECLINED),
            authorize(900, tokens::SUCCESS),
            authorize(900, tokens::PROVIDER_ERROR),
        ] {
            let again = app.authorize_ok(declined, &body).await;
            assert_eq!(again, first, "{}: {body}", app.engine);
        }
        assert_eq!(app.rows(declined).await, 1, "{}", app.engine);

        let authorized = new_order();
        let first = app.authorized(authorized).await;
        let again = app.authorized(authorized).await;
        assert_eq!(again, first, "{}: no second charge", app.engine);
        assert_eq!(app.rows(authorized).await, 1, "{}", app.engine);
    }
}

#[tokio::test]
async fn concurrent_first_authorizations_record_one_payment() {
    for app in apps().await {
        let order = new_order();
        let app = &app;
        // Slow ones hold the provider while fast ones land: the race is on
        // the insert, not only on the first read.
        let calls = (0..20).map(|i| {
            let token = if i % 4 == 0 {
                tokens::SLOW
            } else {
                tokens::SUCCESS
            };
            let body = authorize(1000 + i, token);
            async move { read(app.put(order, &body).await).await }
        });
        let answers = join_all(calls).await;
        let payments: Vec<Payment> = answers
            .into_iter()
            .map(|(status, body)| {
                assert_eq!(status, 200, "{}: {body}", app.engine);
                serde_json::from_value(body).expect("payment")
            })
            .collect();
        assert!(
            payments.iter().all(|payment| *payment == payments[0]),
            "{}: every call answers the one payment: {payments:?}",
            app.engine
        );
        assert_eq!(payments[0].state, PaymentState::Authorized);
        assert_eq!(app.rows(order).await, 1, "{}", app.engine);
    }
}

#[tokio::test]
async fn invalid_fields_are_422_naming_each_and_card_numbers_are_never_accepted() {
    for app in apps().await {
        let order = new_order();
        let cases = [
            (
                json!({"amount_cents": 0, "currency": "EUR", "payment_token": "tok_visa"}),
                vec!["amount_cents"],
            ),
            (
                json!({"amount_cents": -5, "currency": "eur", "payment_token": "tok_visa"}),
                vec!["amount_cents", "currency"],
            ),
            (
                json!({"amount_cents": 100, "currency": "EURO", "payment_token": "tok_mastercard"}),
                vec!["currency", "payment_token"],
            ),
            (
                json!({"amount_cents": 100, "currency": "EUR", "payment_token": "4242424242424242"}),
                vec!["payment_token"],
            ),
            (
                json!({"amount_cents": 100, "currency": "EUR", "payment_token": "tok_4242424242424242"}),
                vec!["payment_token"],
            ),
        ];
        for (body, fields) in cases {
            let case = body.to_string();
            let problem = app
                .assert_problem(app.put(order, &body).await, 422, &case)
                .await;
            assert_eq!(problem["type"], "/problems/validation", "{case}: {problem}");
            let errors = problem["errors"].as_object().expect("errors");
            let named: Vec<&str> = errors.keys().map(String::as_str).collect();
            assert_eq!(named, fields, "{case}: {problem}");
        }
        for card in ["4242424242424242", "tok_4242424242424242"] {
            let body = json!({"amount_cents": 100, "currency": "EUR", "payment_token": card});
            let problem = app
                .assert_problem(app.put(order, &body).await, 422, card)
                .await;
            let message = problem["errors"]["payment_token"]
                .as_str()
                .expect("message");
            assert!(
                message.contains("card numbers are never accepted"),
                "{message}"
            );
            assert!(
                !problem.to_string().contains("4242"),
                "{card} echoed: {problem}"
            );
        }
        let unknown = authorize(100, "tok_mastercard");
        let problem = app
            .assert_problem(app.put(order, &unknown).await, 422, "unknown")
            .await;
        let message = problem["errors"]["payment_token"]
            .as_str()
            .expect("message");
        assert!(message.contains("unknown payment token"), "{message}");

        // Missing fields and a malformed body are refused by the extractor.
        let missing = json!({"amount_cents": 100, "currency": "EUR"});
        app.assert_problem(app.put(order, &missing).await, 422, "missing token")
            .await;
        assert_eq!(app.rows(order).await, 0, "{}: nothing recorded", app.engine);
    }
}

#[tokio::test]
async fn a_malformed_order_id_is_400() {
    let app = common::spawn_app(shop_testkit::TestDatabase::sqlite()).await;
    let request = app
        .client
        .put(app.url("/internal/payments/not-a-uuid"))
        .header(shop_common::wire::SERVICE_TOKEN, common::SERVICE_TOKEN)
        .json(&authorize(100, tokens::SUCCESS));
    let answer = shop_testkit::send(request).await;
    app.assert_problem(answer, 400, "malformed order id").await;
    let request = app
        .client
        .post(app.url("/internal/payments/not-a-uuid/capture"))
        .header(shop_common::wire::SERVICE_TOKEN, common::SERVICE_TOKEN);
    app.assert_problem(shop_testkit::send(request).await, 400, "malformed order id")
        .await;
}
