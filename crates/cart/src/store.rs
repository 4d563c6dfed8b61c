//! The cart tables. One set of portable queries serves SQLite and PostgreSQL.
//!
//! Every change runs in one transaction that changes the items and bumps
//! `carts.version`, writing first: on PostgreSQL the version row's lock
//! orders concurrent changes to one cart (changes to different items both
//! land); on SQLite the first write takes the database's write lock (waiting
//! out the busy timeout), so a transaction never reads before it writes and
//! cannot deadlock on a lock upgrade.
//!
//! Each line carries `set_version`, the cart version its last write
//! produced, so an order removal can tell a line the shopper changed after
//! the order's snapshot. The version is only known once `carts` is bumped,
//! after the line is written (the order above), so the write stamps a
//! guess, the cart's version plus one, and `restamp` corrects it once the
//! bump is done; the guess is wrong only when a concurrent change to the
//! same cart took that number first.

use std::collections::BTreeMap;

use shop_api::{OrderId, UserId};
use shop_common::db::{self, Db};
use sqlx::any::AnyRow;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Row};

use crate::domain::{ProductId, Quantity};

/// The cart service's migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/cart");

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[error("cart database error")]
pub struct StoreError(#[from] sqlx::Error);

/// The stored items of one cart and its version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredCart {
    /// (product, quantity) in product id order.
    pub lines: Vec<(ProductId, i64)>,
    /// 0 for a cart that was never changed.
    pub version: i64,
}

/// One line of an order to take out of a cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderedLine {
    /// The product.
    pub product_id: ProductId,
    /// How many were ordered.
    pub quantity: Quantity,
}

/// What an order removal did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Removal {
    /// Whether this call applied the order; `false` for a repeat, which
    /// changes nothing.
    pub applied: bool,
    /// The cart's version afterwards.
    pub version: i64,
    /// Ordered products whose lines this call left as they are because they
    /// were set after the order's snapshot, in product id order.
    pub skipped: Vec<ProductId>,
}

/// Access to the cart tables.
#[derive(Debug, Clone)]
pub struct CartStore {
    db: Db,
}

impl CartStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The items and version of `user`'s cart.
    ///
    /// One statement, so one round trip, and one consistent snapshot on
    /// both databases (a statement never sees half of another's commit).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn get(&self, user: UserId) -> Result<StoredCart, StoreError> {
        let rows = sqlx::query(
            "SELECT version, NULL AS product_id, NULL AS quantity FROM carts WHERE user_id = $1 \
             UNION ALL \
             SELECT NULL, product_id, quantity FROM cart_items WHERE user_id = $1",
        )
        .bind(user.to_string())
        .fetch_all(self.db.pool())
        .await?;
        let mut cart = StoredCart::default();
        for row in &rows {
            match row.try_get::<Option<i64>, _>("version")? {
                Some(version) => cart.version = version,
                None => cart.lines.push(line(row)?),
            }
        }
        cart.lines.sort_unstable_by_key(|(id, _)| *id);
        Ok(cart)
    }

    /// Sets the quantity of `product`; setting the quantity it already has
    /// changes nothing (PUT is idempotent, and the version only moves on a
    /// real change). Returns the cart as this change left it.
    ///
    /// `seen` is the cart as the caller read it before: when the version
    /// shows that no other change came in between (it moved by exactly this
    /// change, or not at all), the result is `seen` with this change
    /// applied, and the lines are not read again; otherwise they are read
    /// in the same transaction.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "set_cart_quantity",
    ))]
    pub async fn set_quantity(
        &self,
        user: UserId,
        product: ProductId,
        quantity: Quantity,
        seen: &StoredCart,
    ) -> Result<StoredCart, StoreError> {
        let user = user.to_string();
        let now = db::now_text();
        let mut tx = self.db.begin_write().await?;
        let stamped = sqlx::query(
            "INSERT INTO cart_items (user_id, product_id, quantity, updated_at, set_version) \
             VALUES ($1, $2, $3, $4, COALESCE((SELECT version FROM carts WHERE user_id = $1), 0) + 1) \
             ON CONFLICT (user_id, product_id) DO UPDATE \
             SET quantity = excluded.quantity, updated_at = excluded.updated_at, \
                 set_version = excluded.set_version \
             WHERE cart_items.quantity <> excluded.quantity \
             RETURNING set_version",
        )
        .bind(&user)
        .bind(product.to_string())
        .bind(quantity.get())
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get::<i64, _>("set_version"))
        .transpose()?;
        let changed = stamped.is_some();
        let version = finish_change(&mut tx, &user, &now, changed).await?;
        if let Some(stamped) = stamped {
            restamp(&mut tx, &user, product, stamped, version).await?;
        }
        let expected = if changed {
            seen.version + 1
        } else {
            seen.version
        };
        let lines = if version == expected {
            let mut lines = seen.lines.clone();
            match lines.binary_search_by_key(&product, |(id, _)| *id) {
                Ok(at) => lines[at].1 = quantity.get(),
                Err(at) => lines.insert(at, (product, quantity.get())),
            }
            lines
        } else {
            sqlx::query(
                "SELECT product_id, quantity FROM cart_items WHERE user_id = $1 ORDER BY product_id",
            )
            .bind(&user)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(line)
            .collect::<Result<_, _>>()?
        };
        tx.commit().await?;
        Ok(StoredCart { lines, version })
    }

    /// Removes `product` from the cart; returns the version afterwards.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn remove_item(&self, user: UserId, product: ProductId) -> Result<i64, StoreError> {
        self.delete_lines(user, Some(product)).await
    }

    /// Empties the cart; returns the version afterwards.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn clear(&self, user: UserId) -> Result<i64, StoreError> {
        self.delete_lines(user, None).await
    }

    /// Deletes `user`'s line of `product`, or all their lines, and bumps the
    /// cart's version if any went, in one transaction.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "delete_cart_lines",
    ))]
    async fn delete_lines(
        &self,
        user: UserId,
        product: Option<ProductId>,
    ) -> Result<i64, StoreError> {
        let user = user.to_string();
        let now = db::now_text();
        let mut tx = self.db.begin_write().await?;
        let query = match product {
            Some(product) => {
                sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2")
                    .bind(&user)
                    .bind(product.to_string())
            }
            None => sqlx::query("DELETE FROM cart_items WHERE user_id = $1").bind(&user),
        };
        let removed = query.execute(&mut *tx).await?.rows_affected();
        let version = finish_change(&mut tx, &user, &now, removed > 0).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Takes the lines of order `order` out of `user`'s cart: subtracts the
    /// ordered quantities (items added after the order stay; a line that
    /// drops to zero goes). Idempotent by order id: the first call inserts
    /// the order id in the same transaction, so a repeat — sequential or
    /// concurrent — changes nothing.
    ///
    /// `snapshot` is the cart version the order was made from: a line set
    /// after it (its `set_version` is greater) is the shopper's newer
    /// choice and is left exactly as it is, reported in
    /// [`Removal::skipped`]. Without it every ordered line is taken out, as
    /// for removals recorded before orders sent the version. Lines of one
    /// product are taken out together, in product id order.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "remove_order_lines",
    ))]
    pub async fn remove_order_lines(
        &self,
        user: UserId,
        order: OrderId,
        lines: &[OrderedLine],
        snapshot: Option<i64>,
    ) -> Result<Removal, StoreError> {
        let user = user.to_string();
        let now = db::now_text();
        let mut tx = self.db.begin_write().await?;
        let applied = sqlx::query(
            "INSERT INTO applied_orders (order_id, user_id, applied_at) VALUES ($1, $2, $3) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order.to_string())
        .bind(&user)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let mut ordered = BTreeMap::new();
        if applied {
            for line in lines {
                *ordered.entry(line.product_id).or_insert(0) += line.quantity.get();
            }
        }
        // No stamp is above `i64::MAX`: without a snapshot no line is newer.
        let newest = snapshot.unwrap_or(i64::MAX);
        let mut deleted = 0;
        let mut subtracted = Vec::new();
        let mut skipped = Vec::new();
        for (&product, &quantity) in &ordered {
            let id = product.to_string();
            let gone = sqlx::query(
                "DELETE FROM cart_items \
                 WHERE user_id = $1 AND product_id = $2 AND quantity <= $3 AND set_version <= $4",
            )
            .bind(&user)
            .bind(&id)
            .bind(quantity)
            .bind(newest)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if gone > 0 {
                // The line is gone: nothing is left to subtract from.
                deleted += gone;
                continue;
            }
            let stamped = sqlx::query(
                "UPDATE cart_items SET quantity = quantity - $3, updated_at = $4, \
                 set_version = COALESCE((SELECT version FROM carts WHERE user_id = $1), 0) + 1 \
                 WHERE user_id = $1 AND product_id = $2 AND quantity > $3 AND set_version <= $5 \
                 RETURNING set_version",
            )
            .bind(&user)
            .bind(&id)
            .bind(quantity)
            .bind(&now)
            .bind(newest)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = stamped {
                subtracted.push((product, row.try_get::<i64, _>("set_version")?));
                continue;
            }
            let newer = sqlx::query(
                "SELECT 1 AS newer FROM cart_items \
                 WHERE user_id = $1 AND product_id = $2 AND set_version > $3",
            )
            .bind(&user)
            .bind(&id)
            .bind(newest)
            .fetch_optional(&mut *tx)
            .await?;
            if newer.is_some() {
                skipped.push(product);
            }
        }
        let changed = deleted > 0 || !subtracted.is_empty();
        let version = finish_change(&mut tx, &user, &now, changed).await?;
        for (product, stamped) in subtracted {
            restamp(&mut tx, &user, product, stamped, version).await?;
        }
        tx.commit().await?;
        Ok(Removal {
            applied,
            version,
            skipped,
        })
    }

    /// Deletes up to `limit` records of applied order removals applied
    /// before `before` (a [`db::timestamp_text`]), oldest first; returns
    /// how many. Call again while it returns `limit`.
    ///
    /// Forgetting an order is safe once no delivery of it can arrive any
    /// more: a removal of an order whose record is gone would be applied
    /// again, taking from the cart what the buyer put in since. Orders'
    /// relay never sends a removal more than a day after the order was
    /// placed — an older outbox row is dead-lettered instead
    /// (`shop_orders::relay::MAX_DELIVERY_AGE`) — and the record is written
    /// after the order was placed, so a record older than
    /// [`MIN_APPLIED_ORDER_RETENTION_SECS`] (two days; the second covers
    /// the call's deadline and clock skew) has seen its last delivery.
    /// `applied_orders.retention_secs` is validated against that minimum.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    ///
    /// [`MIN_APPLIED_ORDER_RETENTION_SECS`]: crate::config::MIN_APPLIED_ORDER_RETENTION_SECS
    pub async fn purge_applied_orders(&self, before: &str, limit: u32) -> Result<u64, StoreError> {
        Ok(self
            .db
            .delete_oldest("applied_orders", "order_id", "applied_at", before, limit)
            .await?)
    }
}

/// One stored line from its `product_id` and `quantity` columns.
fn line(row: &AnyRow) -> Result<(ProductId, i64), sqlx::Error> {
    Ok((
        db::parse_column(row, "product_id")?,
        row.try_get("quantity")?,
    ))
}

/// Bumps the cart's version when something changed; returns the version.
async fn finish_change(
    tx: &mut AnyConnection,
    user: &str,
    now: &str,
    changed: bool,
) -> Result<i64, sqlx::Error> {
    let row = if changed {
        sqlx::query(
            "INSERT INTO carts (user_id, version, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET version = carts.version + 1, updated_at = excluded.updated_at \
             RETURNING version",
        )
        .bind(user)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
    } else {
        match sqlx::query("SELECT version FROM carts WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(row) => row,
            None => return Ok(0),
        }
    };
    row.try_get("version")
}

/// Sets the stamp of `user`'s line of `product`, written by this change with
/// the guess `stamped`, to `version`, the version the change produced.
/// The line's row is already this transaction's (it wrote it), so this
/// takes no new lock.
async fn restamp(
    tx: &mut AnyConnection,
    user: &str,
    product: ProductId,
    stamped: i64,
    version: i64,
) -> Result<(), sqlx::Error> {
    if stamped == version {
        return Ok(());
    }
    sqlx::query("UPDATE cart_items SET set_version = $3 WHERE user_id = $1 AND product_id = $2")
        .bind(user)
        .bind(product.to_string())
        .bind(version)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
