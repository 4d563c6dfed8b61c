//! The order store on its own, on SQLite and PostgreSQL: what the service
//! tests cannot reach through a small catalog.

use shop_common::config::DatabaseSettings;
use shop_common::db::{self, Db};
use shop_orders::domain::{IdempotencyKey, Order, OrderId, OrderLine, OrderStatus};
use shop_orders::store::{Inserted, MIGRATOR, NewOrder, OrderStore};
use uuid::Uuid;

#[tokio::test]
async fn an_order_with_more_lines_than_one_insert_takes_keeps_them_all_in_order() {
    for database in shop_testkit::databases().await {
        let db = Db::connect(&DatabaseSettings::new(&database.url))
            .await
            .expect("orders database");
        db.migrate(&MIGRATOR).await.expect("migrated");
        let store = OrderStore::new(db.clone());
        // 1,201 lines: two full statements and a partial one.
        let lines: Vec<OrderLine> = (1..=1_201_i64)
            .map(|n| OrderLine {
                product_id: Uuid::now_v7(),
                name: format!("product {n}"),
                unit_price_cents: n,
                quantity: 1 + n % 3,
                line_total_cents: n * (1 + n % 3),
            })
            .collect();
        let now = db::now_text();
        let order = Order {
            id: OrderId::new(),
            user_id: Uuid::now_v7().into(),
            status: OrderStatus::Pending,
            rejection: None,
            total_cents: lines.iter().map(|line| line.line_total_cents).sum(),
            lines,
            currency: "EUR".to_owned(),
            created_at: now.clone(),
            updated_at: now,
        };
        let new = NewOrder {
            order: order.clone(),
            key: IdempotencyKey::parse("many-lines").expect("key"),
            payment_token: shop_api::payments::tokens::SUCCESS.to_owned(),
            cart_version: 1,
            lease_until: db::timestamp_text(chrono::Utc::now() + chrono::Duration::minutes(5)),
        };
        assert!(
            matches!(
                store.insert(&new).await.expect("inserted"),
                Inserted::Created
            ),
            "{}",
            database.engine
        );
        let stored = store
            .get(order.user_id, order.id)
            .await
            .expect("read")
            .expect("the order");
        assert_eq!(
            stored, order,
            "{}: every line, in cart order",
            database.engine
        );
        // Numbered 0..n without gaps across the statements.
        let (count, first, last): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), MIN(line_no), MAX(line_no) FROM order_lines WHERE order_id = $1",
        )
        .bind(order.id.to_string())
        .fetch_one(db.pool())
        .await
        .expect("line numbers");
        assert_eq!(
            (count, first, last),
            (1_201, 0, 1_200),
            "{}",
            database.engine
        );
        db.close().await;
    }
}
