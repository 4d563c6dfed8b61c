//! The cart migrations over data written before them, on SQLite and
//! PostgreSQL.

#![allow(clippy::expect_used)] // a failed setup should fail the test

use std::path::{Path, PathBuf};

use shop_common::config::DatabaseSettings;
use shop_common::db::Db;
use sqlx::Row;
use sqlx::migrate::Migrator;

/// Lines written before `set_version` existed get their cart's version
/// (0 without a cart row): no earlier bound on when they were set is known.
#[tokio::test]
async fn existing_lines_are_stamped_with_their_carts_version() {
    let (user, orphan) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let products = [uuid::Uuid::now_v7(), uuid::Uuid::now_v7()];
    for test_db in shop_testkit::databases().await {
        let db = Db::connect(&DatabaseSettings::new(test_db.url.clone()))
            .await
            .expect("database");
        let before = Migrations::up_to("0002");
        db.migrate(&before.migrator().await)
            .await
            .expect("0001-0002");
        sqlx::query("INSERT INTO carts (user_id, version, updated_at) VALUES ($1, 7, 'then')")
            .bind(user.to_string())
            .execute(db.pool())
            .await
            .expect("cart");
        for (owner, product) in [
            (user, products[0]),
            (user, products[1]),
            (orphan, products[0]),
        ] {
            sqlx::query(
                "INSERT INTO cart_items (user_id, product_id, quantity, updated_at) \
                 VALUES ($1, $2, 1, 'then')",
            )
            .bind(owner.to_string())
            .bind(product.to_string())
            .execute(db.pool())
            .await
            .expect("line");
        }

        db.migrate(&shop_cart::store::MIGRATOR)
            .await
            .expect("the rest");
        let stamps: Vec<(String, i64)> =
            sqlx::query("SELECT user_id, set_version FROM cart_items ORDER BY user_id, product_id")
                .fetch_all(db.pool())
                .await
                .expect("stamps")
                .iter()
                .map(|row| {
                    (
                        row.try_get("user_id").expect("user_id"),
                        row.try_get("set_version").expect("set_version"),
                    )
                })
                .collect();
        let (user, orphan) = (user.to_string(), orphan.to_string());
        assert_eq!(
            stamps,
            [(user.clone(), 7), (user, 7), (orphan, 0)],
            "{}",
            test_db.engine
        );
        db.close().await;
    }
}

/// A copy of the first cart migrations, to migrate a database to an
/// earlier schema; removed when dropped.
struct Migrations(PathBuf);

impl Migrations {
    /// The migrations up to and including the one whose name starts with `last`.
    fn up_to(last: &str) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/cart");
        let dir = std::env::temp_dir().join(format!("cart-migrations-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir(&dir).expect("directory");
        for entry in std::fs::read_dir(&source).expect("migrations") {
            let name = entry.expect("entry").file_name();
            let version = name.to_string_lossy().get(..last.len()).map(str::to_owned);
            if version.is_some_and(|version| version.as_str() <= last) {
                std::fs::copy(source.join(&name), dir.join(&name)).expect("copy");
            }
        }
        Self(dir)
    }

    async fn migrator(&self) -> Migrator {
        Migrator::new(self.0.as_path()).await.expect("migrator")
    }
}

impl Drop for Migrations {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}
