//! Page cursors: where the next page of the product list starts.
//!
//! A cursor is opaque to clients: base64url (no padding) of the 16 bytes of
//! the last product id on the page. The list is ordered by id, so the next
//! page is "ids greater than this one" — a keyset query that stays correct
//! and fast however deep the client pages, and unaffected by inserts.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::ProductId;

/// Longest cursor text worth decoding; a real one is 22 characters.
const MAX_LEN: usize = 64;

/// The position after which the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    after: ProductId,
}

impl Cursor {
    /// The cursor of a page that ended with `last`.
    pub const fn after(last: ProductId) -> Self {
        Self { after: last }
    }

    /// The id the next page starts after.
    pub const fn last_id(&self) -> ProductId {
        self.after
    }

    /// Parses a cursor a previous response returned.
    ///
    /// # Errors
    /// A message for the client when the text is not a cursor.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let message = || "is not a cursor from a previous page".to_owned();
        if raw.len() > MAX_LEN {
            return Err(message());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| message())?;
        let id = Uuid::from_slice(&bytes).map_err(|_| message())?;
        Ok(Self::after(ProductId::from_uuid(id)))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.after.as_uuid().as_bytes()))
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_as_url_safe_text() {
        let id: ProductId = "01960000-0000-7000-8000-0000000000ff".parse().expect("id");
        let text = Cursor::after(id).to_string();
        assert_eq!(text.len(), 22);
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{text}"
        );
        assert_eq!(Cursor::parse(&text).expect("valid").last_id(), id);
    }

    #[test]
    fn cursors_have_the_shape_the_api_documents() {
        // shop_api::catalog::CURSOR_PATTERN: 21 base64url characters, then
        // one whose low four bits are zero.
        assert_eq!(
            shop_api::catalog::CURSOR_PATTERN,
            "^[A-Za-z0-9_-]{21}[AQgw]$"
        );
        for n in [0, 1, 0xff, u128::MAX / 3, u128::MAX] {
            let text = Cursor::after(ProductId::from_uuid(Uuid::from_u128(n))).to_string();
            assert_eq!(text.len(), 22);
            assert!(text.ends_with(['A', 'Q', 'g', 'w']), "{text}");
        }
        for last in ['A', 'Q', 'g', 'w'] {
            let text = format!("{}{last}", "_".repeat(21));
            assert!(Cursor::parse(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn anything_else_is_rejected() {
        let too_short = URL_SAFE_NO_PAD.encode([1u8; 15]);
        let too_long = URL_SAFE_NO_PAD.encode([1u8; 17]);
        for bad in [
            "",
            "!!!",
            "AAAA====",
            too_short.as_str(),
            too_long.as_str(),
            "' OR 1=1 --",
            &"A".repeat(1000),
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
