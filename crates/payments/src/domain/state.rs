//! The states of a payment as stored, and the operations that move it.
//!
//! ```text
//!   (none) ──authorize──▶ authorized ──capture──▶ captured ──refund──▶ refunded
//!     │   └─authorize──▶ declined       │
//!     └──────void──────▶ voided ◀──void─┘
//! ```

use shop_api::payments::PaymentState;

/// The stored name of `state` (the wire name too).
pub const fn state_name(state: PaymentState) -> &'static str {
    match state {
        PaymentState::Authorized => "authorized",
        PaymentState::Declined => "declined",
        PaymentState::Captured => "captured",
        PaymentState::Voided => "voided",
        PaymentState::Refunded => "refunded",
    }
}

/// The state stored as `name`; `None` for any other text.
pub fn state_from_name(name: &str) -> Option<PaymentState> {
    Some(match name {
        "authorized" => PaymentState::Authorized,
        "declined" => PaymentState::Declined,
        "captured" => PaymentState::Captured,
        "voided" => PaymentState::Voided,
        "refunded" => PaymentState::Refunded,
        _ => return None,
    })
}

/// A change of an existing payment: each moves it from one state to one
/// other, and answers a payment already where it leads unchanged (so every
/// operation is idempotent by order id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// authorized → captured.
    Capture,
    /// authorized → voided; a declined payment is already as good as void.
    Void,
    /// captured → refunded.
    Refund,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 3] = [Self::Capture, Self::Void, Self::Refund];

    /// The state it changes.
    pub const fn from(self) -> PaymentState {
        match self {
            Self::Capture | Self::Void => PaymentState::Authorized,
            Self::Refund => PaymentState::Captured,
        }
    }

    /// The state it leads to.
    pub const fn to(self) -> PaymentState {
        match self {
            Self::Capture => PaymentState::Captured,
            Self::Void => PaymentState::Voided,
            Self::Refund => PaymentState::Refunded,
        }
    }

    /// Whether a payment in `state` already is what this operation would
    /// make it: answered unchanged.
    pub const fn is_done(self, state: PaymentState) -> bool {
        matches!(
            (self, state),
            (Self::Capture, PaymentState::Captured)
                | (Self::Void, PaymentState::Voided | PaymentState::Declined)
                | (Self::Refund, PaymentState::Refunded)
        )
    }

    /// Its name in metrics and messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: [PaymentState; 5] = [
        PaymentState::Authorized,
        PaymentState::Declined,
        PaymentState::Captured,
        PaymentState::Voided,
        PaymentState::Refunded,
    ];

    #[test]
    fn stored_names_are_the_wire_names_and_read_back() {
        for state in STATES {
            let wire = serde_json::to_value(state).expect("serializable");
            assert_eq!(wire, state_name(state));
            assert_eq!(state_from_name(state_name(state)), Some(state));
        }
        assert_eq!(state_from_name("Authorized"), None);
    }

    #[test]
    fn an_operation_never_counts_its_own_start_as_done() {
        for operation in Operation::ALL {
            assert!(!operation.is_done(operation.from()), "{operation:?}");
            assert!(operation.is_done(operation.to()), "{operation:?}");
        }
    }
}
