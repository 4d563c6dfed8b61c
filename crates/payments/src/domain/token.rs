//! Payment tokens: what a client passes instead of card details.

use shop_api::payments::{NOT_A_TOKEN, is_token_shaped, tokens};

/// A test token of the built-in provider, parsed. Anything else is
/// refused before the provider is asked, and never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentToken {
    /// `tok_visa`: authorized.
    Success,
    /// `tok_declined`: declined, `card_declined`.
    Declined,
    /// `tok_insufficient_funds`: declined, `insufficient_funds`.
    InsufficientFunds,
    /// `tok_provider_error`: the provider fails (transiently).
    ProviderError,
    /// `tok_slow`: authorized after `provider.slow_ms`.
    Slow,
}

impl PaymentToken {
    /// Parses `payment_token`.
    ///
    /// # Errors
    /// A message for the client: text that is not token-shaped (a card
    /// number, anything with digits) is refused as a card number, never
    /// echoed; a well-formed token the provider does not know names the
    /// known ones.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !is_token_shaped(raw) {
            return Err(NOT_A_TOKEN.to_owned());
        }
        match raw {
            tokens::SUCCESS => Ok(Self::Success),
            tokens::DECLINED => Ok(Self::Declined),
            tokens::INSUFFICIENT_FUNDS => Ok(Self::InsufficientFunds),
            tokens::PROVIDER_ERROR => Ok(Self::ProviderError),
            tokens::SLOW => Ok(Self::Slow),
            _ => Err(format!(
                "unknown payment token; the test provider knows {}",
                tokens::ALL.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_token_parses() {
        let parsed: Vec<PaymentToken> = tokens::ALL
            .iter()
            .map(|token| PaymentToken::parse(token).expect("known"))
            .collect();
        assert_eq!(
            parsed,
            [
                PaymentToken::Success,
                PaymentToken::Declined,
                PaymentToken::InsufficientFunds,
                PaymentToken::ProviderError,
                PaymentToken::Slow
            ]
        );
    }

    #[test]
    fn card_numbers_and_other_shapes_are_refused_without_echo() {
        for raw in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "tok_4242424242424242",
            "tok_visa1",
            "tok_",
            "TOK_VISA",
            "tok_Visa",
            "tok_visa ",
            "",
            "tok_vïsa",
        ] {
            let message = PaymentToken::parse(raw).expect_err(raw);
            assert!(
                message.contains("card numbers are never accepted"),
                "{raw:?}: {message}"
            );
            assert!(!message.contains("4242"), "{raw:?} echoed: {message}");
        }
    }

    #[test]
    fn unknown_tokens_name_the_known_ones() {
        let message = PaymentToken::parse("tok_mastercard").expect_err("unknown");
        assert!(message.starts_with("unknown payment token"), "{message}");
        assert!(message.contains(tokens::SUCCESS), "{message}");
    }
}
