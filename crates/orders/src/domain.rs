//! Values parsed once at the edge: [`IdempotencyKey`], [`OrderId`],
//! [`PageSize`], [`PageToken`], [`PaymentToken`]; and the [`Order`] as
//! stored.

use std::fmt;

use shop_api::UserId;
use uuid::Uuid;

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 128;
/// Page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A client-chosen key that makes placing an order idempotent: 1–128
/// printable ASCII characters (space to `~`), unique per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key.
    ///
    /// # Errors
    /// A message for the client when the key is empty, too long or not
    /// printable ASCII.
    pub fn parse(key: &str) -> Result<Self, String> {
        if key.is_empty() {
            return Err("idempotency_key is required".to_owned());
        }
        if key.len() > MAX_KEY_LEN {
            return Err(format!(
                "idempotency_key must be at most {MAX_KEY_LEN} characters"
            ));
        }
        if !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err("idempotency_key must be printable ASCII".to_owned());
        }
        Ok(Self(key.to_owned()))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A payment token of the provider: `tok_` and lower-case letters or `_`
/// ([`shop_api::payments::TOKEN_PATTERN`]). No digits, so a card number can
/// never pass for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentToken(String);

impl PaymentToken {
    /// Parses a token.
    ///
    /// # Errors
    /// A message for the client when it is missing or not a token.
    pub fn parse(token: &str) -> Result<Self, String> {
        if token.is_empty() {
            return Err("payment_token is required".to_owned());
        }
        if !shop_api::payments::is_token_shaped(token) {
            return Err(format!(
                "payment_token: {}",
                shop_api::payments::NOT_A_TOKEN
            ));
        }
        Ok(Self(token.to_owned()))
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An order id (UUID v7 when made here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(pub Uuid);

impl OrderId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the id of a request.
    ///
    /// # Errors
    /// A message for the client when it is not a UUID.
    pub fn parse(id: &str) -> Result<Self, String> {
        Uuid::parse_str(id.trim())
            .map(Self)
            .map_err(|_| format!("order_id {id:?} is not a UUID"))
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many orders one page holds: 1–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// Parses a requested page size; 0 means [`DEFAULT_PAGE_SIZE`].
    ///
    /// # Errors
    /// A message for the client when it is negative or above 100.
    pub fn parse(size: i32) -> Result<Self, String> {
        match u32::try_from(size) {
            Ok(0) => Ok(Self(DEFAULT_PAGE_SIZE)),
            Ok(size) if size <= MAX_PAGE_SIZE => Ok(Self(size)),
            _ => Err(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE} (0 for the default)"
            )),
        }
    }

    /// The size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Where the next page starts: after this order id (orders are listed by
/// id, descending). On the wire an opaque `o1.<uuid simple>` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken(pub OrderId);

const TOKEN_PREFIX: &str = "o1.";

impl PageToken {
    /// Parses a token from a previous response; empty means the first page.
    ///
    /// # Errors
    /// A message for the client when the token was not made by this service.
    pub fn parse(token: &str) -> Result<Option<Self>, String> {
        if token.is_empty() {
            return Ok(None);
        }
        token
            .strip_prefix(TOKEN_PREFIX)
            .filter(|rest| rest.len() == 32)
            .and_then(|rest| Uuid::try_parse(rest).ok())
            .map(|id| Some(Self(OrderId(id))))
            .ok_or_else(|| "page_token is not a token from a previous page".to_owned())
    }
}

impl fmt::Display for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}", self.0.0.simple())
    }
}

pub use shop_api::orders::{OrderStatus, Rejection, RejectionReason};

/// One line of an order, priced when the order was placed. Read from an
/// `order_lines` row of the same columns.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderLine {
    /// The product (stored as text).
    #[sqlx(try_from = "String")]
    pub product_id: Uuid,
    /// Its name then.
    pub name: String,
    /// Its unit price then, in minor units.
    pub unit_price_cents: i64,
    /// How many.
    pub quantity: i64,
    /// `unit_price_cents * quantity`.
    pub line_total_cents: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// The buyer.
    pub user_id: UserId,
    /// Where it is in checkout.
    pub status: OrderStatus,
    /// Why it was rejected (rejected orders only).
    pub rejection: Option<Rejection>,
    /// The lines, in cart order.
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals, in minor units.
    pub total_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When it was placed (RFC 3339 UTC).
    pub created_at: String,
    /// When it last changed (RFC 3339 UTC).
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("order-1 ~!").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("café").is_err());
    }

    #[test]
    fn payment_tokens_are_tokens_never_card_numbers() {
        for token in shop_api::payments::tokens::ALL {
            assert!(PaymentToken::parse(token).is_ok(), "{token}");
        }
        for bad in [
            "",
            "tok_",
            "visa",
            "tok_4242424242424242",
            "4242424242424242",
            "tok_Visa",
            "tok visa",
        ] {
            assert!(PaymentToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes_default_and_bound() {
        assert_eq!(PageSize::parse(0).map(PageSize::get), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(PageSize::parse(100).map(PageSize::get), Ok(100));
        assert!(PageSize::parse(101).is_err());
        assert!(PageSize::parse(-1).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let token = PageToken(OrderId::new());
        assert_eq!(PageToken::parse(&token.to_string()), Ok(Some(token)));
        assert_eq!(PageToken::parse(""), Ok(None));
        assert!(PageToken::parse("garbage").is_err());
        assert!(PageToken::parse(&token.0.to_string()).is_err());
    }
}
