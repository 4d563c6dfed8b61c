//! The outbox relay: delivers committed outbox rows to cart at least once.
//!
//! The instance that confirms an order (the saga's driver, see
//! [`crate::saga`]) writes its outbox row already claimed (leased to its own
//! relay) in the confirmation's transaction and delivers it at once, so the
//! buyer's cart is empty by the time the confirmed order is answered. Those
//! deliveries are marked by an [`Acknowledger`], many rows per statement:
//! the confirming call does not wait for its mark. Rounds
//! deliver everything else: each claims a batch of due
//! rows with a lease (so replicas never work on one row at the same time),
//! delivers them concurrently, marks the delivered ones in one statement
//! and schedules each failed one's retry with exponential backoff. A row
//! whose confirming instance died mid-delivery is due again when its lease
//! runs out. Cart's receiver is idempotent by order id, so a repeat after
//! a crash between delivering and marking changes nothing.
//!
//! Each delivery is an `outbox.deliver` span continuing the trace stored
//! with its row (the order's), so the cart's removal joins the checkout's
//! trace however late it is delivered, and by whichever instance.
//!
//! A row that can never be delivered is dead-lettered instead of retried
//! forever: at once when cart refuses it (a 4xx other than 408/429), after
//! `relay.max_attempts` transient failures, or when it is older than
//! [`MAX_DELIVERY_AGE`]. A dead row is never claimed again; it is counted
//! ([`crate::metrics::OUTBOX_DEAD_LETTERS`]) and logged once at `error`.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use shop_common::error::ErrorChain;
use shop_common::{db, trace};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::SERVICE;
use crate::cart::CartClient;
use crate::config::RelaySettings;
use crate::metrics::{DeadReason, OutboxMetrics};
use crate::store::{Claim, KIND_CART_REMOVAL, OrderStore, OutboxRow, StoreError};

/// Pause after a round that failed on the database itself.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The oldest row the relay delivers, counted from when its order was
/// confirmed (`outbox.created_at`); an older row is dead-lettered without a
/// call. This bound is what makes cart's purge of its applied-order
/// records safe: cart recognises a repeated removal only while it keeps
/// the order's record, and it keeps each record at least
/// `shop_cart::config::MIN_APPLIED_ORDER_RETENTION_SECS` (two days) after
/// applying it, which is after the order was confirmed. Every delivery of
/// a row — the first, a repeat after a crash before its mark, a requeue of
/// a dead row — starts within this day of the confirmation, and ends within
/// `cart.deadline_ms`, so it reaches cart while the record is still there;
/// the second day absorbs the call's deadline and clock skew between
/// hosts. (`relay.max_attempts` usually ends a failing row much sooner;
/// this bound also covers the rows that fail without counting an attempt:
/// a relay that dies mid-delivery again and again, deliveries that succeed
/// but whose mark is lost, rows left while no relay ran.)
pub const MAX_DELIVERY_AGE: Duration = Duration::from_secs(24 * 3_600);

/// Why a delivery failed, and whether it is worth trying again.
#[derive(Debug)]
struct Failure {
    /// `Some` when the row must be dead-lettered now, whatever its attempts.
    dead: Option<DeadReason>,
    /// The status cart answered, if it answered.
    status: Option<u16>,
    /// The cause, as stored in `last_error`.
    cause: String,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows delivered and marked.
    pub delivered: usize,
    /// Rows whose delivery failed (retried later, or dead-lettered).
    pub failed: usize,
}

/// Delivers outbox rows.
#[derive(Clone)]
pub struct Relay {
    id: Arc<str>,
    store: OrderStore,
    cart: CartClient,
    service_token: Option<SecretString>,
    settings: RelaySettings,
    acks: mpsc::UnboundedSender<String>,
    metrics: OutboxMetrics,
}

impl Relay {
    /// A relay named `id` (unique among replicas: it marks claims), and the
    /// [`Acknowledger`] that marks what [`Relay::deliver_placed`] delivers:
    /// run it beside the relay for as long as orders may be placed.
    pub fn new(
        id: impl Into<Arc<str>>,
        store: OrderStore,
        cart: CartClient,
        service_token: Option<SecretString>,
        settings: RelaySettings,
    ) -> (Self, Acknowledger) {
        let (acks, received) = mpsc::unbounded_channel();
        let id: Arc<str> = id.into();
        let acknowledger = Acknowledger {
            relay: Arc::clone(&id),
            store: store.clone(),
            limit: usize::try_from(settings.batch_size)
                .unwrap_or(usize::MAX)
                .max(1),
            received,
        };
        let relay = Self {
            id,
            store,
            cart,
            service_token,
            settings,
            acks,
            metrics: OutboxMetrics::new(),
        };
        (relay, acknowledger)
    }

    /// This relay's id, as written to `outbox.claimed_by`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A lease on a row this relay is about to write and deliver itself
    /// ([`Relay::deliver_placed`]).
    pub fn claim_new(&self) -> Claim {
        Claim {
            relay: self.id.to_string(),
            lease_until: db::timestamp_text(later(chrono::Utc::now(), self.settings.lease())),
        }
    }

    /// Delivers the outbox row of an order this instance just confirmed,
    /// claimed by [`Relay::claim_new`] in the confirmation's transaction: the
    /// buyer's cart is cleared before the confirmed order is answered, so
    /// the next request already sees it. The
    /// mark is left to the [`Acknowledger`]. A failed delivery is scheduled
    /// for a retry like any other; a crash before the delivery or its mark
    /// leaves the row to whichever relay finds its lease over (a repeated
    /// delivery changes nothing).
    pub async fn deliver_placed(&self, row: &OutboxRow) {
        if self.deliver(row).await && self.acks.send(row.id.clone()).is_err() {
            tracing::warn!(outbox_id = %row.id, "the acknowledger has stopped; the delivery will be repeated once its lease runs out");
        }
    }

    /// Runs rounds until `stop` is cancelled: after a full batch at once,
    /// otherwise after the poll interval. Most rows never reach a round:
    /// the instance that confirmed the order delivers it; rounds pick up
    /// retries and rows whose confirming instance stopped.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(relay = %self.id, "outbox relay started");
        loop {
            let pause = match self.round(&stop).await {
                Ok(round) if round.claimed as u64 >= u64::from(self.settings.batch_size) => {
                    Duration::ZERO
                }
                Ok(_) => self.settings.poll_interval(),
                Err(err) => {
                    tracing::error!(relay = %self.id, error = %ErrorChain(&err), "outbox relay round failed");
                    STORE_ERROR_PAUSE
                }
            };
            if pause.is_zero() && !stop.is_cancelled() {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(relay = %self.id, "outbox relay stopped");
    }

    /// Claims one batch and delivers its rows concurrently, then marks the
    /// delivered ones in one statement. Rows not yet tried when `stop` is
    /// cancelled are released for the next relay.
    ///
    /// # Errors
    /// [`StoreError`] when claiming fails.
    pub async fn round(&self, stop: &CancellationToken) -> Result<Round, StoreError> {
        let now = chrono::Utc::now();
        let lease_until = later(now, self.settings.lease());
        let rows = self
            .store
            .claim(
                &self.id,
                &db::timestamp_text(now),
                &db::timestamp_text(lease_until),
                self.settings.batch_size,
            )
            .await?;
        let mut round = Round {
            claimed: rows.len(),
            ..Round::default()
        };
        let outcomes = futures::future::join_all(rows.iter().map(|row| async move {
            if stop.is_cancelled() {
                if let Err(err) = self.store.release(&row.id, &self.id).await {
                    tracing::warn!(outbox_id = %row.id, error = %ErrorChain(&err), "cannot release an outbox row; its lease will run out");
                }
                return None;
            }
            Some(self.deliver(row).await)
        }))
        .await;
        let mut delivered = Vec::with_capacity(rows.len());
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Some(true) => delivered.push(row.id.as_str()),
                Some(false) => round.failed += 1,
                None => {}
            }
        }
        round.delivered = delivered.len();
        mark_delivered(&self.store, &self.id, &delivered).await;
        Ok(round)
    }

    /// Delivers one row; true when delivered. A failure is recorded at
    /// once, as a retry with its next attempt time or as a dead letter; a
    /// success is marked by the caller (the round, or the acknowledger for
    /// a hand-off). Runs in an `outbox.deliver` span continuing the row's
    /// trace.
    async fn deliver(&self, row: &OutboxRow) -> bool {
        let span = tracing::info_span!(
            "outbox.deliver",
            service = SERVICE,
            order_id = %row.order_id,
            outbox_id = %row.id,
            attempt = row.attempts.saturating_add(1),
            otel.status_code = tracing::field::Empty,
        );
        let delivered = trace::continued(
            self.deliver_in_span(row),
            span.clone(),
            SERVICE,
            row.traceparent.as_deref(),
        )
        .await;
        if !delivered {
            span.record("otel.status_code", "error");
        }
        delivered
    }

    async fn deliver_in_span(&self, row: &OutboxRow) -> bool {
        let outcome = match expired(row, chrono::Utc::now()) {
            Some(cause) => Err(Failure {
                dead: Some(DeadReason::Expired),
                status: None,
                cause,
            }),
            None => self.send(row).await,
        };
        match outcome {
            Ok(applied) => {
                tracing::info!(order_id = %row.order_id, applied, "order lines removed from the cart");
                true
            }
            Err(failure) => {
                self.record_failure(row, failure).await;
                false
            }
        }
    }

    /// Sends one row to cart; `Ok(applied)` when cart took it.
    async fn send(&self, row: &OutboxRow) -> Result<bool, Failure> {
        match row.kind.as_str() {
            KIND_CART_REMOVAL => self
                .cart
                .remove_order_lines(
                    &row.user_id,
                    row.payload.clone(),
                    self.service_token.as_ref(),
                )
                .await
                .map(|removed| removed.applied)
                .map_err(|err| Failure {
                    dead: err.is_permanent().then_some(DeadReason::Rejected),
                    status: err.status().map(|status| status.as_u16()),
                    cause: ErrorChain(&err).to_string(),
                }),
            other => Err(Failure {
                dead: Some(DeadReason::Rejected),
                status: None,
                cause: format!("unknown outbox kind {other:?}"),
            }),
        }
    }

    /// Records a failed delivery of a row this relay claimed: a retry after
    /// the backoff while the failure is transient and attempts remain,
    /// otherwise a dead letter.
    async fn record_failure(&self, row: &OutboxRow, failure: Failure) {
        let attempts = row.attempts.saturating_add(1);
        let dead = failure.dead.or_else(|| {
            (attempts >= i64::from(self.settings.max_attempts)).then_some(DeadReason::Attempts)
        });
        let Failure { status, cause, .. } = failure;
        let Some(reason) = dead else {
            let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
            let delay = self.settings.backoff(attempts);
            let next = later(chrono::Utc::now(), delay);
            self.metrics.delivery_retry();
            tracing::warn!(order_id = %row.order_id, attempts, status, retry_in_ms = delay.as_millis() as u64, error = %cause, "outbox delivery failed");
            if let Err(err) = self
                .store
                .mark_failed(&row.id, &self.id, &db::timestamp_text(next), &cause)
                .await
            {
                tracing::warn!(outbox_id = %row.id, error = %ErrorChain(&err), "cannot record a failed delivery; its lease will run out");
            }
            return;
        };
        match self
            .store
            .mark_dead(&row.id, &self.id, &db::now_text(), &cause)
            .await
        {
            Ok(Some(attempts)) => {
                self.metrics.dead_letter(reason);
                tracing::error!(
                    order_id = %row.order_id,
                    outbox_id = %row.id,
                    user_id = %row.user_id,
                    attempts,
                    status,
                    reason = reason.as_str(),
                    error = %cause,
                    "outbox row dead-lettered: it will not be delivered again until requeued; the ordered lines stay in the cart"
                );
            }
            Ok(None) => {
                tracing::warn!(order_id = %row.order_id, outbox_id = %row.id, "claim lost before the row could be dead-lettered; the relay holding it decides");
            }
            Err(err) => {
                tracing::warn!(outbox_id = %row.id, error = %ErrorChain(&err), "cannot dead-letter an outbox row; its lease will run out");
            }
        }
    }
}

/// Why `row` is too old to deliver at `now` ([`MAX_DELIVERY_AGE`]), if it
/// is. A row whose age cannot be read is not delivered either: that it is
/// young enough cannot be shown.
fn expired(row: &OutboxRow, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let Ok(created) = chrono::DateTime::parse_from_rfc3339(&row.created_at) else {
        return Some(format!(
            "unreadable outbox created_at {:?}; delivering it could repeat a removal cart no longer recognises",
            row.created_at
        ));
    };
    let oldest = chrono::Duration::from_std(MAX_DELIVERY_AGE)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))?;
    (created < oldest).then(|| {
        format!(
            "written at {}, more than {} h ago: too old to deliver (cart may have purged its record of the order)",
            row.created_at,
            MAX_DELIVERY_AGE.as_secs() / 3_600
        )
    })
}

/// Marks rows `relay` delivered, in one statement.
async fn mark_delivered(store: &OrderStore, relay: &str, delivered: &[&str]) {
    match store.mark_delivered(delivered, relay).await {
        Ok(marked) if marked.len() < delivered.len() => {
            tracing::warn!(
                lost = delivered.len() - marked.len(),
                "claims lost before marking delivered (lease ran out); the repeats are harmless"
            );
        }
        Ok(_) => {}
        // Delivered but not marked: they will be delivered again, which
        // cart ignores.
        Err(err) => {
            tracing::warn!(rows = delivered.len(), error = %ErrorChain(&err), "cannot mark outbox rows delivered");
        }
    }
}

/// Marks the rows [`Relay::deliver_placed`] delivered, up to
/// `relay.batch_size` per statement: while one batch is written the next
/// gathers, so under load an order costs a fraction of a statement, and
/// when idle a mark waits for nothing.
pub struct Acknowledger {
    /// The relay whose claims it marks.
    relay: Arc<str>,
    store: OrderStore,
    /// Most rows per statement.
    limit: usize,
    received: mpsc::UnboundedReceiver<String>,
}

impl Acknowledger {
    /// Marks deliveries as they come until `stop` is cancelled (or every
    /// [`Relay`] is gone), then marks those already reported and returns.
    /// Cancel `stop` once no more orders are placed (after the gRPC drain);
    /// a delivery reported later is not marked and is repeated when its
    /// lease runs out.
    pub async fn run(mut self, stop: CancellationToken) {
        let limit = self.limit;
        let mut batch = Vec::with_capacity(limit);
        loop {
            let stopping = tokio::select! {
                biased;
                () = stop.cancelled() => true,
                received = self.received.recv_many(&mut batch, limit) => received == 0,
            };
            if stopping {
                break;
            }
            self.mark(&mut batch).await;
        }
        self.received.close();
        while self.received.recv_many(&mut batch, limit).await > 0 {
            self.mark(&mut batch).await;
        }
    }

    /// Marks `batch` in one statement and empties it.
    async fn mark(&self, batch: &mut Vec<String>) {
        let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
        mark_delivered(&self.store, &self.relay, &ids).await;
        batch.clear();
    }
}

/// `at + delay`, saturating at the latest representable time.
pub(crate) fn later(
    at: chrono::DateTime<chrono::Utc>,
    delay: Duration,
) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| at.checked_add_signed(delay))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(created_at: &str) -> OutboxRow {
        OutboxRow {
            id: "row".to_owned(),
            kind: KIND_CART_REMOVAL.to_owned(),
            user_id: "user".to_owned(),
            order_id: "order".to_owned(),
            payload: "{}".to_owned(),
            attempts: 0,
            created_at: created_at.to_owned(),
            traceparent: None,
        }
    }

    #[test]
    fn a_row_older_than_the_delivery_age_is_not_delivered() {
        let now = chrono::Utc::now();
        let age = |hours: i64| db::timestamp_text(now - chrono::Duration::hours(hours));
        assert!(expired(&row(&age(0)), now).is_none());
        assert!(expired(&row(&age(23)), now).is_none());
        assert!(expired(&row(&age(25)), now).is_some());
        assert!(expired(&row("yesterday"), now).is_some(), "unreadable");
        // Written by a host whose clock runs ahead.
        assert!(expired(&row(&age(-1)), now).is_none());
    }
}
