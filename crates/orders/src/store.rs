//! The `orders`, `order_lines` and `outbox` tables. One set of portable
//! queries serves SQLite and PostgreSQL; the one dialect difference (how the
//! relay claims outbox rows) lives in [`claim_statement`].
//!
//! An outbox row is pending until it is delivered (`delivered_at`) or
//! dead-lettered (`dead_at`); only pending rows are claimed. Delivered rows
//! are purged after the retention; dead ones stay for a human.

use shop_api::UserId;
use shop_common::db::{self, Backend, Db};
use sqlx::any::AnyRow;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Row};

use crate::domain::{IdempotencyKey, Order, OrderId, OrderStatus};

/// Order lines per `INSERT`: 7 values each, far below the bound
/// parameters either database takes in one statement.
const LINES_PER_INSERT: usize = 500;

/// The orders service's migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/orders");

/// The outbox kind of "take these lines out of the buyer's cart".
pub const KIND_CART_REMOVAL: &str = "cart.order_removal";

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[error("orders database error")]
pub struct StoreError(#[from] sqlx::Error);

/// An order to insert, with the outbox message that goes with it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order.
    pub order: Order,
    /// The key it was placed with.
    pub key: IdempotencyKey,
    /// The JSON body the relay sends to cart.
    pub outbox_payload: String,
    /// The outbox row's id (UUID v7).
    pub outbox_id: String,
    /// When set, the outbox row is written already claimed by this relay
    /// until `lease_until`: the placing instance delivers it itself right
    /// after the commit, and other relays leave it alone meanwhile.
    pub claim: Option<Claim>,
}

/// A relay's lease on an outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The relay id, as in `outbox.claimed_by`.
    pub relay: String,
    /// The lease end (a [`db::timestamp_text`]).
    pub lease_until: String,
}

impl NewOrder {
    /// The outbox row as a relay delivers it.
    pub fn outbox_row(&self) -> OutboxRow {
        OutboxRow {
            id: self.outbox_id.clone(),
            kind: KIND_CART_REMOVAL.to_owned(),
            user_id: self.order.user_id.to_string(),
            order_id: self.order.id.to_string(),
            payload: self.outbox_payload.clone(),
            attempts: 0,
            created_at: self.order.created_at.clone(),
        }
    }
}

/// What [`OrderStore::insert`] did.
#[derive(Debug)]
pub enum Inserted {
    /// The order, its lines and its outbox row were committed.
    Created,
    /// Another order holds this (user, key): a concurrent repeat won the
    /// race. Nothing was written.
    KeyTaken,
}

/// What [`OrderStore::cancel`] found.
#[derive(Debug)]
pub enum Cancelled {
    /// The order was placed and is now cancelled.
    Done(Order),
    /// No such order of this user.
    NotFound,
    /// The order is not `placed`.
    NotPlaced(OrderStatus),
}

/// One claimed outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// The row id (UUID v7).
    pub id: String,
    /// What to deliver ([`KIND_CART_REMOVAL`]).
    pub kind: String,
    /// The buyer.
    pub user_id: String,
    /// The order.
    pub order_id: String,
    /// The JSON body to send.
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When the row was written with its order (a [`db::timestamp_text`]).
    pub created_at: String,
}

/// Access to the orders tables.
#[derive(Debug, Clone)]
pub struct OrderStore {
    db: Db,
}

const ORDER_COLUMNS: &str = "id, user_id, status, total_cents, currency, created_at, updated_at";

impl OrderStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The order `user` placed with `key`, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn find_by_key(
        &self,
        user: UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Order>, StoreError> {
        // No transaction: the lines commit with their order, so once the
        // head is visible they are too. Most keys are new: one statement.
        let mut conn = self.db.pool().acquire().await?;
        Ok(order_where(
            &mut conn,
            "user_id = $1 AND idempotency_key = $2",
            [user.to_string(), key.as_str().to_owned()],
        )
        .await?)
    }

    /// Inserts the order, its lines and its outbox row in one transaction.
    /// The order row goes first, so a concurrent insert with the same
    /// (user, key) fails on the unique index before anything else is written
    /// (on PostgreSQL it waits for the winner to commit, then fails).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails otherwise.
    pub async fn insert(&self, new: &NewOrder) -> Result<Inserted, StoreError> {
        let order = &new.order;
        let order_id = order.id.to_string();
        let user = order.user_id.to_string();
        let mut tx = self.db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO orders (id, user_id, idempotency_key, status, total_cents, currency, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&order_id)
        .bind(&user)
        .bind(new.key.as_str())
        .bind(order.status.as_str())
        .bind(order.total_cents)
        .bind(&order.currency)
        .bind(&order.created_at)
        .bind(&order.updated_at)
        .execute(&mut *tx)
        .await;
        if let Err(err) = inserted {
            if db::unique_violation(&err).is_some() {
                tx.rollback().await?;
                return Ok(Inserted::KeyTaken);
            }
            return Err(err.into());
        }
        // All lines in one statement (a cart rarely holds more than a
        // chunk), numbered in cart order.
        let mut line_numbers = 0_i64..;
        for chunk in order.lines.chunks(LINES_PER_INSERT) {
            let statement = format!(
                "INSERT INTO order_lines (order_id, line_no, product_id, name, unit_price_cents, quantity, line_total_cents) \
                 VALUES {}",
                db::placeholder_rows(chunk.len(), 7)
            );
            let mut query = sqlx::query(&statement);
            // The chunk leads the zip: at its end no number is taken.
            for (line, line_no) in chunk.iter().zip(line_numbers.by_ref()) {
                query = query
                    .bind(&order_id)
                    .bind(line_no)
                    .bind(line.product_id.to_string())
                    .bind(&line.name)
                    .bind(line.unit_price_cents)
                    .bind(line.quantity)
                    .bind(line.line_total_cents);
            }
            query.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO outbox (id, kind, user_id, order_id, payload, attempts, next_attempt_at, created_at, claimed_by, lease_until) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7, $8)",
        )
        .bind(&new.outbox_id)
        .bind(KIND_CART_REMOVAL)
        .bind(&user)
        .bind(&order_id)
        .bind(&new.outbox_payload)
        .bind(&order.created_at)
        .bind(new.claim.as_ref().map(|claim| claim.relay.as_str()))
        .bind(new.claim.as_ref().map(|claim| claim.lease_until.as_str()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Inserted::Created)
    }

    /// `user`'s order `id`; `None` when it does not exist or is another
    /// user's.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn get(&self, user: UserId, id: OrderId) -> Result<Option<Order>, StoreError> {
        let mut tx = self.db.pool().begin().await?;
        let order = fetch_order(&mut tx, user, id).await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Up to `limit` of `user`'s orders, newest first, starting after
    /// `after` (an order id from a previous page).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn list(
        &self,
        user: UserId,
        after: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let mut tx = self.db.pool().begin().await?;
        let rows = match after {
            Some(after) => {
                sqlx::query(&format!(
                    "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                ))
                .bind(user.to_string())
                .bind(after.to_string())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?
            }
            None => sqlx::query(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(user.to_string())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?,
        };
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            orders.push(load_lines(&mut tx, order_head(row)?).await?);
        }
        tx.commit().await?;
        Ok(orders)
    }

    /// Cancels `user`'s order `id` if it is placed. The status check and the
    /// change are one conditional `UPDATE`, so two concurrent cancels cannot
    /// both succeed.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn cancel(&self, user: UserId, id: OrderId) -> Result<Cancelled, StoreError> {
        let now = db::now_text();
        let mut tx = self.db.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE orders SET status = $1, updated_at = $2 \
             WHERE id = $3 AND user_id = $4 AND status = $5",
        )
        .bind(OrderStatus::Cancelled.as_str())
        .bind(&now)
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(OrderStatus::Placed.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let order = fetch_order(&mut tx, user, id).await?;
        tx.commit().await?;
        Ok(match order {
            None => Cancelled::NotFound,
            Some(order) if changed == 1 => Cancelled::Done(order),
            Some(order) => Cancelled::NotPlaced(order.status),
        })
    }

    /// Claims up to `limit` outbox rows that are due and not leased by
    /// another relay: marks them `claimed_by = relay` until `lease_until`.
    /// Delivered and dead-lettered rows are never claimed.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn claim(
        &self,
        relay: &str,
        now: &str,
        lease_until: &str,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // One statement is atomic on its own: no transaction around it.
        let _turn = self.db.write_turn().await;
        let mut claimed: Vec<OutboxRow> = sqlx::query_as(claim_statement(self.db.backend()))
            .bind(relay)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await?;
        // RETURNING gives no order; deliver oldest first.
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    /// Marks rows this relay claimed as delivered, in one statement.
    /// Returns the ids it marked; an id missing from them had its claim
    /// lost (the lease ran out and another relay took it).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn mark_delivered(
        &self,
        ids: &[&str],
        relay: &str,
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = db::placeholders(3, ids.len());
        let statement = format!(
            "UPDATE outbox SET delivered_at = $1, claimed_by = NULL, lease_until = NULL, last_error = NULL \
             WHERE claimed_by = $2 AND delivered_at IS NULL AND id IN ({placeholders}) \
             RETURNING id"
        );
        let mut query = sqlx::query(&statement).bind(db::now_text()).bind(relay);
        for id in ids {
            query = query.bind(*id);
        }
        let _turn = self.db.write_turn().await;
        let rows = query.fetch_all(self.db.pool()).await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Records a failed delivery of a row this relay claimed and releases it
    /// until `next_attempt_at`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn mark_failed(
        &self,
        id: &str,
        relay: &str,
        next_attempt_at: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        self.record_failure(id, relay, "next_attempt_at", next_attempt_at, error)
            .await?;
        Ok(())
    }

    /// Dead-letters a row this relay claimed: records the failure that
    /// ended it (counted as an attempt) and releases it for good; it is
    /// never claimed again. Returns the row's attempts, or `None` when the
    /// claim was lost (another relay holds the row now and decides).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn mark_dead(
        &self,
        id: &str,
        relay: &str,
        now: &str,
        error: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.record_failure(id, relay, "dead_at", now, error).await
    }

    /// Counts a failed attempt at a row this relay claimed, records
    /// `error`, sets `column` (when to try next, or when it died) to `at`
    /// and releases the claim, in one statement. Returns the row's
    /// attempts, or `None` when the claim was lost.
    async fn record_failure(
        &self,
        id: &str,
        relay: &str,
        column: &'static str,
        at: &str,
        error: &str,
    ) -> Result<Option<i64>, StoreError> {
        let statement = format!(
            "UPDATE outbox SET attempts = attempts + 1, {column} = $1, last_error = $2, \
             claimed_by = NULL, lease_until = NULL \
             WHERE id = $3 AND claimed_by = $4 AND delivered_at IS NULL AND dead_at IS NULL \
             RETURNING attempts"
        );
        let _turn = self.db.write_turn().await;
        let row = sqlx::query(&statement)
            .bind(at)
            .bind(error)
            .bind(id)
            .bind(relay)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.map(|row| row.try_get("attempts")).transpose()?)
    }

    /// How many rows are dead-lettered.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn count_dead(&self) -> Result<i64, StoreError> {
        let statement = "SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL";
        Ok(self.db.count(statement).await?)
    }

    /// Deletes up to `limit` rows delivered before `before` (a
    /// [`db::timestamp_text`]), oldest first; returns how many. Pending and
    /// dead rows are never touched. Call again while it returns `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn purge_delivered(&self, before: &str, limit: u32) -> Result<u64, StoreError> {
        // Pending and dead rows have no `delivered_at`: never before.
        Ok(self
            .db
            .delete_oldest("outbox", "id", "delivered_at", before, limit)
            .await?)
    }

    /// Gives back a claimed row without trying it (the relay is stopping).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn release(&self, id: &str, relay: &str) -> Result<(), StoreError> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, lease_until = NULL \
             WHERE id = $1 AND claimed_by = $2 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(relay)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

/// The statement that claims due outbox rows (`$1` relay id, `$2` lease
/// end, `$3` now, `$4` limit), returning them.
///
/// PostgreSQL: the inner `SELECT … FOR UPDATE SKIP LOCKED` locks the rows
/// it picks and skips rows another relay's claiming transaction holds, so
/// concurrent relays get disjoint batches without waiting on each other.
/// SQLite has no row locks and needs none: it has one writer at a time, so
/// the single `UPDATE … WHERE id IN (SELECT …) RETURNING` is atomic.
fn claim_statement(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "UPDATE outbox SET claimed_by = $1, lease_until = $2 WHERE id IN ( \
               SELECT id FROM outbox \
               WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3 \
                 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, user_id, order_id, payload, attempts, created_at"
        }
        Backend::Sqlite => {
            "UPDATE outbox SET claimed_by = $1, lease_until = $2 WHERE id IN ( \
               SELECT id FROM outbox \
               WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3 \
                 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY id LIMIT $4) \
             RETURNING id, kind, user_id, order_id, payload, attempts, created_at"
        }
    }
}

async fn fetch_order(
    conn: &mut AnyConnection,
    user: UserId,
    id: OrderId,
) -> Result<Option<Order>, sqlx::Error> {
    order_where(
        conn,
        "id = $1 AND user_id = $2",
        [id.to_string(), user.to_string()],
    )
    .await
}

/// The one order whose row matches `condition` over `$1` and `$2`, with
/// its lines.
async fn order_where(
    conn: &mut AnyConnection,
    condition: &str,
    [first, second]: [String; 2],
) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE {condition}"
    ))
    .bind(first)
    .bind(second)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some(load_lines(conn, order_head(&row)?).await?)),
        None => Ok(None),
    }
}

/// An order row without its lines.
fn order_head(row: &AnyRow) -> Result<Order, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let status = OrderStatus::from_stored(&status)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {status:?}").into()))?;
    Ok(Order {
        id: OrderId(db::parse_column(row, "id")?),
        user_id: db::parse_column(row, "user_id")?,
        status,
        lines: Vec::new(),
        total_cents: row.try_get("total_cents")?,
        currency: row.try_get("currency")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn load_lines(conn: &mut AnyConnection, mut order: Order) -> Result<Order, sqlx::Error> {
    order.lines = sqlx::query_as(
        "SELECT product_id, name, unit_price_cents, quantity, line_total_cents \
         FROM order_lines WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order.id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    Ok(order)
}
