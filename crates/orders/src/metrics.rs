//! The outbox's and the saga backlog's metric names, and the outbox's
//! handles. Handles are taken once (when the relay or the purge is built),
//! so recording allocates nothing; the recorder itself is installed by
//! `shop_common::metrics`. The backlog gauges are set by
//! [`crate::backlog`].
//!
//! Alert on `outbox_dead_letter_rows > 0` (take the max over replicas:
//! each reports the same table): it stays up until a human has dealt with
//! every dead row. `increase(outbox_dead_letters_total[…])` tells when and
//! why rows went dead.
//!
//! Every instance samples the same tables, so the backlog gauges
//! (`orders_saga_pending`, `outbox_pending` and their oldest ages) read
//! alike on every replica: take the max over replicas, never the sum.

use metrics::{Counter, Gauge};

/// Rows dead-lettered by this process, by `reason`: `rejected` (cart
/// refused the delivery: a 4xx other than 408/429, or a request that
/// cannot be formed), `attempts` (transient failures reached
/// `relay.max_attempts`), `expired` (older than the relay delivers).
pub const OUTBOX_DEAD_LETTERS: &str = "outbox_dead_letters_total";
/// Dead-lettered rows in the outbox table, as of the last purge round.
pub const OUTBOX_DEAD_LETTER_ROWS: &str = "outbox_dead_letter_rows";
/// Delivered rows purged after `outbox.retention_secs`.
pub const OUTBOX_PURGED: &str = "outbox_purged_rows_total";
/// Failed deliveries put off for another attempt (a transient failure with
/// attempts left); a row that finally goes dead counts in
/// [`OUTBOX_DEAD_LETTERS`] instead.
pub const OUTBOX_DELIVERY_RETRIES: &str = "outbox_delivery_retries_total";
/// Outbox rows neither delivered nor dead-lettered.
pub const OUTBOX_PENDING: &str = "outbox_pending";
/// Seconds since the oldest [`OUTBOX_PENDING`] row was written; 0 when
/// there is none.
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "outbox_oldest_pending_age_seconds";
/// Orders whose saga has not settled (a step left: pending or cancelling).
pub const SAGA_PENDING: &str = "orders_saga_pending";
/// Seconds since the oldest [`SAGA_PENDING`] order was placed; 0 when
/// there is none.
pub const SAGA_OLDEST_PENDING_AGE: &str = "orders_saga_oldest_pending_age_seconds";

/// Why a row was dead-lettered (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Cart refused it; sending it again cannot succeed.
    Rejected,
    /// Its transient failures reached `relay.max_attempts`.
    Attempts,
    /// It is older than [`crate::relay::MAX_DELIVERY_AGE`].
    Expired,
}

impl DeadReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Attempts => "attempts",
            Self::Expired => "expired",
        }
    }
}

/// Pre-registered outbox handles.
#[derive(Clone)]
pub struct OutboxMetrics {
    rejected: Counter,
    attempts: Counter,
    expired: Counter,
    /// [`OUTBOX_DEAD_LETTER_ROWS`].
    pub dead_rows: Gauge,
    /// [`OUTBOX_PURGED`].
    pub purged: Counter,
    /// [`OUTBOX_DELIVERY_RETRIES`].
    retries: Counter,
}

impl OutboxMetrics {
    /// Registers the handles (every series shows from the start, at 0).
    pub fn new() -> Self {
        // Handles taken before the recorder exists would record nothing.
        shop_common::metrics::handle();
        let dead = |reason: DeadReason| metrics::counter!(OUTBOX_DEAD_LETTERS, "reason" => reason.as_str());
        Self {
            rejected: dead(DeadReason::Rejected),
            attempts: dead(DeadReason::Attempts),
            expired: dead(DeadReason::Expired),
            dead_rows: metrics::gauge!(OUTBOX_DEAD_LETTER_ROWS),
            purged: metrics::counter!(OUTBOX_PURGED),
            retries: metrics::counter!(OUTBOX_DELIVERY_RETRIES),
        }
    }

    /// Counts one failed delivery that will be attempted again.
    pub fn delivery_retry(&self) {
        self.retries.increment(1);
    }

    /// Counts one row dead-lettered for `reason`.
    pub fn dead_letter(&self, reason: DeadReason) {
        match reason {
            DeadReason::Rejected => &self.rejected,
            DeadReason::Attempts => &self.attempts,
            DeadReason::Expired => &self.expired,
        }
        .increment(1);
    }
}

impl Default for OutboxMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for OutboxMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxMetrics").finish_non_exhaustive()
    }
}
