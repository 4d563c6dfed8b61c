//! Product ids: UUIDs, written in the canonical lower-case hyphenated form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of a product. Deserializes from (and serializes to) the UUID text,
/// so a path segment that is not a UUID is rejected by the extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(Uuid);

impl ProductId {
    /// Wraps a UUID.
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl FromStr for ProductId {
    type Err = uuid::Error;

    /// Parses any UUID text form `uuid` accepts (hyphenated, simple, braced, URN).
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(raw).map(Self)
    }
}

impl fmt::Display for ProductId {
    /// The canonical form, as stored in the database.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_uuid_form_displays_canonically() {
        let canonical = "01960000-0000-7000-8000-000000000001";
        for raw in [
            canonical,
            "01960000-0000-7000-8000-000000000001"
                .to_uppercase()
                .as_str(),
            "01960000000070008000000000000001",
            "{01960000-0000-7000-8000-000000000001}",
        ] {
            let id: ProductId = raw.parse().expect("valid");
            assert_eq!(id.to_string(), canonical, "{raw}");
        }
        assert!("not-a-uuid".parse::<ProductId>().is_err());
        assert!("".parse::<ProductId>().is_err());
    }
}
