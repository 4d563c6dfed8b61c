//! The rules of the payments service: an order is authorized at most once
//! (a repeat, or a call that loses a race, answers the payment recorded),
//! and each change of state is one conditional update, so concurrent calls
//! cannot both apply it.

use crate::domain::{Amount, Currency, Operation, OrderId, Payment, PaymentState, PaymentToken};
use crate::metrics::{AUTHORIZE, Outcome, PaymentMetrics};
use crate::provider::{Decision, FakeProvider};
use crate::store::{NewPayment, PaymentStore};
use crate::{Error, Result};

/// An authorization request, every field parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// How much to hold.
    pub amount: Amount,
    /// In which currency.
    pub currency: Currency,
    /// With which test token.
    pub token: PaymentToken,
}

/// The payments of every order: the store, the provider and the metrics.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: PaymentStore,
    provider: FakeProvider,
    metrics: PaymentMetrics,
}

impl Ledger {
    /// A ledger over `store`, asking `provider`.
    pub fn new(store: PaymentStore, provider: FakeProvider) -> Self {
        Self {
            store,
            provider,
            metrics: PaymentMetrics::new(),
        }
    }

    /// The payment of `order`.
    ///
    /// # Errors
    /// [`Error::NotFound`] without one; [`Error::Store`].
    pub async fn get(&self, order: OrderId) -> Result<Payment> {
        self.store.get(order).await?.ok_or(Error::NotFound(order))
    }

    /// Authorizes `request` for `order` once: an order that has a payment
    /// in any state (a void recorded before any authorization included)
    /// gets that payment back, and the provider is not asked again. What
    /// the provider decides is recorded, a decline included; when it fails,
    /// nothing is.
    ///
    /// # Errors
    /// [`Error::Provider`] when the provider fails (the caller may try
    /// again); [`Error::Store`].
    pub async fn authorize(&self, order: OrderId, request: &Authorization) -> Result<Payment> {
        if let Some(existing) = self.store.get(order).await? {
            self.count(AUTHORIZE, Outcome::Repeated);
            return Ok(existing);
        }
        let decision = self
            .provider
            .authorize(order, request.amount, &request.currency, request.token)
            .await
            .inspect_err(|_| self.count(AUTHORIZE, Outcome::ProviderError))?;
        let (state, decline_reason, outcome) = match decision {
            Decision::Authorized => (PaymentState::Authorized, None, Outcome::Authorized),
            Decision::Declined(reason) => (PaymentState::Declined, Some(reason), Outcome::Declined),
        };
        let recorded = self
            .store
            .record(NewPayment {
                order_id: order,
                state,
                amount_cents: request.amount.cents(),
                currency: request.currency.as_str(),
                decline_reason,
            })
            .await?;
        if recorded.inserted {
            self.count(AUTHORIZE, outcome);
            tracing::info!(%order, state = ?state, "payment recorded");
        } else {
            // Another call recorded the order's payment while the provider
            // decided: that one stands. (A real provider, called with the
            // order id as idempotency key, would have held the amount once.)
            self.count(AUTHORIZE, Outcome::Repeated);
            tracing::info!(%order, state = ?recorded.payment.state, "authorization lost a race; answering the recorded payment");
        }
        Ok(recorded.payment)
    }

    /// Applies `operation` to the payment of `order`. A payment already
    /// where the operation leads is answered unchanged. A void of an order
    /// without a payment records a voided one (amount 0, currency `XXX`), so
    /// a late authorization takes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] (capture, refund) without a payment;
    /// [`Error::Conflict`] when its state refuses the operation;
    /// [`Error::Store`].
    pub async fn change(&self, order: OrderId, operation: Operation) -> Result<Payment> {
        let name = operation.name();
        // States only move forward (see `domain::Operation`), so each round
        // that goes on sees a later state than the one before: the payment
        // appeared, or reached the operation's starting state, between this
        // call's update and its read. It ends within three rounds.
        loop {
            if let Some(changed) = self.store.apply(order, operation).await? {
                self.count(name, Outcome::Applied);
                tracing::info!(%order, operation = name, "payment changed");
                return Ok(changed);
            }
            match self.store.get(order).await? {
                Some(current) if current.state == operation.from() => {}
                Some(current) if operation.is_done(current.state) => {
                    self.count(name, Outcome::Repeated);
                    return Ok(current);
                }
                Some(current) => {
                    self.count(name, Outcome::Conflict);
                    return Err(Error::Conflict {
                        order,
                        operation,
                        state: current.state,
                    });
                }
                None if operation == Operation::Void => {
                    let recorded = self.store.record(tombstone(order)).await?;
                    if recorded.inserted {
                        self.count(name, Outcome::Tombstone);
                        tracing::info!(%order, "void before any authorization recorded");
                        return Ok(recorded.payment);
                    }
                }
                None => {
                    self.count(name, Outcome::NotFound);
                    return Err(Error::NotFound(order));
                }
            }
        }
    }

    fn count(&self, operation: &'static str, outcome: Outcome) {
        self.metrics.record(operation, outcome);
    }
}

/// The voided payment of an order never authorized.
fn tombstone(order: OrderId) -> NewPayment<'static> {
    NewPayment {
        order_id: order,
        state: PaymentState::Voided,
        amount_cents: 0,
        currency: Currency::NONE,
        decline_reason: None,
    }
}
