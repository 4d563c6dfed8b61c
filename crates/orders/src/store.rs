//! The `orders` (with each order's saga), `order_lines` and `outbox` tables. One set of portable
//! queries serves SQLite and PostgreSQL; the one dialect difference (how the
//! relay claims outbox rows) lives in [`claim_statement`].
//!
//! An outbox row is pending until it is delivered (`delivered_at`) or
//! dead-lettered (`dead_at`); only pending rows are claimed. Delivered rows
//! are purged after the retention; dead ones stay for a human.
//!
//! Orders and outbox rows keep the `traceparent` of the span that wrote
//! them, so the recovery worker and the relay continue the order's trace;
//! each operation that runs a transaction is a `db.transaction` span.

use shop_api::UserId;
use shop_common::db::{self, Backend, Db};
use shop_common::trace;
use sqlx::any::AnyRow;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Row};
use tracing::Instrument as _;

use crate::domain::{IdempotencyKey, Order, OrderId, OrderStatus, Rejection, RejectionReason};
use crate::machine::{Outcome, SagaState, Step};

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

/// An order to insert: pending, its saga about to authorize the payment.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order.
    pub order: Order,
    /// The key it was placed with.
    pub key: IdempotencyKey,
    /// The token it is paid with.
    pub payment_token: String,
    /// The version of the cart it was made from.
    pub cart_version: i64,
    /// Until when the placing instance drives the saga itself (a
    /// [`db::timestamp_text`]); the recovery worker takes it over after.
    pub lease_until: String,
}

/// The outbox message that takes a confirmed order's lines out of the
/// cart, written with the confirmation.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    /// The row id (UUID v7).
    pub id: String,
    /// The JSON body the relay sends to cart.
    pub payload: String,
    /// When set, the row is written already claimed by this relay until
    /// `lease_until`: the confirming instance delivers it itself right
    /// after the commit, and other relays leave it alone meanwhile.
    pub claim: Option<Claim>,
}

/// An order with where its saga stands.
#[derive(Debug, Clone)]
pub struct SagaOrder {
    /// The order.
    pub order: Order,
    /// Its place in the saga.
    pub state: SagaState,
    /// Failed attempts of the current step.
    pub attempts: i64,
    /// The token it is paid with (orders placed before the saga have none).
    pub payment_token: Option<String>,
    /// The version of the cart it was made from (likewise).
    pub cart_version: Option<i64>,
}

impl SagaOrder {
    /// The order just written at its first step: pending, to authorize
    /// `payment_token`, made from `cart_version` of the cart.
    pub fn placed(order: Order, payment_token: String, cart_version: i64) -> Self {
        Self {
            order,
            state: SagaState::placed(),
            attempts: 0,
            payment_token: Some(payment_token),
            cart_version: Some(cart_version),
        }
    }

    /// This order as [`OrderStore::advance`] left it after moving it to
    /// `next` at `updated_at`.
    pub fn moved_to(mut self, next: SagaState, updated_at: String) -> Self {
        self.order.status = next.status;
        self.order.rejection.clone_from(&next.rejection);
        self.order.updated_at = updated_at;
        self.state = next;
        self.attempts = 0;
        self
    }
}

/// A relay's lease on an outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The relay id, as in `outbox.claimed_by`.
    pub relay: String,
    /// The lease end (a [`db::timestamp_text`]).
    pub lease_until: String,
}

impl NewOutbox {
    /// The outbox row of `order`, as a relay delivers it; `created_at` is
    /// when it was written.
    pub fn row(&self, order: &Order, created_at: &str) -> OutboxRow {
        OutboxRow {
            id: self.id.clone(),
            kind: KIND_CART_REMOVAL.to_owned(),
            user_id: order.user_id.to_string(),
            order_id: order.id.to_string(),
            payload: self.payload.clone(),
            attempts: 0,
            created_at: created_at.to_owned(),
            traceparent: trace::current_traceparent(),
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

/// What [`OrderStore::start_cancel`] found.
#[derive(Debug)]
pub enum Cancelled {
    /// The order was confirmed and is now cancelling (or was cancelling or
    /// cancelled already: a repeated cancel).
    Started(Order),
    /// No such order of this user.
    NotFound,
    /// The order is pending or rejected.
    NotCancellable(OrderStatus),
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
    /// The trace context of the saga step that wrote it (see
    /// [`shop_common::trace::current_traceparent`]).
    pub traceparent: Option<String>,
}

/// An order whose saga is due, claimed by the recovery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSaga {
    /// The order.
    pub id: OrderId,
    /// The trace context of the request that placed it.
    pub traceparent: Option<String>,
}

/// Access to the orders tables.
#[derive(Debug, Clone)]
pub struct OrderStore {
    db: Db,
}

const ORDER_COLUMNS: &str = "id, user_id, status, total_cents, currency, created_at, updated_at, \
     rejection_reason, out_of_stock, decline_reason";

/// [`ORDER_COLUMNS`] and the saga's own.
const SAGA_COLUMNS: &str = "id, user_id, status, total_cents, currency, created_at, updated_at, \
     rejection_reason, out_of_stock, decline_reason, saga_step, saga_attempts, payment_token, cart_version";

impl OrderStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The span of `operation`, one transaction.
    fn span(&self, operation: &'static str) -> tracing::Span {
        trace::db_span(self.db.backend(), operation)
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

    /// Inserts the pending order and its lines in one transaction, its saga
    /// at the first step and leased to the caller until `lease_until`.
    /// The order row goes first, so a concurrent insert with the same
    /// (user, key) fails on the unique index before anything else is written
    /// (on PostgreSQL it waits for the winner to commit, then fails).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails otherwise.
    pub async fn insert(&self, new: &NewOrder) -> Result<Inserted, StoreError> {
        // The placing request's context, for whoever resumes the saga.
        let traceparent = trace::current_traceparent();
        self.insert_traced(new, traceparent.as_deref())
            .instrument(self.span("insert_order"))
            .await
    }

    async fn insert_traced(
        &self,
        new: &NewOrder,
        traceparent: Option<&str>,
    ) -> Result<Inserted, StoreError> {
        let order = &new.order;
        let order_id = order.id.to_string();
        let user = order.user_id.to_string();
        let mut tx = self.db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO orders (id, user_id, idempotency_key, status, total_cents, currency, created_at, updated_at, \
             saga_step, saga_attempts, saga_due_at, payment_token, cart_version, traceparent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13)",
        )
        .bind(&order_id)
        .bind(&user)
        .bind(new.key.as_str())
        .bind(order.status.as_str())
        .bind(order.total_cents)
        .bind(&order.currency)
        .bind(&order.created_at)
        .bind(&order.updated_at)
        .bind(Step::Authorize.as_str())
        .bind(&new.lease_until)
        .bind(&new.payment_token)
        .bind(new.cart_version)
        .bind(traceparent)
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
        tx.commit().await?;
        Ok(Inserted::Created)
    }

    /// `user`'s order `id`; `None` when it does not exist or is another
    /// user's.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn get(&self, user: UserId, id: OrderId) -> Result<Option<Order>, StoreError> {
        async {
            let mut tx = self.db.pool().begin().await?;
            let order = fetch_order(&mut tx, user, id).await?;
            tx.commit().await?;
            Ok(order)
        }
        .instrument(self.span("get_order"))
        .await
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
        self.list_in_tx(user, after, limit)
            .instrument(self.span("list_orders"))
            .await
    }

    async fn list_in_tx(
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

    /// Starts cancelling `user`'s order `id` if it is confirmed: it becomes
    /// `cancelling`, its saga at the refund, leased to the caller until
    /// `lease_until`. A cancelling or cancelled order is answered as it is
    /// (a repeated cancel).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn start_cancel(
        &self,
        user: UserId,
        id: OrderId,
        lease_until: &str,
    ) -> Result<Cancelled, StoreError> {
        let Some(order) = self.get(user, id).await? else {
            return Ok(Cancelled::NotFound);
        };
        if matches!(
            order.status,
            OrderStatus::Cancelling | OrderStatus::Cancelled
        ) {
            return Ok(Cancelled::Started(order));
        }
        let from = SagaState {
            status: order.status,
            step: None,
            rejection: None,
        };
        let Ok(to) = from.advance(Outcome::Cancel) else {
            return Ok(Cancelled::NotCancellable(order.status));
        };
        if self
            .advance(id, &from, &to, lease_until, None, &db::now_text())
            .await?
        {
            return Ok(self
                .get(user, id)
                .await?
                .map_or(Cancelled::NotFound, Cancelled::Started));
        }
        // Changed since it was read (a concurrent cancel): answer it as it
        // is now.
        Ok(match self.get(user, id).await? {
            None => Cancelled::NotFound,
            Some(order)
                if matches!(
                    order.status,
                    OrderStatus::Cancelling | OrderStatus::Cancelled
                ) =>
            {
                Cancelled::Started(order)
            }
            Some(order) => Cancelled::NotCancellable(order.status),
        })
    }

    /// Order `id` with its saga, whoever owns it.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or the row does not decode.
    pub async fn saga(&self, id: OrderId) -> Result<Option<SagaOrder>, StoreError> {
        let mut conn = self.db.pool().acquire().await?;
        let row = sqlx::query(&format!("SELECT {SAGA_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let order = load_lines(&mut conn, order_head(&row)?).await?;
        let step: Option<String> = row.try_get("saga_step")?;
        let step = step
            .map(|word| {
                Step::from_word(&word).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown saga step {word:?}").into())
                })
            })
            .transpose()?;
        Ok(Some(SagaOrder {
            state: SagaState {
                status: order.status,
                step,
                rejection: order.rejection.clone(),
            },
            order,
            attempts: row.try_get("saga_attempts")?,
            payment_token: row.try_get("payment_token")?,
            cart_version: row.try_get("cart_version")?,
        }))
    }

    /// Moves order `id` from `from` to `to` if it is still at `from` (one
    /// conditional `UPDATE`: of two drivers of one order, one moves it),
    /// resetting the attempts, leasing the next step until `due_at` and
    /// setting `updated_at` to `now` (the caller's, so it can carry on with
    /// the order in hand instead of reading it back). A confirmation writes
    /// `outbox` in the same transaction. Returns false when the order was no
    /// longer at `from`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn advance(
        &self,
        id: OrderId,
        from: &SagaState,
        to: &SagaState,
        due_at: &str,
        outbox: Option<(&NewOutbox, &Order)>,
        now: &str,
    ) -> Result<bool, StoreError> {
        // The confirming step's context, for the relay that delivers later.
        let traceparent = outbox.and_then(|_| trace::current_traceparent());
        self.advance_traced(id, from, to, due_at, outbox, traceparent.as_deref(), now)
            .instrument(self.span("advance_saga"))
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn advance_traced(
        &self,
        id: OrderId,
        from: &SagaState,
        to: &SagaState,
        due_at: &str,
        outbox: Option<(&NewOutbox, &Order)>,
        traceparent: Option<&str>,
        now: &str,
    ) -> Result<bool, StoreError> {
        let rejection = to.rejection.as_ref();
        let out_of_stock = rejection
            .filter(|rejection| !rejection.out_of_stock.is_empty())
            .map(|rejection| serde_json::to_string(&rejection.out_of_stock))
            .transpose()
            .map_err(|err| StoreError(sqlx::Error::Encode(err.into())))?;
        let update = sqlx::query(
            "UPDATE orders SET status = $1, saga_step = $2, saga_attempts = 0, saga_due_at = $3, \
             rejection_reason = $4, out_of_stock = $5, decline_reason = $6, updated_at = $7 \
             WHERE id = $8 AND status = $9 AND COALESCE(saga_step, '') = $10",
        )
        .bind(to.status.as_str())
        .bind(to.step.map(Step::as_str))
        .bind(to.step.map(|_| due_at))
        .bind(rejection.map(|rejection| rejection.reason.as_str()))
        .bind(out_of_stock)
        .bind(rejection.and_then(|rejection| rejection.decline_reason.as_deref()))
        .bind(now)
        .bind(id.to_string())
        .bind(from.status.as_str())
        .bind(from.step.map_or("", Step::as_str));
        let Some((outbox, order)) = outbox else {
            // One statement is its own transaction: no BEGIN and COMMIT
            // round trips for a step that writes nothing else.
            let _turn = self.db.write_turn().await;
            let changed = update.execute(self.db.pool()).await?.rows_affected();
            return Ok(changed > 0);
        };
        let mut tx = self.db.begin_write().await?;
        let changed = update.execute(&mut *tx).await?.rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO outbox (id, kind, user_id, order_id, payload, attempts, next_attempt_at, created_at, claimed_by, lease_until, traceparent) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7, $8, $9)",
        )
        .bind(&outbox.id)
        .bind(KIND_CART_REMOVAL)
        .bind(order.user_id.to_string())
        .bind(order.id.to_string())
        .bind(&outbox.payload)
        .bind(now)
        .bind(outbox.claim.as_ref().map(|claim| claim.relay.as_str()))
        .bind(outbox.claim.as_ref().map(|claim| claim.lease_until.as_str()))
        .bind(traceparent)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Counts a failed attempt at order `id`'s `step` and puts the next one
    /// off until `due_at`. Returns the attempts so far, or `None` when the
    /// order has moved on from `step`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn failed_attempt(
        &self,
        id: OrderId,
        step: Step,
        due_at: &str,
    ) -> Result<Option<i64>, StoreError> {
        let _turn = self.db.write_turn().await;
        let row = sqlx::query(
            "UPDATE orders SET saga_attempts = saga_attempts + 1, saga_due_at = $1 \
             WHERE id = $2 AND saga_step = $3 RETURNING saga_attempts",
        )
        .bind(due_at)
        .bind(id.to_string())
        .bind(step.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|row| row.try_get("saga_attempts")).transpose()?)
    }

    /// Claims up to `limit` orders whose saga is due (`saga_due_at` passed:
    /// a lease ran out, or a retry is due), leasing each until
    /// `lease_until`. Returns them, oldest id first, with the trace context
    /// each was placed in.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn claim_due(
        &self,
        now: &str,
        lease_until: &str,
        limit: u32,
    ) -> Result<Vec<DueSaga>, StoreError> {
        let statement = match self.db.backend() {
            // As for the outbox: disjoint batches without waiting.
            Backend::Postgres => {
                "UPDATE orders SET saga_due_at = $1 WHERE id IN ( \
                   SELECT id FROM orders WHERE saga_step IS NOT NULL AND saga_due_at <= $2 \
                   ORDER BY saga_due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, traceparent"
            }
            Backend::Sqlite => {
                "UPDATE orders SET saga_due_at = $1 WHERE id IN ( \
                   SELECT id FROM orders WHERE saga_step IS NOT NULL AND saga_due_at <= $2 \
                   ORDER BY saga_due_at LIMIT $3) \
                 RETURNING id, traceparent"
            }
        };
        let _turn = self.db.write_turn().await;
        let rows = sqlx::query(statement)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await?;
        let mut due = rows
            .iter()
            .map(|row| {
                Ok(DueSaga {
                    id: OrderId(db::parse_column(row, "id")?),
                    traceparent: row.try_get("traceparent")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        due.sort_by_key(|saga| saga.id);
        Ok(due)
    }

    /// How many orders have a saga step left (pending or cancelling).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn count_unsettled(&self) -> Result<i64, StoreError> {
        let statement = "SELECT COUNT(*) FROM orders WHERE saga_step IS NOT NULL";
        Ok(self.db.count(statement).await?)
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
             RETURNING id, kind, user_id, order_id, payload, attempts, created_at, traceparent"
        }
        Backend::Sqlite => {
            "UPDATE outbox SET claimed_by = $1, lease_until = $2 WHERE id IN ( \
               SELECT id FROM outbox \
               WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3 \
                 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY id LIMIT $4) \
             RETURNING id, kind, user_id, order_id, payload, attempts, created_at, traceparent"
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
    let decode = |what: String| sqlx::Error::Decode(what.into());
    let status: String = row.try_get("status")?;
    let status = OrderStatus::from_word(&status)
        .ok_or_else(|| decode(format!("unknown order status {status:?}")))?;
    let reason: Option<String> = row.try_get("rejection_reason")?;
    let rejection = match reason {
        None => None,
        Some(reason) => {
            let out_of_stock: Option<String> = row.try_get("out_of_stock")?;
            Some(Rejection {
                reason: RejectionReason::from_word(&reason)
                    .ok_or_else(|| decode(format!("unknown rejection reason {reason:?}")))?,
                out_of_stock: match out_of_stock {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|err| decode(format!("out_of_stock: {err}")))?,
                    None => Vec::new(),
                },
                decline_reason: row.try_get("decline_reason")?,
            })
        }
    };
    Ok(Order {
        id: OrderId(db::parse_column(row, "id")?),
        user_id: db::parse_column(row, "user_id")?,
        status,
        rejection,
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

#[cfg(test)]
mod tests {
    use shop_common::config::DatabaseSettings;

    use super::*;
    use crate::domain::OrderLine;

    fn new_order() -> NewOrder {
        let now = db::now_text();
        NewOrder {
            order: Order {
                id: OrderId::new(),
                user_id: uuid::Uuid::now_v7().into(),
                status: OrderStatus::Pending,
                rejection: None,
                lines: vec![OrderLine {
                    product_id: uuid::Uuid::now_v7(),
                    name: "a product".to_owned(),
                    unit_price_cents: 100,
                    quantity: 1,
                    line_total_cents: 100,
                }],
                total_cents: 100,
                currency: "EUR".to_owned(),
                created_at: now.clone(),
                updated_at: now,
            },
            key: IdempotencyKey::parse("trace-key").expect("a key"),
            payment_token: "tok_visa".to_owned(),
            cart_version: 1,
            lease_until: db::now_text(),
        }
    }

    /// The recovery worker and the relay get back the trace context of the
    /// span that wrote the order and the outbox row.
    #[tokio::test]
    async fn orders_and_outbox_rows_keep_the_trace_that_wrote_them() {
        shop_common::telemetry::init();
        for test_db in shop_testkit::databases().await {
            let db = Db::connect(&DatabaseSettings::new(test_db.url.clone()))
                .await
                .expect("connect");
            db.migrate(&MIGRATOR).await.expect("migrate");
            let store = OrderStore::new(db);
            let new = new_order();
            let placing = tracing::info_span!("request", service = crate::app::SERVICE);
            let placed_in = placing
                .in_scope(trace::current_traceparent)
                .expect("a traced span");
            let inserted = store.insert(&new).instrument(placing).await;
            assert!(matches!(inserted, Ok(Inserted::Created)), "{inserted:?}");

            let later = db::timestamp_text(chrono::Utc::now() + chrono::Duration::hours(1));
            let due = store.claim_due(&later, &later, 10).await.expect("claimed");
            assert_eq!(
                due,
                vec![DueSaga {
                    id: new.order.id,
                    traceparent: Some(placed_in),
                }],
                "{}",
                test_db.engine
            );

            let confirming = tracing::info_span!("saga.resume", service = crate::app::SERVICE);
            let confirmed_in = confirming
                .in_scope(trace::current_traceparent)
                .expect("a traced span");
            let outbox = NewOutbox {
                id: uuid::Uuid::now_v7().to_string(),
                payload: "{}".to_owned(),
                claim: None,
            };
            let confirmed = SagaState {
                status: OrderStatus::Confirmed,
                step: None,
                rejection: None,
            };
            let moved = store
                .advance(
                    new.order.id,
                    &SagaState::placed(),
                    &confirmed,
                    &later,
                    Some((&outbox, &new.order)),
                    &db::now_text(),
                )
                .instrument(confirming)
                .await
                .expect("advanced");
            assert!(moved);
            let rows = store
                .claim("relay", &later, &later, 10)
                .await
                .expect("claimed");
            assert_eq!(rows.len(), 1, "{}", test_db.engine);
            assert_eq!(
                rows[0].traceparent.as_deref(),
                Some(confirmed_in.as_str()),
                "{}",
                test_db.engine
            );
        }
    }
}
