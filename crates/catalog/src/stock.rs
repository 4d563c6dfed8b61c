//! Stock and its reservations: the `products.stock` column and the
//! `reservations` and `reservation_lines` tables. One set of portable
//! queries serves SQLite and PostgreSQL.
//!
//! Stock never goes below zero: it is taken only by a conditional
//! `UPDATE … WHERE stock >= quantity`, and the column's CHECK refuses a
//! negative value whatever the code does. On SQLite writers take turns
//! ([`Db::begin_write`]); on PostgreSQL the row lock of that `UPDATE` orders
//! buyers racing for one product, and the condition is checked again on
//! the row as the winner left it.

use shop_common::db::{self, Db};
use sqlx::{AnyConnection, Row};

use crate::domain::{
    OrderId, Product, ProductId, ReservationLines, ReservationOutcome, ReservationState, Stock,
};
use crate::store::{COLUMNS, StoreError, product_from_row};

/// What a [`StockStore::release`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The order's reserved stock is back on the shelf.
    Returned,
    /// The order had no reservation: its release is recorded, so a
    /// reservation that arrives later reserves nothing.
    Tombstone,
    /// Nothing: the order was released before, or was rejected (held nothing).
    Unchanged,
}

impl Release {
    /// The label of this effect in metrics.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Returned => "returned",
            Self::Tombstone => "tombstone",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Writes to stock: reservations per order, their releases, restocking.
#[derive(Debug, Clone)]
pub struct StockStore {
    db: Db,
}

impl StockStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Reserves every line of `order` or none, in one transaction;
    /// returns the outcome and whether this call recorded it (`false`: a
    /// repeat, which changed nothing).
    ///
    /// Idempotent by order id: the order's row in `reservations` is
    /// inserted first, so a repeat — sequential or concurrent — finds it
    /// and answers what it records (a `released` tombstone answers
    /// released and reserves nothing). Otherwise each line takes its
    /// quantity with a conditional `UPDATE`; if any line cannot (too
    /// little stock, or no such product) every line taken is put back and
    /// the order is recorded `rejected` with the short products, in line
    /// order. The lines are recorded either way: a release gives back
    /// those of a reserved order, a repeat names the short ones again.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database fails; nothing is
    /// reserved or recorded then.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "reserve_stock",
    ))]
    pub async fn reserve(
        &self,
        order: OrderId,
        lines: &ReservationLines,
    ) -> Result<(ReservationOutcome, bool), StoreError> {
        let order_text = order.to_string();
        let now = db::now_text();
        let mut tx = self.db.begin_write().await?;
        // On PostgreSQL a concurrent attempt of the same order waits here
        // for the first to commit, then inserts nothing and reads its row.
        let first = record_first(&mut tx, &order_text, "reserved", &now).await?;
        if !first {
            let outcome = read_outcome(&mut tx, order).await?;
            tx.rollback().await?;
            return Ok((outcome, false));
        }

        let lines = lines.as_slice();
        // Rows are locked in product id order, whatever the order's line
        // order: two orders naming the same products in opposite orders
        // would otherwise deadlock on PostgreSQL.
        let mut by_product: Vec<usize> = (0..lines.len()).collect();
        by_product.sort_unstable_by_key(|&i| lines[i].product_id);
        let mut short = vec![false; lines.len()];
        for &i in &by_product {
            let taken =
                sqlx::query("UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1")
                    .bind(lines[i].quantity.get())
                    .bind(lines[i].product_id.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            short[i] = taken == 0;
        }
        let rejected = short.contains(&true);
        if rejected {
            for &i in by_product.iter().filter(|&&i| !short[i]) {
                sqlx::query("UPDATE products SET stock = stock + $1 WHERE id = $2")
                    .bind(lines[i].quantity.get())
                    .bind(lines[i].product_id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE reservations SET state = 'rejected' WHERE order_id = $1")
                .bind(&order_text)
                .execute(&mut *tx)
                .await?;
        }

        let sql = format!(
            "INSERT INTO reservation_lines (order_id, line_no, product_id, quantity, out_of_stock) \
             VALUES {}",
            db::placeholder_rows(lines.len(), 5)
        );
        let mut insert = sqlx::query(&sql);
        for (line_no, (line, short)) in lines.iter().zip(&short).enumerate() {
            // At most `MAX_LINES` lines, so the index always fits.
            let line_no = i64::try_from(line_no).unwrap_or(i64::MAX);
            insert = insert
                .bind(&order_text)
                .bind(line_no)
                .bind(line.product_id.to_string())
                .bind(line.quantity.get())
                .bind(i64::from(*short));
        }
        insert.execute(&mut *tx).await?;
        tx.commit().await?;

        let outcome = if rejected {
            ReservationOutcome {
                order_id: order,
                state: ReservationState::Rejected,
                out_of_stock: lines
                    .iter()
                    .zip(&short)
                    .filter(|(_, short)| **short)
                    .map(|(line, _)| line.product_id)
                    .collect(),
            }
        } else {
            ReservationOutcome {
                order_id: order,
                state: ReservationState::Reserved,
                out_of_stock: Vec::new(),
            }
        };
        Ok((outcome, true))
    }

    /// Releases `order`'s reservation, in one transaction; returns the
    /// outcome and what changed.
    ///
    /// A reserved order's lines go back into stock and it becomes
    /// `released`, once: the state change is conditional, so a repeat or
    /// a concurrent release gives nothing back twice. A rejected or
    /// released order is left as it is (its outcome is answered). An
    /// order never reserved is recorded `released` without lines — a
    /// tombstone — so that a reservation arriving after its release
    /// holds nothing.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database fails; nothing changes then.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "release_stock",
    ))]
    pub async fn release(
        &self,
        order: OrderId,
    ) -> Result<(ReservationOutcome, Release), StoreError> {
        let order_text = order.to_string();
        let now = db::now_text();
        let released = ReservationOutcome {
            order_id: order,
            state: ReservationState::Released,
            out_of_stock: Vec::new(),
        };
        let mut tx = self.db.begin_write().await?;
        let tombstone = record_first(&mut tx, &order_text, "released", &now).await?;
        if tombstone {
            tx.commit().await?;
            return Ok((released, Release::Tombstone));
        }
        let returning = sqlx::query(
            "UPDATE reservations SET state = 'released', updated_at = $2 \
             WHERE order_id = $1 AND state = 'reserved'",
        )
        .bind(&order_text)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !returning {
            let outcome = read_outcome(&mut tx, order).await?;
            tx.rollback().await?;
            return Ok((outcome, Release::Unchanged));
        }
        // Product id order, as a reservation locks them (no deadlock).
        let lines = sqlx::query(
            "SELECT product_id, quantity FROM reservation_lines \
             WHERE order_id = $1 ORDER BY product_id",
        )
        .bind(&order_text)
        .fetch_all(&mut *tx)
        .await?;
        for line in &lines {
            let product: String = line.try_get("product_id")?;
            let quantity: i64 = line.try_get("quantity")?;
            sqlx::query("UPDATE products SET stock = stock + $1 WHERE id = $2")
                .bind(quantity)
                .bind(product)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((released, Release::Returned))
    }

    /// Sets the stock of `product`; returns the product as it is now, or
    /// `None` when there is no such product. Units reserved by orders are
    /// not counted in: `stock` is what is left to order, and releases add
    /// to whatever it is set to.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database fails.
    pub async fn set_stock(
        &self,
        product: ProductId,
        stock: Stock,
    ) -> Result<Option<Product>, StoreError> {
        let _turn = self.db.write_turn().await;
        let row = sqlx::query(&format!(
            "UPDATE products SET stock = $1 WHERE id = $2 RETURNING {COLUMNS}"
        ))
        .bind(stock.get())
        .bind(product.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(product_from_row).transpose()
    }
}

/// Records order `order` in `state` unless it has a reservation row
/// already; true when this call wrote it. On PostgreSQL a concurrent writer
/// of the same order waits here for the first to commit.
async fn record_first(
    conn: &mut AnyConnection,
    order: &str,
    state: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO reservations (order_id, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $3) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order)
    .bind(state)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The recorded outcome of `order`: its state and, when rejected, its
/// short products in line order, in one query.
///
/// # Errors
/// [`sqlx::Error::RowNotFound`] when the order has no row; the database's
/// error, or a decode error for a state the schema does not allow.
async fn read_outcome(
    conn: &mut AnyConnection,
    order: OrderId,
) -> Result<ReservationOutcome, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.state, l.product_id FROM reservations r \
         LEFT JOIN reservation_lines l ON l.order_id = r.order_id AND l.out_of_stock = 1 \
         WHERE r.order_id = $1 ORDER BY l.line_no",
    )
    .bind(order.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let first = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    let state = match first.try_get::<String, _>("state")?.as_str() {
        "reserved" => ReservationState::Reserved,
        "rejected" => ReservationState::Rejected,
        "released" => ReservationState::Released,
        other => {
            return Err(sqlx::Error::Decode(
                format!("unknown reservation state {other:?}").into(),
            ));
        }
    };
    let mut out_of_stock = Vec::new();
    for row in &rows {
        if let Some(product) = row.try_get::<Option<String>, _>("product_id")? {
            let product: ProductId = product
                .parse()
                .map_err(|err: uuid::Error| sqlx::Error::Decode(Box::new(err)))?;
            out_of_stock.push(product);
        }
    }
    Ok(ReservationOutcome {
        order_id: order,
        state,
        out_of_stock,
    })
}
