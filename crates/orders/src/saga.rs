//! Runs the checkout saga ([`crate::machine`]) against the participants and
//! the store, and resumes it after crashes.
//!
//! [`Saga::drive`] runs an order's steps one after the other: read the
//! order and its step, make the step's call, and move the order to the
//! machine's next state with a conditional update (the next step is thus
//! recorded before it is attempted). The placing (or cancelling) instance
//! drives its order at once, under a lease renewed at every step; a step
//! that fails is put off with a backoff and left to the [`Recovery`]
//! worker, which also takes over every order whose lease ran out because
//! its driver died. Two drivers of one order cannot corrupt it: every call
//! is idempotent by order id, and only one of two conditional updates from
//! the same state succeeds.
//!
//! Each step is a `saga.step` span in the order's trace: below the placing
//! (or cancelling) request, or below a `saga.resume` span that continues
//! the trace stored with the order when the recovery worker takes it over.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use metrics::counter;
use shop_api::payments::PaymentState;
use shop_api::stock::ReservationState;
use shop_common::error::ErrorChain;
use shop_common::{db, trace};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::app::SERVICE;
use crate::cart::{OrderRemoval, RemovalLine};
use crate::config::SagaSettings;
use crate::domain::{Order, OrderId, OrderStatus};
use crate::machine::{Outcome, SagaState, Step};
use crate::participants::{CallFailed, CatalogClient, PaymentAction, PaymentsClient};
use crate::relay::{Relay, later};
use crate::store::{DueSaga, NewOutbox, OrderStore, SagaOrder, StoreError};

/// Orders settled by this process, by `status` (`confirmed`, `rejected`,
/// `cancelled`) and `reason` (the rejection's, or `none`).
pub const ORDERS_SETTLED: &str = "orders_settled_total";
/// Failed saga steps, by `step`; each is retried after a backoff.
pub const SAGA_STEP_FAILURES: &str = "orders_saga_step_failures_total";
/// Orders the recovery worker took over (a lease ran out or a retry came
/// due).
pub const SAGA_RECOVERED: &str = "orders_saga_recovered_total";

/// Pause after a recovery round that failed on the database itself.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Why a step's call failed (the step is retried later).
struct StepFailed {
    /// The payment provider failed (counts toward `saga.payment_attempts`).
    provider: bool,
    cause: CallFailed,
}

impl From<CallFailed> for StepFailed {
    fn from(cause: CallFailed) -> Self {
        Self {
            provider: cause.status() == Some(StatusCode::BAD_GATEWAY),
            cause,
        }
    }
}

/// Drives orders' sagas.
#[derive(Clone)]
pub struct Saga {
    inner: Arc<Inner>,
}

struct Inner {
    store: OrderStore,
    catalog: CatalogClient,
    payments: PaymentsClient,
    relay: Option<Relay>,
    settings: SagaSettings,
}

impl Saga {
    /// A saga driver over the store and the participants; with a `relay`,
    /// a confirmed order's cart removal is delivered at once (see
    /// [`Relay::deliver_placed`]).
    pub fn new(
        store: OrderStore,
        catalog: CatalogClient,
        payments: PaymentsClient,
        relay: Option<Relay>,
        settings: SagaSettings,
    ) -> Self {
        // Every series at zero from the start, so dashboards and alerts
        // find them on a fresh instance (a series born at 1 shows no
        // increase to `rate()`).
        for step in Step::ALL {
            counter!(SAGA_STEP_FAILURES, "step" => step.as_str()).increment(0);
        }
        counter!(SAGA_RECOVERED).increment(0);
        Self {
            inner: Arc::new(Inner {
                store,
                catalog,
                payments,
                relay,
                settings,
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &SagaSettings {
        &self.inner.settings
    }

    /// The end of a lease taken now.
    pub fn lease_until(&self) -> String {
        db::timestamp_text(later(chrono::Utc::now(), self.inner.settings.lease()))
    }

    /// Drives order `id` in a task of its own and waits up to `wait` for it
    /// to settle; returns the order as it stands then (`None` if it does
    /// not exist). The task goes on after the wait. `in_hand` is the order
    /// when its caller has just written it: the first step starts from it,
    /// without reading it back (see [`Saga::drive`]).
    ///
    /// # Errors
    /// [`StoreError`] when the order cannot be read.
    pub async fn drive_for(
        &self,
        id: OrderId,
        in_hand: Option<SagaOrder>,
        wait: Duration,
    ) -> Result<Option<Order>, StoreError> {
        let saga = self.clone();
        // In the caller's span: the steps belong to its trace.
        let task = tokio::spawn(
            async move {
                let driven = saga.drive(id, in_hand).await;
                if let Err(err) = &driven {
                    tracing::warn!(order_id = %id, error = %ErrorChain(err), "saga stopped on a database error; the recovery worker resumes it");
                }
                driven
            }
            .in_current_span(),
        );
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(Ok(order))) => Ok(order),
            // Timed out, failed, or the task panicked: the order as it is.
            _ => Ok(self.inner.store.saga(id).await?.map(|saga| saga.order)),
        }
    }

    /// Runs order `id`'s steps until it settles or a step fails (then it is
    /// put off for the recovery worker); returns the order as it stands.
    /// It starts from the order `in_hand` when the caller has it as it
    /// stands in the database, and after each step this driver moved it goes
    /// on with the order as it wrote it: the database is read again only
    /// when another driver may have moved it.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn drive(
        &self,
        id: OrderId,
        mut in_hand: Option<SagaOrder>,
    ) -> Result<Option<Order>, StoreError> {
        let store = &self.inner.store;
        loop {
            let saga = match in_hand.take() {
                Some(saga) => saga,
                None => match store.saga(id).await? {
                    Some(saga) => saga,
                    None => return Ok(None),
                },
            };
            let Some(step) = saga.state.step else {
                return Ok(Some(saga.order));
            };
            let span = tracing::info_span!(
                "saga.step",
                step = step.as_str(),
                order_id = %id,
                attempt = saga.attempts.saturating_add(1),
                otel.status_code = tracing::field::Empty,
            );
            let outcome = match self.run(&saga, step).instrument(span.clone()).await {
                Ok(outcome) => outcome,
                Err(failed) => {
                    span.record("otel.status_code", "error");
                    let attempts = saga.attempts.saturating_add(1);
                    if step == Step::Authorize
                        && failed.provider
                        && attempts >= i64::from(self.inner.settings.payment_attempts)
                    {
                        tracing::warn!(order_id = %id, attempts, error = %ErrorChain(&failed.cause), "the payment provider keeps failing; giving the payment up");
                        Outcome::PaymentFailed
                    } else {
                        self.put_off(&saga, step, attempts, &failed.cause).await?;
                        return Ok(Some(saga.order));
                    }
                }
            };
            let next = match saga.state.advance(outcome) {
                Ok(next) => next,
                Err(illegal) => {
                    // A participant answered what the step cannot have
                    // (someone changed its records by hand): retry later
                    // rather than settle on a guess, and say so loudly.
                    tracing::error!(order_id = %id, error = %illegal, "illegal saga transition");
                    let cause = CallFailed::Response {
                        upstream: "saga",
                        reason: illegal.to_string(),
                    };
                    self.put_off(&saga, step, saga.attempts.saturating_add(1), &cause)
                        .await?;
                    return Ok(Some(saga.order));
                }
            };
            if let Some(updated_at) = self.record(&saga, &next).await? {
                in_hand = Some(saga.moved_to(next, updated_at));
            }
        }
    }

    /// Moves `saga` to `next`; a confirmation writes (and delivers) the
    /// cart removal with it. Returns the order's new `updated_at`, or `None`
    /// when another driver moved it first: fine, the caller reads the order
    /// again.
    async fn record(
        &self,
        saga: &SagaOrder,
        next: &SagaState,
    ) -> Result<Option<String>, StoreError> {
        let store = &self.inner.store;
        let order = &saga.order;
        let outbox = (next.status == OrderStatus::Confirmed)
            .then(|| removal_of(saga, self.inner.relay.as_ref()))
            .flatten();
        let now = db::now_text();
        let moved = store
            .advance(
                order.id,
                &saga.state,
                next,
                &self.lease_until(),
                outbox.as_ref().map(|outbox| (outbox, order)),
                &now,
            )
            .await?;
        if !moved {
            return Ok(None);
        }
        if next.step.is_none() {
            let reason = next
                .rejection
                .as_ref()
                .map_or("none", |rejection| rejection.reason.as_str());
            counter!(ORDERS_SETTLED, "status" => next.status.as_str(), "reason" => reason)
                .increment(1);
            tracing::info!(order_id = %order.id, user_id = %order.user_id, status = next.status.as_str(), reason, total_cents = order.total_cents, "order settled");
        }
        if let (Some(outbox), Some(relay)) = (&outbox, &self.inner.relay) {
            relay.deliver_placed(&outbox.row(order, &now)).await;
        }
        Ok(Some(now))
    }

    /// Counts a failed attempt at `step` and puts the order off.
    async fn put_off(
        &self,
        saga: &SagaOrder,
        step: Step,
        attempts: i64,
        cause: &CallFailed,
    ) -> Result<(), StoreError> {
        counter!(SAGA_STEP_FAILURES, "step" => step.as_str()).increment(1);
        let delay = self
            .inner
            .settings
            .backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
        tracing::warn!(order_id = %saga.order.id, %step, attempts, retry_in_ms = delay.as_millis() as u64, error = %ErrorChain(cause), "saga step failed");
        self.inner
            .store
            .failed_attempt(
                saga.order.id,
                step,
                &db::timestamp_text(later(chrono::Utc::now(), delay)),
            )
            .await?;
        Ok(())
    }

    /// Makes `step`'s call and reads its answer as an outcome.
    async fn run(&self, saga: &SagaOrder, step: Step) -> Result<Outcome, StepFailed> {
        let Inner {
            catalog, payments, ..
        } = &*self.inner;
        let order = &saga.order;
        let outcome = match step {
            Step::Authorize => {
                let Some(token) = saga.payment_token.as_deref() else {
                    // Only an order written by hand lacks one.
                    return Ok(Outcome::PaymentFailed);
                };
                match payments.authorize(order, token).await {
                    Ok(payment) => match payment.state {
                        PaymentState::Authorized | PaymentState::Captured => Outcome::Authorized,
                        PaymentState::Declined => Outcome::Declined(
                            payment
                                .decline_reason
                                .unwrap_or_else(|| "card_declined".to_owned()),
                        ),
                        // A void came first (the order was given up while
                        // this authorization was in flight): nothing is held.
                        PaymentState::Voided | PaymentState::Refunded => Outcome::PaymentFailed,
                    },
                    // Payments does not take the token: nothing to retry.
                    Err(err) if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                        Outcome::Declined("invalid_payment_token".to_owned())
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            Step::Reserve => {
                let outcome = catalog.reserve(order).await?;
                match outcome.state {
                    ReservationState::Reserved => Outcome::Reserved,
                    ReservationState::Rejected | ReservationState::Released => {
                        Outcome::OutOfStock(outcome.out_of_stock)
                    }
                }
            }
            Step::Capture => match payments.act(order.id, PaymentAction::Capture).await {
                Ok(payment) if payment.state == PaymentState::Captured => Outcome::Captured,
                Ok(_) => Outcome::CaptureRefused,
                Err(err) if err.status() == Some(StatusCode::CONFLICT) => Outcome::CaptureRefused,
                Err(err) => return Err(err.into()),
            },
            Step::Void => match payments.act(order.id, PaymentAction::Void).await {
                Ok(payment) if payment.state != PaymentState::Captured => Outcome::Voided,
                Ok(payment) => {
                    return Err(StepFailed::from(CallFailed::Response {
                        upstream: "payments",
                        reason: format!("void answered {:?}", payment.state),
                    }));
                }
                Err(err) => return Err(err.into()),
            },
            Step::Release => {
                catalog.release(order.id).await?;
                Outcome::Released
            }
            Step::Refund => match payments.act(order.id, PaymentAction::Refund).await {
                Ok(payment) if payment.state == PaymentState::Refunded => Outcome::Refunded,
                // An order confirmed before checkout took payments has none.
                Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => Outcome::Refunded,
                Ok(payment) => {
                    return Err(StepFailed::from(CallFailed::Response {
                        upstream: "payments",
                        reason: format!("refund answered {:?}", payment.state),
                    }));
                }
                Err(err) => return Err(err.into()),
            },
        };
        Ok(outcome)
    }
}

/// The outbox message that takes `saga`'s lines out of the cart, claimed by
/// `relay` when there is one. `None` only if it cannot be encoded (which a
/// list of ids and integers cannot fail).
fn removal_of(saga: &SagaOrder, relay: Option<&Relay>) -> Option<NewOutbox> {
    let order = &saga.order;
    let removal = OrderRemoval {
        order_id: order.id.0,
        cart_version: saga.cart_version,
        lines: order
            .lines
            .iter()
            .map(|line| RemovalLine {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect(),
    };
    match serde_json::to_string(&removal) {
        Ok(payload) => Some(NewOutbox {
            id: Uuid::now_v7().to_string(),
            payload,
            claim: relay.map(Relay::claim_new),
        }),
        Err(err) => {
            tracing::error!(order_id = %order.id, error = %err, "cannot encode a cart removal; the ordered lines stay in the cart");
            None
        }
    }
}

/// Resumes sagas whose driver died or whose step failed: every poll
/// interval it claims the orders that are due and drives them.
pub struct Recovery {
    saga: Saga,
}

impl Recovery {
    /// A recovery worker over `saga`.
    pub fn new(saga: Saga) -> Self {
        Self { saga }
    }

    /// Runs rounds until `stop` is cancelled: at once after a full batch,
    /// otherwise after the poll interval.
    pub async fn run(self, stop: CancellationToken) {
        let settings = self.saga.settings().clone();
        loop {
            let pause = match self.round().await {
                Ok(taken) if taken >= settings.batch_size as usize => Duration::ZERO,
                Ok(_) => settings.poll_interval(),
                Err(err) => {
                    tracing::error!(error = %ErrorChain(&err), "saga recovery round failed");
                    STORE_ERROR_PAUSE
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims the due orders and drives them all; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when claiming fails.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let store = &self.saga.inner.store;
        let due = store
            .claim_due(
                &db::now_text(),
                &self.saga.lease_until(),
                self.saga.settings().batch_size,
            )
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        counter!(SAGA_RECOVERED).increment(due.len() as u64);
        tracing::info!(orders = due.len(), "resuming sagas");
        let driven = futures::future::join_all(due.iter().map(|due| self.resume(due))).await;
        for (due, result) in due.iter().zip(driven) {
            if let Err(err) = result {
                tracing::warn!(order_id = %due.id, error = %ErrorChain(&err), "cannot resume a saga; it is due again after its lease");
            }
        }
        Ok(due.len())
    }

    /// Drives a claimed order in a `saga.resume` span that continues the
    /// trace of the request that placed it.
    async fn resume(&self, due: &DueSaga) -> Result<Option<Order>, StoreError> {
        let span = tracing::info_span!("saga.resume", service = SERVICE, order_id = %due.id);
        trace::continued(
            self.saga.drive(due.id, None),
            span,
            SERVICE,
            due.traceparent.as_deref(),
        )
        .await
    }
}
