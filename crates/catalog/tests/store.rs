//! The `products` table and its migrations on SQLite and PostgreSQL: the
//! schema's constraints, and paging while the catalog changes.

mod common;

use common::{SEEDED, apps};
use shop_catalog::domain::{PageLimit, ProductIds};
use shop_catalog::store::CatalogStore;

const INSERT: &str = "INSERT INTO products (id, sku, name, description, price_cents, currency, image) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7)";

async fn insert(
    db: &shop_common::db::Db,
    id: &str,
    sku: &str,
    name: &str,
    price_cents: i64,
    currency: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT)
        .bind(id)
        .bind(sku)
        .bind(name)
        .bind("test product")
        .bind(price_cents)
        .bind(currency)
        .bind(None::<String>)
        .execute(db.pool())
        .await
        .map(drop)
}

#[tokio::test]
async fn the_schema_rejects_negative_prices_duplicate_skus_and_malformed_ids_or_currencies() {
    for app in apps().await {
        let db = app.db().await;
        let store = CatalogStore::new(db.clone());
        assert_eq!(store.count().await.expect("count"), SEEDED as i64);
        let id = |n: u32| format!("0196a1c0-5e00-7000-9000-{n:012}");
        assert!(
            insert(&db, &id(1), "NEG-1", "Negative", -1, "EUR")
                .await
                .is_err(),
            "{}: price_cents >= 0",
            app.engine
        );
        assert!(
            insert(&db, &id(2), "CUP-ESP-2", "Same sku", 100, "EUR")
                .await
                .is_err(),
            "{}: unique sku",
            app.engine
        );
        for bad_id in [
            "0196a1c0-5e00-7000-9000-0000000000001",
            "0196A1C0-5E00-7000-9000-000000000001",
        ] {
            assert!(
                insert(&db, bad_id, "ID-1", "Id", 100, "EUR").await.is_err(),
                "{}: ids are canonical UUID text: {bad_id}",
                app.engine
            );
        }
        for currency in ["EU", "EURO", "eur"] {
            assert!(
                insert(&db, &id(3), "CUR-1", "Currency", 100, currency)
                    .await
                    .is_err(),
                "{}: currency {currency}",
                app.engine
            );
        }
        insert(&db, &id(4), "FREE-1", "Free sample", 0, "EUR")
            .await
            .expect("a zero price is allowed");
        assert_eq!(store.count().await.expect("count"), SEEDED as i64 + 1);
        db.close().await;
    }
}

#[tokio::test]
async fn metacharacters_in_stored_text_round_trip() {
    for app in apps().await {
        let db = app.db().await;
        let id = "0196a1c0-5e00-7000-9000-000000000099";
        let name = "Robert'); DROP TABLE products; -- \"% _ \\";
        insert(&db, id, "SQL-1", name, 1, "EUR")
            .await
            .expect("insert");
        let product: serde_json::Value = app
            .get(&format!("/api/products/{id}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(product["name"], name, "{}", app.engine);
        let ids = ProductIds::parse(id).expect("ids");
        let found = CatalogStore::new(db.clone())
            .find_by_ids(&ids)
            .await
            .expect("lookup");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, name);
        db.close().await;
    }
}

#[tokio::test]
async fn a_cursor_stays_valid_while_products_are_added_and_removed() {
    for app in apps().await {
        let db = app.db().await;
        let store = CatalogStore::new(db.clone());
        let limit = PageLimit::parse("4").expect("limit");
        let first = store.list(limit, None).await.expect("first page");
        let cursor = first.next_cursor.expect("more pages");
        let last_seen = first.items[3].id.to_string();

        // Behind the cursor: not shown again. Ahead of it: shown. The last
        // product of the first page removed: the cursor still works.
        insert(
            &db,
            "0196a1c0-5e00-7000-8000-000000000000",
            "NEW-0",
            "Early",
            1,
            "EUR",
        )
        .await
        .expect("insert");
        insert(
            &db,
            "0196a1c0-5e00-7000-8000-0000000000f0",
            "NEW-F",
            "Late",
            1,
            "EUR",
        )
        .await
        .expect("insert");
        sqlx::query("DELETE FROM products WHERE id = $1")
            .bind(&last_seen)
            .execute(db.pool())
            .await
            .expect("delete");

        let mut rest = Vec::new();
        let mut after = Some(cursor);
        while let Some(cursor) = after {
            let page = store.list(limit, Some(cursor)).await.expect("page");
            rest.extend(page.items.iter().map(|p| p.id.to_string()));
            after = page.next_cursor;
        }
        assert!(!rest.contains(&"0196a1c0-5e00-7000-8000-000000000000".to_owned()));
        assert_eq!(
            rest.last().map(String::as_str),
            Some("0196a1c0-5e00-7000-8000-0000000000f0"),
            "{}",
            app.engine
        );
        assert!(rest.iter().all(|id| id.as_str() > last_seen.as_str()));
        db.close().await;
    }
}
