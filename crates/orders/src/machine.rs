//! The order's state machine: which step of the checkout saga runs next,
//! and what each step's outcome changes. Pure: no I/O, so every transition
//! — and every refusal — is tested here.
//!
//! ```text
//!   pending ─authorize─┬─ declined ──────────────────────────────▶ rejected
//!                      ├─ failed ─────▶ void ─▶ release ─────────▶ rejected
//!                      └─ authorized ─▶ reserve ─┬─ out of stock ─▶ void ─▶ release ─▶ rejected
//!                                                └─ reserved ─▶ capture ─┬─ captured ─▶ confirmed
//!                                                                        └─ refused ──▶ void ─▶ release ─▶ rejected
//!   confirmed ─cancel─▶ cancelling: refund ─▶ release ─▶ cancelled
//! ```
//!
//! Each step is an idempotent call by order id (payments and catalog record
//! what they did), and the step is written before it is attempted: whoever
//! resumes an order after a crash runs its step again, and a repeat changes
//! nothing. Compensation always voids and releases, in that order: a void
//! or release of something never taken records a tombstone, so a call that
//! arrives late (an authorization or reservation still in flight when the
//! order was given up) takes nothing.

use std::fmt;

use shop_api::ProductId;

use crate::domain::{OrderStatus, Rejection, RejectionReason};

/// A step of the saga: one call to payments or catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Authorize the order's total with payments.
    Authorize,
    /// Reserve the order's lines with catalog.
    Reserve,
    /// Capture the authorized payment.
    Capture,
    /// Void the payment (compensation).
    Void,
    /// Release the reserved stock (compensation and cancellation).
    Release,
    /// Refund the captured payment (cancellation).
    Refund,
}

impl Step {
    /// Every step.
    pub const ALL: [Self; 6] = [
        Self::Authorize,
        Self::Reserve,
        Self::Capture,
        Self::Void,
        Self::Release,
        Self::Refund,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Reserve => "reserve",
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Release => "release",
            Self::Refund => "refund",
        }
    }

    /// The step named `word`.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == word)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step's call answered (or what the owner asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Payments authorized the amount.
    Authorized,
    /// Payments declined, with the provider's reason.
    Declined(String),
    /// The provider kept failing: the payment is given up.
    PaymentFailed,
    /// Catalog reserved every line.
    Reserved,
    /// Catalog had too few of these products; nothing is held.
    OutOfStock(Vec<ProductId>),
    /// Payments captured the payment.
    Captured,
    /// Payments refused to capture (the authorization is gone).
    CaptureRefused,
    /// Payments voided the payment (or recorded that there is none).
    Voided,
    /// Catalog released the stock (or recorded that there is none).
    Released,
    /// Payments refunded the payment.
    Refunded,
    /// The owner cancels the order.
    Cancel,
}

impl Outcome {
    /// A short name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Authorized => "authorized",
            Self::Declined(_) => "declined",
            Self::PaymentFailed => "payment failed",
            Self::Reserved => "reserved",
            Self::OutOfStock(_) => "out of stock",
            Self::Captured => "captured",
            Self::CaptureRefused => "capture refused",
            Self::Voided => "voided",
            Self::Released => "released",
            Self::Refunded => "refunded",
            Self::Cancel => "cancel",
        }
    }
}

/// An order's place in the saga: its status, the step to run next (none
/// once settled) and, once the order is given up, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaState {
    /// The order's status.
    pub status: OrderStatus,
    /// The step to run next; `None` when nothing is left to do.
    pub step: Option<Step>,
    /// Why the order is (being) rejected.
    pub rejection: Option<Rejection>,
}

/// A transition the machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order {status} at step {step} cannot take the outcome {outcome}", status = .status.as_str(), step = .step.map_or("none", Step::as_str))]
pub struct IllegalTransition {
    /// The order's status.
    pub status: OrderStatus,
    /// Its step.
    pub step: Option<Step>,
    /// The outcome refused.
    pub outcome: &'static str,
}

impl SagaState {
    /// A new order: pending, about to authorize its payment.
    pub fn placed() -> Self {
        Self {
            status: OrderStatus::Pending,
            step: Some(Step::Authorize),
            rejection: None,
        }
    }

    /// The state after `outcome`.
    ///
    /// # Errors
    /// [`IllegalTransition`] for an outcome the current step cannot have
    /// (or a cancellation of an order that is not confirmed).
    pub fn advance(&self, outcome: Outcome) -> Result<Self, IllegalTransition> {
        use OrderStatus::{Cancelled, Cancelling, Confirmed, Pending, Rejected};
        let pending = |step| Self {
            status: Pending,
            step: Some(step),
            rejection: self.rejection.clone(),
        };
        let compensate = |rejection| Self {
            status: Pending,
            step: Some(Step::Void),
            rejection: Some(rejection),
        };
        let settled = |status, rejection| Self {
            status,
            step: None,
            rejection,
        };
        let next = match (self.status, self.step, outcome) {
            (Pending, Some(Step::Authorize), Outcome::Authorized) if self.rejection.is_none() => {
                pending(Step::Reserve)
            }
            // Nothing is held yet: payments holds nothing for a decline,
            // and stock is reserved only after the authorization.
            (Pending, Some(Step::Authorize), Outcome::Declined(reason))
                if self.rejection.is_none() =>
            {
                settled(
                    Rejected,
                    Some(rejection(
                        RejectionReason::PaymentDeclined,
                        Vec::new(),
                        Some(reason),
                    )),
                )
            }
            (Pending, Some(Step::Authorize), Outcome::PaymentFailed)
                if self.rejection.is_none() =>
            {
                compensate(rejection(RejectionReason::PaymentFailed, Vec::new(), None))
            }
            (Pending, Some(Step::Reserve), Outcome::Reserved) if self.rejection.is_none() => {
                pending(Step::Capture)
            }
            (Pending, Some(Step::Reserve), Outcome::OutOfStock(products))
                if self.rejection.is_none() =>
            {
                compensate(rejection(RejectionReason::OutOfStock, products, None))
            }
            (Pending, Some(Step::Capture), Outcome::Captured) if self.rejection.is_none() => {
                settled(Confirmed, None)
            }
            (Pending, Some(Step::Capture), Outcome::CaptureRefused) if self.rejection.is_none() => {
                compensate(rejection(RejectionReason::PaymentFailed, Vec::new(), None))
            }
            (Pending, Some(Step::Void), Outcome::Voided) if self.rejection.is_some() => {
                pending(Step::Release)
            }
            (Pending, Some(Step::Release), Outcome::Released) if self.rejection.is_some() => {
                settled(Rejected, self.rejection.clone())
            }
            (Confirmed, None, Outcome::Cancel) => Self {
                status: Cancelling,
                step: Some(Step::Refund),
                rejection: None,
            },
            (Cancelling, Some(Step::Refund), Outcome::Refunded) => Self {
                status: Cancelling,
                step: Some(Step::Release),
                rejection: None,
            },
            (Cancelling, Some(Step::Release), Outcome::Released) => settled(Cancelled, None),
            (status, step, outcome) => {
                return Err(IllegalTransition {
                    status,
                    step,
                    outcome: outcome.name(),
                });
            }
        };
        Ok(next)
    }
}

fn rejection(
    reason: RejectionReason,
    out_of_stock: Vec<ProductId>,
    decline_reason: Option<String>,
) -> Rejection {
    Rejection {
        reason,
        out_of_stock,
        decline_reason,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn product() -> ProductId {
        "0196a1c0-5e00-7000-8000-000000000001"
            .parse()
            .expect("a product id")
    }

    fn outcomes() -> Vec<Outcome> {
        vec![
            Outcome::Authorized,
            Outcome::Declined("card_declined".to_owned()),
            Outcome::PaymentFailed,
            Outcome::Reserved,
            Outcome::OutOfStock(vec![product()]),
            Outcome::Captured,
            Outcome::CaptureRefused,
            Outcome::Voided,
            Outcome::Released,
            Outcome::Refunded,
            Outcome::Cancel,
        ]
    }

    /// Every state an order can be in, reached from `placed` by legal
    /// outcomes, plus the rejection-less compensation steps nobody reaches.
    fn reachable() -> Vec<SagaState> {
        let mut seen = vec![SagaState::placed()];
        let mut i = 0;
        while i < seen.len() {
            let state = seen[i].clone();
            for outcome in outcomes() {
                if let Ok(next) = state.advance(outcome)
                    && !seen.contains(&next)
                {
                    seen.push(next);
                }
            }
            i += 1;
        }
        seen
    }

    fn step(state: &SagaState, outcome: Outcome) -> SagaState {
        match state.advance(outcome.clone()) {
            Ok(next) => next,
            Err(err) => panic!("{err} ({outcome:?})"),
        }
    }

    #[test]
    fn the_happy_path_confirms() {
        let mut state = SagaState::placed();
        for outcome in [Outcome::Authorized, Outcome::Reserved, Outcome::Captured] {
            state = step(&state, outcome);
        }
        assert_eq!(state.status, OrderStatus::Confirmed);
        assert_eq!(state.step, None);
        assert_eq!(state.rejection, None);
    }

    #[test]
    fn out_of_stock_voids_then_releases_then_rejects_naming_the_products() {
        let authorized = step(&SagaState::placed(), Outcome::Authorized);
        let short = step(&authorized, Outcome::OutOfStock(vec![product()]));
        assert_eq!(
            (short.status, short.step),
            (OrderStatus::Pending, Some(Step::Void))
        );
        let voided = step(&short, Outcome::Voided);
        assert_eq!(voided.step, Some(Step::Release));
        let done = step(&voided, Outcome::Released);
        assert_eq!(done.status, OrderStatus::Rejected);
        assert_eq!(done.step, None);
        let rejection = done.rejection.expect("a rejection");
        assert_eq!(rejection.reason, RejectionReason::OutOfStock);
        assert_eq!(rejection.out_of_stock, vec![product()]);
    }

    #[test]
    fn a_decline_rejects_at_once_and_a_provider_failure_compensates() {
        let declined = step(
            &SagaState::placed(),
            Outcome::Declined("insufficient_funds".to_owned()),
        );
        assert_eq!(
            (declined.status, declined.step),
            (OrderStatus::Rejected, None)
        );
        let rejection = declined.rejection.expect("a rejection");
        assert_eq!(rejection.reason, RejectionReason::PaymentDeclined);
        assert_eq!(
            rejection.decline_reason.as_deref(),
            Some("insufficient_funds")
        );

        let failed = step(&SagaState::placed(), Outcome::PaymentFailed);
        assert_eq!(failed.step, Some(Step::Void));
        let failed = step(&step(&failed, Outcome::Voided), Outcome::Released);
        assert_eq!(failed.status, OrderStatus::Rejected);
        assert_eq!(
            failed.rejection.map(|r| r.reason),
            Some(RejectionReason::PaymentFailed)
        );

        let reserved = step(
            &step(&SagaState::placed(), Outcome::Authorized),
            Outcome::Reserved,
        );
        let refused = step(&reserved, Outcome::CaptureRefused);
        assert_eq!(refused.step, Some(Step::Void));
    }

    #[test]
    fn cancelling_refunds_then_releases() {
        let mut state = SagaState::placed();
        for outcome in [Outcome::Authorized, Outcome::Reserved, Outcome::Captured] {
            state = step(&state, outcome);
        }
        let cancelling = step(&state, Outcome::Cancel);
        assert_eq!(
            (cancelling.status, cancelling.step),
            (OrderStatus::Cancelling, Some(Step::Refund))
        );
        let refunded = step(&cancelling, Outcome::Refunded);
        assert_eq!(refunded.step, Some(Step::Release));
        let cancelled = step(&refunded, Outcome::Released);
        assert_eq!(
            (cancelled.status, cancelled.step),
            (OrderStatus::Cancelled, None)
        );
    }

    /// Every (state, outcome) pair outside the legal table is refused, and
    /// the table has exactly the transitions the diagram shows.
    #[test]
    fn every_other_transition_is_illegal() {
        let states = reachable();
        // pending at authorize, reserve and capture; pending at void and at
        // release for out_of_stock and payment_failed (a decline
        // compensates nothing); confirmed; rejected for each of the three
        // reasons; cancelling at refund and release; cancelled.
        assert_eq!(states.len(), 14, "{states:#?}");
        let mut legal = 0;
        let mut names = HashSet::new();
        for state in &states {
            for outcome in outcomes() {
                let name = outcome.name();
                match state.advance(outcome) {
                    Ok(next) => {
                        legal += 1;
                        names.insert(name);
                        // Settled orders never move again but by a cancel
                        // of a confirmed one.
                        assert!(
                            state.step.is_some() || state.status == OrderStatus::Confirmed,
                            "{state:?} moved"
                        );
                        assert_ne!(&next, state, "a transition changes the state");
                    }
                    Err(err) => {
                        assert_eq!(err.status, state.status);
                        assert_eq!(err.step, state.step);
                        assert_eq!(err.outcome, name);
                    }
                }
            }
        }
        // authorize: 3, reserve: 2, capture: 2, void: 2, release: 2,
        // confirmed: 1 (cancel), refund: 1, cancelling release: 1.
        assert_eq!(legal, 14);
        assert_eq!(
            names.len(),
            outcomes().len(),
            "every outcome is used somewhere"
        );
        for status in [OrderStatus::Rejected, OrderStatus::Cancelled] {
            let settled = SagaState {
                status,
                step: None,
                rejection: None,
            };
            for outcome in outcomes() {
                assert!(settled.advance(outcome).is_err(), "{status:?} is final");
            }
        }
        // A pending order is not cancelled: it settles first.
        assert!(SagaState::placed().advance(Outcome::Cancel).is_err());
        // Compensation is not entered twice, nor the happy path resumed.
        let short = step(
            &step(&SagaState::placed(), Outcome::Authorized),
            Outcome::OutOfStock(vec![]),
        );
        assert!(short.advance(Outcome::Authorized).is_err());
        let without_reason = SagaState {
            status: OrderStatus::Pending,
            step: Some(Step::Void),
            rejection: None,
        };
        assert!(without_reason.advance(Outcome::Voided).is_err());
    }
}
