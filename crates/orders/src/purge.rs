//! The outbox purge: a background task that deletes delivered rows once
//! they are older than `outbox.retention_secs`, in bounded batches, and
//! refreshes the dead-letter gauge. Rows not yet delivered and dead rows
//! are never deleted (the latter wait for a human).
//!
//! Every replica may run it: the batches are plain `DELETE`s of rows no
//! relay touches any more, so two replicas purging at once only share the
//! work.

use shop_common::config::RetentionSettings;
use shop_common::db;
use shop_common::error::ErrorChain;
use tokio_util::sync::CancellationToken;

use crate::metrics::OutboxMetrics;
use crate::store::{OrderStore, StoreError};

/// Deletes delivered outbox rows past their retention.
#[derive(Debug, Clone)]
pub struct Purger {
    store: OrderStore,
    settings: RetentionSettings,
    metrics: OutboxMetrics,
}

impl Purger {
    /// A purger over `store`.
    pub fn new(store: OrderStore, settings: RetentionSettings) -> Self {
        Self {
            store,
            settings,
            metrics: OutboxMetrics::new(),
        }
    }

    /// Purges at once, then every `outbox.purge_interval_ms`, until `stop`
    /// is cancelled (a round in progress ends after its current batch).
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(err) = self.round(&stop).await {
                tracing::warn!(error = %ErrorChain(&err), "outbox purge failed; trying again next round");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.settings.purge_interval()) => {}
            }
        }
    }

    /// One round: refreshes `outbox_dead_letter_rows`, then deletes rows
    /// delivered more than the retention ago, `outbox.purge_batch_size` per
    /// statement, until none is left or `stop` is cancelled. Returns how
    /// many were deleted.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails (rows deleted until then stay
    /// deleted).
    pub async fn round(&self, stop: &CancellationToken) -> Result<u64, StoreError> {
        let dead = self.store.count_dead().await?;
        // A row count, far below where f64 loses precision.
        self.metrics.dead_rows.set(dead as f64);
        let before = db::timestamp_text_ago(self.settings.retention());
        let before = &before;
        let purged =
            db::delete_in_batches(self.settings.purge_batch_size, stop, |limit| async move {
                let deleted = self.store.purge_delivered(before, limit).await?;
                self.metrics.purged.increment(deleted);
                Ok::<_, StoreError>(deleted)
            })
            .await?;
        if purged > 0 {
            tracing::info!(purged, before = %before, "delivered outbox rows purged");
        }
        Ok(purged)
    }
}
