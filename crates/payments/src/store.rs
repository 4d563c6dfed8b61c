//! The `payments` table. One set of portable queries serves SQLite and
//! PostgreSQL; each write is one statement, holding the write turn on
//! SQLite ([`Db::write_turn`]) while it runs.

use shop_common::db::{self, Db};
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::migrate::Migrator;

use crate::domain::{Operation, OrderId, Payment, PaymentState, state_from_name, state_name};

/// The payments service's migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/payments");

/// The columns of a payment, in the order [`payment`] reads them.
const COLUMNS: &str =
    "order_id, state, amount_cents, currency, decline_reason, created_at, updated_at";

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[error("payments database error")]
pub struct StoreError(#[from] sqlx::Error);

/// A payment to record (its timestamps are the store's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewPayment<'a> {
    /// The order it pays.
    pub order_id: OrderId,
    /// `authorized`, `declined` or (a void before any authorization) `voided`.
    pub state: PaymentState,
    /// In minor units.
    pub amount_cents: i64,
    /// ISO 4217 code.
    pub currency: &'a str,
    /// Why the provider declined, for a declined payment.
    pub decline_reason: Option<&'a str>,
}

/// A payment as [`PaymentStore::record`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The order's payment.
    pub payment: Payment,
    /// `false` when the order had a payment already (it is that one).
    pub inserted: bool,
}

/// Access to the `payments` table.
#[derive(Debug, Clone)]
pub struct PaymentStore {
    db: Db,
}

impl PaymentStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The payment of `order`, if it has one.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn get(&self, order: OrderId) -> Result<Option<Payment>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payments WHERE order_id = $1"
        ))
        .bind(order.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.as_ref().map(payment).transpose()?)
    }

    /// Records `new` unless its order has a payment already, in one
    /// statement: of concurrent first records of one order exactly one
    /// lands (the primary key), and every other returns that one.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "record_payment",
    ))]
    pub async fn record(&self, new: NewPayment<'_>) -> Result<Recorded, StoreError> {
        let now = db::now_text();
        let inserted = {
            let _turn = self.db.write_turn().await;
            sqlx::query(&format!(
                "INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}"
            ))
            .bind(new.order_id.to_string())
            .bind(state_name(new.state))
            .bind(new.amount_cents)
            .bind(new.currency)
            .bind(new.decline_reason)
            .bind(&now)
            .fetch_optional(self.db.pool())
            .await?
        };
        if let Some(row) = inserted {
            return Ok(Recorded {
                payment: payment(&row)?,
                inserted: true,
            });
        }
        // Payments are never deleted: the row that won is there to read.
        let existing = self.get(new.order_id).await?;
        let payment = existing.ok_or(StoreError(sqlx::Error::RowNotFound))?;
        Ok(Recorded {
            payment,
            inserted: false,
        })
    }

    /// Applies `operation` to the payment of `order` if it is in the
    /// operation's starting state, in one conditional `UPDATE`: of
    /// concurrent changes only the first applies. Returns the changed
    /// payment, or `None` when nothing changed (no payment, or one in
    /// another state).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "apply_payment_operation",
    ))]
    pub async fn apply(
        &self,
        order: OrderId,
        operation: Operation,
    ) -> Result<Option<Payment>, StoreError> {
        let _turn = self.db.write_turn().await;
        let row = sqlx::query(&format!(
            "UPDATE payments SET state = $3, updated_at = $4 \
             WHERE order_id = $1 AND state = $2 RETURNING {COLUMNS}"
        ))
        .bind(order.to_string())
        .bind(state_name(operation.from()))
        .bind(state_name(operation.to()))
        .bind(db::now_text())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.as_ref().map(payment).transpose()?)
    }
}

/// One payment from a row of [`COLUMNS`].
fn payment(row: &AnyRow) -> Result<Payment, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let state = state_from_name(&state)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown payment state {state:?}").into()))?;
    Ok(Payment {
        order_id: db::parse_column(row, "order_id")?,
        state,
        amount_cents: row.try_get("amount_cents")?,
        currency: row.try_get("currency")?,
        decline_reason: row.try_get("decline_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
