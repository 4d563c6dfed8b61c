//! Capture, void and refund: each moves one state to one other, answers a
//! payment already there unchanged, refuses the rest with 409, and applies
//! once under concurrent calls; a void before any authorization leaves a
//! tombstone that a late authorization answers. SQLite and PostgreSQL.

mod common;

use common::{apps, authorize, new_order, read};
use futures::future::join_all;
use shop_api::payments::{Payment, PaymentState, tokens};

use PaymentState::{Authorized, Captured, Declined, Refunded, Voided};

#[tokio::test]
async fn authorized_captured_refunded_and_repeats_change_nothing() {
    for app in apps().await {
        let order = new_order();
        let authorized = app.authorized(order).await;
        let captured = app.change_ok(order, "capture", Captured).await;
        assert_eq!(captured.amount_cents, authorized.amount_cents);
        assert_eq!(captured.created_at, authorized.created_at);
        assert!(
            captured.updated_at >= authorized.updated_at,
            "{}",
            app.engine
        );
        let again = app.change_ok(order, "capture", Captured).await;
        assert_eq!(
            again, captured,
            "{}: a repeated capture changes nothing",
            app.engine
        );

        let refunded = app.change_ok(order, "refund", Refunded).await;
        let again = app.change_ok(order, "refund", Refunded).await;
        assert_eq!(
            again, refunded,
            "{}: a repeated refund changes nothing",
            app.engine
        );
        assert_eq!(app.rows(order).await, 1);

        let voidable = new_order();
        app.authorized(voidable).await;
        let voided = app.change_ok(voidable, "void", Voided).await;
        assert_eq!(voided.amount_cents, 1999, "{}", app.engine);
        let again = app.change_ok(voidable, "void", Voided).await;
        assert_eq!(
            again, voided,
            "{}: a repeated void changes nothing",
            app.engine
        );

        let declined = new_order();
        let payment = app
            .authorize_ok(declined, &authorize(100, tokens::DECLINED))
            .await;
        let void = app.change_ok(declined, "void", Declined).await;
        assert_eq!(
            void, payment,
            "{}: a decline is answered as it is",
            app.engine
        );
    }
}

#[tokio::test]
async fn refused_transitions_are_409_naming_the_state() {
    for app in apps().await {
        // (how to reach the state, the operation refused there)
        let cases: [(&[&str], PaymentState, &str); 8] = [
            (&["authorize"], Authorized, "refund"),
            (&["decline"], Declined, "capture"),
            (&["decline"], Declined, "refund"),
            (&["authorize", "void"], Voided, "capture"),
            (&["authorize", "void"], Voided, "refund"),
            (&["authorize", "capture"], Captured, "void"),
            (&["authorize", "capture", "refund"], Refunded, "capture"),
            (&["authorize", "capture", "refund"], Refunded, "void"),
        ];
        for (steps, state, operation) in cases {
            let order = new_order();
            for step in steps {
                match *step {
                    "authorize" => drop(app.authorized(order).await),
                    "decline" => drop(
                        app.authorize_ok(order, &authorize(100, tokens::DECLINED))
                            .await,
                    ),
                    other => {
                        let (status, body) = read(app.post(order, other).await).await;
                        assert_eq!(status, 200, "{}: {other}: {body}", app.engine);
                    }
                }
            }
            let case = format!("{operation} of a {state:?} payment");
            let problem = app
                .assert_problem(app.post(order, operation).await, 409, &case)
                .await;
            assert_eq!(
                problem["type"], "/problems/payment-state-conflict",
                "{case}: {problem}"
            );
            let detail = problem["detail"].as_str().expect("detail");
            let name = serde_json::to_value(state).expect("state");
            let name = name.as_str().expect("name");
            assert!(detail.contains(name), "{case}: {detail}");
            if operation == "void" {
                assert!(
                    detail.contains("refund"),
                    "{case}: names the way out: {detail}"
                );
            }
            let (_, now) = read(app.fetch(order).await).await;
            assert_eq!(now["state"], name, "{}: {case} changed nothing", app.engine);
        }
    }
}

#[tokio::test]
async fn without_a_payment_capture_refund_and_get_are_404() {
    for app in apps().await {
        let order = new_order();
        for operation in ["capture", "refund"] {
            let problem = app
                .assert_problem(app.post(order, operation).await, 404, operation)
                .await;
            assert_eq!(problem["type"], "/problems/payment-not-found", "{problem}");
        }
        app.assert_problem(app.fetch(order).await, 404, "get").await;
        assert_eq!(app.rows(order).await, 0, "{}: nothing recorded", app.engine);
    }
}

#[tokio::test]
async fn a_void_before_any_authorization_makes_a_late_one_take_nothing() {
    for app in apps().await {
        let order = new_order();
        let tombstone = app.change_ok(order, "void", Voided).await;
        assert_eq!(
            (tombstone.amount_cents, tombstone.currency.as_str()),
            (0, "XXX"),
            "{}",
            app.engine
        );
        assert_eq!(tombstone.decline_reason, None);
        let again = app.change_ok(order, "void", Voided).await;
        assert_eq!(again, tombstone, "{}: repeated void", app.engine);

        for token in [tokens::SUCCESS, tokens::SLOW, tokens::PROVIDER_ERROR] {
            let late = app.authorize_ok(order, &authorize(1999, token)).await;
            assert_eq!(
                late, tombstone,
                "{}: late {token} answers the void",
                app.engine
            );
        }
        let capture = app.post(order, "capture").await;
        app.assert_problem(capture, 409, "capture of a tombstone")
            .await;
        assert_eq!(app.rows(order).await, 1, "{}", app.engine);
    }
}

#[tokio::test]
async fn concurrent_changes_apply_once() {
    for app in apps().await {
        // Ten captures at once: all answer captured, one applied it.
        let order = new_order();
        let authorized = app.authorized(order).await;
        let answers =
            join_all((0..10).map(|_| async { read(app.post(order, "capture").await).await })).await;
        let mut updated = Vec::new();
        for (status, body) in answers {
            assert_eq!(status, 200, "{}: {body}", app.engine);
            let payment: Payment = serde_json::from_value(body).expect("payment");
            assert_eq!(payment.state, Captured);
            updated.push(payment.updated_at);
        }
        updated.dedup();
        assert_eq!(
            updated.len(),
            1,
            "{}: one change, every answer shows it: {updated:?}",
            app.engine
        );
        assert_ne!(updated[0], authorized.updated_at);

        // Captures and voids racing on one authorization: exactly one kind
        // wins; the losers are refused with 409 (or answered, when they
        // ask for what won).
        let order = new_order();
        app.authorized(order).await;
        let app = &app;
        let calls = (0..10).map(|i| {
            let operation = if i % 2 == 0 { "capture" } else { "void" };
            async move { (operation, read(app.post(order, operation).await).await) }
        });
        let answers = join_all(calls).await;
        let (_, end) = read(app.fetch(order).await).await;
        let end = end["state"].as_str().expect("state").to_owned();
        assert!(
            end == "captured" || end == "voided",
            "{}: {end}",
            app.engine
        );
        let winner = if end == "captured" { "capture" } else { "void" };
        for (operation, (status, body)) in answers {
            let expected = if operation == winner { 200 } else { 409 };
            assert_eq!(
                status, expected,
                "{}: {operation} when {end} won: {body}",
                app.engine
            );
        }

        // A void racing late authorizations of an order never authorized:
        // whichever lands first, the order ends voided or authorized-then-
        // voided, never authorized.
        let order = new_order();
        let void = async { read(app.post(order, "void").await).await };
        let authorizations =
            join_all((0..5).map(|_| async {
                read(app.put(order, &authorize(300, tokens::SUCCESS)).await).await
            }));
        let ((status, body), _) = tokio::join!(void, authorizations);
        assert_eq!(status, 200, "{}: {body}", app.engine);
        assert_eq!(body["state"], "voided", "{}: {body}", app.engine);
        let (_, end) = read(app.fetch(order).await).await;
        assert_eq!(end["state"], "voided", "{}: {end}", app.engine);
        assert_eq!(app.rows(order).await, 1, "{}", app.engine);
    }
}
