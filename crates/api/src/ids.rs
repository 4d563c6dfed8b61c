//! Ids crossing the API: UUIDs, one newtype per kind so that a product id
//! cannot be passed where a user id is meant. On the wire each is the UUID
//! text (`format: uuid`); parsing accepts any form `uuid` reads, display is
//! the canonical lower-case hyphenated form (as stored).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            /// Parses any UUID text form `uuid` accepts (hyphenated, simple,
            /// braced, URN).
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(raw).map(Self)
            }
        }

        impl fmt::Display for $name {
            /// The canonical form, as stored in the databases.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id!(
    /// The id of a user (UUID v7, issued at registration; the subject of
    /// the user's access tokens).
    UserId
);
id!(
    /// The id of a product, as the catalog knows it.
    ProductId
);
id!(
    /// The id of an order (UUID v7).
    OrderId
);

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

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

    #[test]
    fn ids_are_uuid_text_on_the_wire() {
        let id = UserId(Uuid::from_u128(1));
        let json = serde_json::to_value(id).expect("json");
        assert_eq!(json, "00000000-0000-0000-0000-000000000001");
        assert_eq!(serde_json::from_value::<UserId>(json).expect("id"), id);
        let schema = serde_json::to_value(OrderId::schema()).expect("schema");
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["format"], "uuid");
    }
}
