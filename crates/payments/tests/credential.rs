//! Every payments route needs the service credential: without it, or with
//! a wrong one, the answer is a 401 problem and nothing is recorded.

mod common;

use common::{authorize, new_order, spawn_app};
use shop_api::payments::tokens;
use shop_common::wire::SERVICE_TOKEN;
use shop_testkit::{TestDatabase, send};

#[tokio::test]
async fn a_missing_or_wrong_credential_is_401_on_every_route() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    let order = new_order();
    let body = authorize(100, tokens::SUCCESS);
    for credential in [None, Some("wrong"), Some("")] {
        let requests = [
            (
                "PUT",
                app.client.put(app.payment_url(order, "")).json(&body),
            ),
            ("GET", app.client.get(app.payment_url(order, ""))),
            (
                "capture",
                app.client.post(app.payment_url(order, "/capture")),
            ),
            ("void", app.client.post(app.payment_url(order, "/void"))),
            ("refund", app.client.post(app.payment_url(order, "/refund"))),
        ];
        for (route, request) in requests {
            let request = match credential {
                Some(token) => request.header(SERVICE_TOKEN, token),
                None => request,
            };
            let case = format!("{route} with {credential:?}");
            app.assert_problem(send(request).await, 401, &case).await;
        }
    }
    assert_eq!(app.rows(order).await, 0, "nothing recorded");
    // The right credential passes.
    app.authorized(order).await;
}

#[tokio::test]
async fn without_a_configured_credential_every_call_is_refused() {
    let db = TestDatabase::sqlite();
    let mut settings = common::settings(&db);
    settings.internal.service_token = None;
    let running =
        shop_payments::Application::build_in(settings, shop_discovery::Registry::in_process())
            .await
            .expect("starts without a token (with a warning)")
            .spawn();
    let url = format!("{}/internal/payments/{}", running.base(), new_order());
    let client = reqwest::Client::new();
    for credential in ["", common::SERVICE_TOKEN] {
        let request = client
            .put(&url)
            .header(SERVICE_TOKEN, credential)
            .json(&authorize(100, tokens::SUCCESS));
        common::assert_problem(send(request).await, 401, credential).await;
    }
    // The probes need no credential, and the database is the readiness check.
    let ready = send(client.get(format!("{}/readyz", running.base()))).await;
    assert_eq!(ready.status(), 200);
}
