//! Payments: the payments service's internal routes orders calls during
//! checkout and cancellation (behind the service credential, never through
//! the gateway). Every route is idempotent by order id.
//!
//! - `PUT /internal/payments/{order_id}` with an [`Authorize`]: authorizes
//!   the amount with the provider; a repeat answers the recorded payment;
//! - `POST /internal/payments/{order_id}/capture`: authorized → captured;
//! - `POST /internal/payments/{order_id}/void`: authorized → voided; an
//!   order never authorized gets a voided record, so an authorization that
//!   arrives late takes nothing;
//! - `POST /internal/payments/{order_id}/refund`: captured → refunded;
//! - `GET /internal/payments/{order_id}`: the payment.
//!
//! Each answers the [`Payment`]. Money is integer minor units. No card
//! number is ever accepted: the client passes a payment token, and the
//! built-in fake provider knows the [`tokens`] below.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::OrderId;

/// The test payment tokens of the built-in provider, in the style of real
/// providers' test tokens.
pub mod tokens {
    /// Always authorized and captured.
    pub const SUCCESS: &str = "tok_visa";
    /// Always declined (`card_declined`).
    pub const DECLINED: &str = "tok_declined";
    /// Declined for `insufficient_funds`.
    pub const INSUFFICIENT_FUNDS: &str = "tok_insufficient_funds";
    /// The provider fails (a transient error: the call may be retried).
    pub const PROVIDER_ERROR: &str = "tok_provider_error";
    /// Authorized, after the provider's configured delay.
    pub const SLOW: &str = "tok_slow";
    /// Every token the provider knows.
    pub const ALL: [&str; 5] = [SUCCESS, DECLINED, INSUFFICIENT_FUNDS, PROVIDER_ERROR, SLOW];
}

/// Pattern of a payment token: `tok_` and lower-case letters or `_`. No
/// digits, so no card number can pass for one.
pub const TOKEN_PATTERN: &str = "^tok_[a-z_]{1,60}$";

/// Most characters after `tok_` (the `{1,60}` of [`TOKEN_PATTERN`]).
pub const MAX_TOKEN_TAIL: usize = 60;

/// What a client is told when its payment token is not token-shaped (the
/// text itself is never echoed: it may be a card number).
pub const NOT_A_TOKEN: &str = "card numbers are never accepted: pass a payment token (tok_ and lower-case letters or _), such as tok_visa";

/// Whether `raw` matches [`TOKEN_PATTERN`]: `tok_` and 1 to 60 lower-case
/// ASCII letters or underscores. The gateway, orders and payments all
/// check it with this one function.
pub fn is_token_shaped(raw: &str) -> bool {
    raw.strip_prefix("tok_").is_some_and(|tail| {
        (1..=MAX_TOKEN_TAIL).contains(&tail.len())
            && tail.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
}

/// The body of `PUT /internal/payments/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Authorize {
    /// The amount, in minor units, at least 1.
    pub amount_cents: i64,
    /// ISO 4217 code.
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// A test token of the provider ([`tokens`]).
    #[schema(pattern = "^tok_[a-z_]{1,60}$")]
    pub payment_token: String,
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// The amount is held on the payer's account.
    Authorized,
    /// The provider declined; nothing is held.
    Declined,
    /// The amount is taken.
    Captured,
    /// The hold is released (or none was ever made).
    Voided,
    /// The captured amount is given back.
    Refunded,
}

/// A payment of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// The order it pays.
    pub order_id: OrderId,
    /// Where it stands.
    pub state: PaymentState,
    /// The amount, in minor units (0 for a void recorded before any
    /// authorization).
    pub amount_cents: i64,
    /// ISO 4217 code (`XXX` for a void recorded before any authorization).
    pub currency: String,
    /// Why the provider declined (`card_declined`, `insufficient_funds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_reason: Option<String>,
    /// When it was first recorded (RFC 3339 UTC).
    pub created_at: String,
    /// When it last changed (RFC 3339 UTC).
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_the_pattern_and_admits_no_card_number() {
        assert_eq!(TOKEN_PATTERN, format!("^tok_[a-z_]{{1,{MAX_TOKEN_TAIL}}}$"));
        for token in tokens::ALL {
            assert!(is_token_shaped(token), "{token}");
        }
        assert!(is_token_shaped(&format!(
            "tok_{}",
            "a".repeat(MAX_TOKEN_TAIL)
        )));
        for bad in [
            String::new(),
            "tok_".to_owned(),
            "visa".to_owned(),
            "tok_4242424242424242".to_owned(),
            "4242424242424242".to_owned(),
            "tok_Visa".to_owned(),
            "tok visa".to_owned(),
            format!("tok_{}", "a".repeat(MAX_TOKEN_TAIL + 1)),
        ] {
            assert!(!is_token_shaped(&bad), "{bad:?}");
        }
    }
}
