//! The payments metric and its handles, taken once when the service is
//! built so that recording allocates nothing; the recorder itself is
//! installed by `shop_common::metrics`.
//!
//! `increase(payments_operations_total{outcome="provider_error"}[…])`
//! shows the provider failing; `outcome="conflict"` a caller asking for a
//! change the payment's state refuses (a saga bug, or a race it lost).

use std::collections::HashMap;

use metrics::Counter;

use crate::domain::Operation;

/// Payment operations answered, by `operation` (`authorize`, `capture`,
/// `void`, `refund`) and `outcome`: `authorized` or `declined` (a first
/// authorization, recorded), `provider_error` (nothing recorded),
/// `applied` (the state changed), `tombstone` (a void recorded before any
/// authorization), `repeated` (answered unchanged: the payment already was
/// what the call asked for), `conflict` (409) or `not_found` (404).
pub const PAYMENTS_OPERATIONS: &str = "payments_operations_total";

/// The `operation` label of an authorization.
pub const AUTHORIZE: &str = "authorize";

/// How an operation ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A first authorization the provider granted.
    Authorized,
    /// A first authorization the provider declined.
    Declined,
    /// The provider failed; nothing was recorded.
    ProviderError,
    /// The state changed.
    Applied,
    /// A void recorded before any authorization.
    Tombstone,
    /// Answered unchanged.
    Repeated,
    /// Refused by the payment's state.
    Conflict,
    /// No payment.
    NotFound,
}

impl Outcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "authorized",
            Self::Declined => "declined",
            Self::ProviderError => "provider_error",
            Self::Applied => "applied",
            Self::Tombstone => "tombstone",
            Self::Repeated => "repeated",
            Self::Conflict => "conflict",
            Self::NotFound => "not_found",
        }
    }
}

/// What each operation can end in: the series registered up front.
fn reachable() -> Vec<(&'static str, Outcome)> {
    let mut pairs: Vec<(&'static str, Outcome)> = [
        Outcome::Authorized,
        Outcome::Declined,
        Outcome::ProviderError,
        Outcome::Repeated,
    ]
    .into_iter()
    .map(|outcome| (AUTHORIZE, outcome))
    .collect();
    for operation in Operation::ALL {
        let last = match operation {
            Operation::Void => Outcome::Tombstone,
            Operation::Capture | Operation::Refund => Outcome::NotFound,
        };
        for outcome in [Outcome::Applied, Outcome::Repeated, Outcome::Conflict, last] {
            pairs.push((operation.name(), outcome));
        }
    }
    pairs
}

/// Pre-registered handles of [`PAYMENTS_OPERATIONS`].
#[derive(Clone)]
pub struct PaymentMetrics {
    counters: HashMap<(&'static str, Outcome), Counter>,
}

impl PaymentMetrics {
    /// Registers the handles (every reachable series shows from the start,
    /// at 0).
    pub fn new() -> Self {
        // Handles taken before the recorder exists would record nothing.
        shop_common::metrics::handle();
        let counters = reachable()
            .into_iter()
            .map(|(operation, outcome)| {
                let counter = metrics::counter!(
                    PAYMENTS_OPERATIONS,
                    "operation" => operation,
                    "outcome" => outcome.as_str()
                );
                ((operation, outcome), counter)
            })
            .collect();
        Self { counters }
    }

    /// Counts one `operation` (its label) that ended in `outcome`.
    pub fn record(&self, operation: &'static str, outcome: Outcome) {
        match self.counters.get(&(operation, outcome)) {
            Some(counter) => counter.increment(1),
            None => debug_assert!(false, "unregistered series {operation}/{outcome:?}"),
        }
    }
}

impl Default for PaymentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PaymentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentMetrics").finish_non_exhaustive()
    }
}
