//! The backlog sampler: every [`SAMPLE_INTERVAL`] it counts the sagas that
//! have not settled and the outbox rows not yet delivered, with the age of
//! the oldest of each, and sets the gauges of [`crate::metrics`]
//! (`orders_saga_pending`, `orders_saga_oldest_pending_age_seconds`,
//! `outbox_pending`, `outbox_oldest_pending_age_seconds`).
//!
//! A count alone says little (a busy shop always has a few sagas in
//! flight); the oldest age says whether work is stuck: a healthy saga
//! settles in well under a second, a healthy outbox row is delivered in
//! one relay round.
//!
//! Two statements per round, the same SQL on SQLite and PostgreSQL, each
//! reading only the rows it counts through a partial index
//! (`orders_saga_due` on `saga_step IS NOT NULL`, `outbox_pending` on
//! `delivered_at IS NULL AND dead_at IS NULL`): the cost follows the
//! backlog, not the tables' size. Every instance samples (each reports the
//! same tables, so take the max over replicas).

use std::time::Duration;

use metrics::Gauge;
use shop_common::db::Db;
use shop_common::error::ErrorChain;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::metrics::{
    OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PENDING, SAGA_OLDEST_PENDING_AGE, SAGA_PENDING,
};
use crate::store::StoreError;

/// How often the backlog is sampled: a third of Prometheus' usual 15 s
/// scrape interval, so a scrape reads a value at most 5 s old, while two
/// index-backed counts every 5 s cost the database nothing measurable.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Unsettled sagas: the orders with a step left.
const SAGAS: &str =
    "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM orders WHERE saga_step IS NOT NULL";

/// Outbox rows still to deliver.
const OUTBOX: &str = "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox \
     WHERE delivered_at IS NULL AND dead_at IS NULL";

/// One queue's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Queue {
    /// Items waiting.
    pub pending: i64,
    /// How long the oldest has waited; zero when none waits.
    pub oldest_age: Duration,
}

/// What one round found.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Sagas not settled.
    pub sagas: Queue,
    /// Outbox rows not delivered (dead ones excluded: they wait for a
    /// human and have a gauge of their own).
    pub outbox: Queue,
}

/// The gauges of one queue.
#[derive(Debug, Clone)]
struct QueueGauges {
    pending: Gauge,
    oldest_age: Gauge,
}

impl QueueGauges {
    fn new(pending: &'static str, oldest_age: &'static str) -> Self {
        let gauges = Self {
            pending: metrics::gauge!(pending),
            oldest_age: metrics::gauge!(oldest_age),
        };
        gauges.set(Queue::default());
        gauges
    }

    fn set(&self, queue: Queue) {
        // A row count, far below where f64 loses precision.
        self.pending.set(queue.pending as f64);
        self.oldest_age.set(queue.oldest_age.as_secs_f64());
    }
}

/// Samples the backlog of one orders database.
#[derive(Debug, Clone)]
pub struct Backlog {
    db: Db,
    sagas: QueueGauges,
    outbox: QueueGauges,
}

impl Backlog {
    /// A sampler of `db`'s backlog; its gauges read 0 until the first round.
    pub fn new(db: Db) -> Self {
        // Handles taken before the recorder exists would record nothing.
        shop_common::metrics::handle();
        Self {
            db,
            sagas: QueueGauges::new(SAGA_PENDING, SAGA_OLDEST_PENDING_AGE),
            outbox: QueueGauges::new(OUTBOX_PENDING, OUTBOX_OLDEST_PENDING_AGE),
        }
    }

    /// Samples at once, then every [`SAMPLE_INTERVAL`], until `stop`. A
    /// failed round leaves the gauges as they were (the database's own
    /// alerts say why) and is logged once until a round succeeds again.
    pub async fn run(self, stop: CancellationToken) {
        let mut failing = false;
        loop {
            match self.sample().await {
                Ok(_) => failing = false,
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(error = %ErrorChain(&err), "cannot sample the saga and outbox backlog; the gauges keep their last values");
                }
                Err(err) => tracing::debug!(error = %ErrorChain(&err), "backlog sample failed"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SAMPLE_INTERVAL) => {}
            }
        }
    }

    /// One round: reads both backlogs and sets the gauges.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; the gauges are then left
    /// as they were.
    pub async fn sample(&self) -> Result<Sample, StoreError> {
        let now = chrono::Utc::now();
        let sample = Sample {
            sagas: self.queue(SAGAS, now).await?,
            outbox: self.queue(OUTBOX, now).await?,
        };
        self.sagas.set(sample.sagas);
        self.outbox.set(sample.outbox);
        Ok(sample)
    }

    async fn queue(
        &self,
        statement: &'static str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Queue, StoreError> {
        let mut connection = self.db.acquire().await?;
        let row = sqlx::query(statement).fetch_one(&mut *connection).await?;
        let pending: i64 = row.try_get("pending")?;
        let oldest: Option<String> = row.try_get("oldest")?;
        Ok(Queue {
            pending,
            oldest_age: oldest.map_or(Duration::ZERO, |oldest| age(&oldest, now)),
        })
    }
}

/// How long before `now` the stored timestamp `at` was; zero for a time
/// after `now` (another host's clock) or text that is no timestamp (the
/// count still tells that something waits).
fn age(at: &str, now: chrono::DateTime<chrono::Utc>) -> Duration {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .and_then(|at| (now - at.with_timezone(&chrono::Utc)).to_std().ok())
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_measured_from_stored_timestamps_and_never_negative() {
        let now = chrono::DateTime::from_timestamp(1_000_000, 0).expect("valid");
        let before = shop_common::db::timestamp_text(now - chrono::Duration::milliseconds(90_500));
        assert_eq!(age(&before, now), Duration::from_millis(90_500));
        let after = shop_common::db::timestamp_text(now + chrono::Duration::seconds(3));
        assert_eq!(age(&after, now), Duration::ZERO);
        assert_eq!(age("not a time", now), Duration::ZERO);
    }
}
