//! The built-in fake provider: what each test token decides. It holds no
//! state and moves no money; the ledger records what it decided.
//!
//! A real provider would be called with the order id as its idempotency
//! key, so that two concurrent first authorizations of one order hold the
//! amount once; the fake one is told the order for the same reason (and
//! logs it), though it has nothing to hold.

use std::time::Duration;

use crate::config::ProviderSettings;
use crate::domain::{Amount, Currency, OrderId, PaymentToken};

/// Why the provider declined (the `decline_reason` of a declined payment).
pub const CARD_DECLINED: &str = "card_declined";
/// Why the provider declined for lack of funds.
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";

/// What the provider decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The amount is held.
    Authorized,
    /// Refused, for this reason.
    Declined(&'static str),
}

/// The provider failed; nothing was decided, and asking again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the payment provider failed")]
pub struct ProviderError;

/// The fake provider.
#[derive(Debug, Clone)]
pub struct FakeProvider {
    /// How long `tok_slow` takes.
    slow: Duration,
}

impl FakeProvider {
    /// A provider configured by `settings`.
    pub fn new(settings: &ProviderSettings) -> Self {
        Self {
            slow: settings.slow(),
        }
    }

    /// Asks the provider to hold `amount` for `order` with `token`.
    ///
    /// # Errors
    /// [`ProviderError`] for `tok_provider_error`.
    pub async fn authorize(
        &self,
        order: OrderId,
        amount: Amount,
        currency: &Currency,
        token: PaymentToken,
    ) -> Result<Decision, ProviderError> {
        tracing::debug!(%order, amount_cents = amount.cents(), %currency, ?token, "provider asked to authorize");
        match token {
            PaymentToken::Success => Ok(Decision::Authorized),
            PaymentToken::Declined => Ok(Decision::Declined(CARD_DECLINED)),
            PaymentToken::InsufficientFunds => Ok(Decision::Declined(INSUFFICIENT_FUNDS)),
            PaymentToken::ProviderError => Err(ProviderError),
            PaymentToken::Slow => {
                tokio::time::sleep(self.slow).await;
                Ok(Decision::Authorized)
            }
        }
    }
}
