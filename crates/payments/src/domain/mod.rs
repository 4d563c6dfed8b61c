//! The parsed values of payment requests and the states a payment moves
//! through. Handlers parse the body into these types once at the edge; the
//! ledger, the provider and the store trust them.

mod amount;
mod currency;
mod state;
mod token;

pub use amount::Amount;
pub use currency::Currency;
/// The id of the order a payment pays (the wire type).
pub use shop_api::OrderId;
/// The authorization request, the payment and its state as the API shows
/// them (the wire types).
pub use shop_api::payments::{Authorize, Payment, PaymentState};
pub use state::{Operation, state_from_name, state_name};
pub use token::PaymentToken;
