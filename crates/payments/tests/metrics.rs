//! `payments_operations_total` counts each operation by outcome. One test
//! in this binary: the recorder is process-wide, so counts are read as
//! differences within it.

mod common;

use common::{apps, authorize, new_order};
use shop_api::payments::tokens;

#[tokio::test]
async fn operations_are_counted_by_outcome() {
    for app in apps().await {
        let series = [
            ("authorize", "authorized"),
            ("authorize", "declined"),
            ("authorize", "provider_error"),
            ("authorize", "repeated"),
            ("capture", "applied"),
            ("capture", "repeated"),
            ("capture", "not_found"),
            ("void", "tombstone"),
            ("void", "conflict"),
            ("refund", "applied"),
        ];
        let mut before = Vec::new();
        for (operation, outcome) in series {
            before.push(app.counted(operation, outcome).await);
        }

        let order = new_order();
        app.authorized(order).await;
        app.authorized(order).await;
        app.authorize_ok(new_order(), &authorize(100, tokens::INSUFFICIENT_FUNDS))
            .await;
        let failed = app
            .put(new_order(), &authorize(100, tokens::PROVIDER_ERROR))
            .await;
        assert_eq!(failed.status(), 502);
        app.post(order, "capture").await;
        app.post(order, "capture").await;
        app.post(new_order(), "capture").await;
        app.post(order, "void").await;
        app.post(new_order(), "void").await;
        app.post(order, "refund").await;

        for ((operation, outcome), before) in series.into_iter().zip(before) {
            let after = app.counted(operation, outcome).await;
            assert_eq!(after - before, 1.0, "{}: {operation} {outcome}", app.engine);
        }
    }
}
