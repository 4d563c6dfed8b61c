//! The `products` table. One set of portable queries serves SQLite and
//! PostgreSQL; every read is a single query. Stock and its reservations
//! are written by [`crate::stock`].

use shop_common::db::{self, Db};
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::migrate::Migrator;

use crate::domain::{Cursor, PageLimit, Product, ProductId, ProductIds, ProductPage};

/// The catalog service's migrations (schema and the demo catalog), embedded
/// in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/catalog");

/// The columns [`product_from_row`] reads, in one place for every query
/// that answers products.
pub(crate) const COLUMNS: &str = "id, sku, name, description, price_cents, currency, image, stock";

/// Why the catalog could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or returned a row that does not decode.
    #[error("catalog database error")]
    Database(#[from] sqlx::Error),
}

/// Read access to the `products` table.
#[derive(Debug, Clone)]
pub struct CatalogStore {
    db: Db,
}

impl CatalogStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// One page of products in id order, starting after `after` (or at the
    /// beginning). `next_cursor` is set only when more products follow.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query fails.
    pub async fn list(
        &self,
        limit: PageLimit,
        after: Option<Cursor>,
    ) -> Result<ProductPage, StoreError> {
        // One row more than asked tells whether another page exists without a
        // second query, so the last page never hands out a dead cursor.
        let fetch = i64::from(limit.get()) + 1;
        let rows = match after {
            Some(cursor) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM products WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(cursor.last_id().to_string())
                .bind(fetch)
                .fetch_all(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM products ORDER BY id LIMIT $1"
                ))
                .bind(fetch)
                .fetch_all(self.db.pool())
                .await?
            }
        };
        let mut items = rows
            .iter()
            .map(product_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit.get() as usize {
            items.truncate(limit.get() as usize);
            items.last().map(|last| Cursor::after(last.id))
        } else {
            None
        };
        Ok(ProductPage { items, next_cursor })
    }

    /// The product with `id`, if there is one.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query fails.
    pub async fn find_by_id(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(product_from_row).transpose()
    }

    /// The products among `ids` that exist, in id order, in one query.
    /// Unknown ids are simply absent.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query fails.
    pub async fn find_by_ids(&self, ids: &ProductIds) -> Result<Vec<Product>, StoreError> {
        let ids = ids.as_slice();
        // Only the count of placeholders comes from the request (at most
        // `MAX_IDS`); the ids themselves are bound, never spliced in.
        let sql = format!(
            "SELECT {COLUMNS} FROM products WHERE id IN ({}) ORDER BY id",
            db::placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter()
            .map(product_from_row)
            .collect::<Result<Vec<_>, _>>()
    }

    /// Counts products; for tests and diagnostics.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query fails.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(self.db.count("SELECT COUNT(*) FROM products").await?)
    }
}

/// A product from a row holding [`COLUMNS`].
pub(crate) fn product_from_row(row: &AnyRow) -> Result<Product, StoreError> {
    Ok(Product {
        id: db::parse_column(row, "id")?,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price_cents: row.try_get("price_cents")?,
        currency: row.try_get("currency")?,
        image: row.try_get("image")?,
        stock: row.try_get("stock")?,
    })
}
