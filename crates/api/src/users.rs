//! `/api/users`, `/api/sessions` and `/.well-known/jwks.json`.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};

use crate::UserId;

/// Fewest characters in a username.
pub const USERNAME_MIN_LEN: usize = 3;
/// Most characters in a username.
pub const USERNAME_MAX_LEN: usize = 32;
/// Fewest characters in a password.
pub const PASSWORD_MIN_LEN: usize = 10;
/// Most characters (Unicode scalar values, as JSON Schema's `maxLength`
/// counts them) in a password: at most 1 KiB of UTF-8, which bounds the
/// hashing work one request can ask for.
pub const PASSWORD_MAX_LEN: usize = 256;
/// Most characters in an email address (RFC 5321's path limit).
pub const EMAIL_MAX_LEN: usize = 254;

/// A registration. Every field is required; a missing one is reported by
/// name (422) like any other invalid value, which is why the fields read
/// as `Option`s.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NewUser {
    /// 3–32 letters, digits, `_`, `.` or `-`; stored in lower case and
    /// unique case-insensitively.
    #[schema(value_type = String, required = true, min_length = 3, max_length = 32,
        pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "alice")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// An address (`local@domain`, no display name, no IP-literal domain);
    /// unique case-insensitively.
    #[schema(value_type = String, required = true, format = Email, max_length = 254,
        example = "alice@example.com")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// 10–256 characters of any script; not the username.
    #[schema(value_type = String, required = true, format = Password, min_length = 10,
        max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A registered user (never any password material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// The user id.
    pub id: UserId,
    /// The username, lower case.
    #[schema(example = "alice")]
    pub username: String,
    /// The email address as registered.
    #[schema(format = Email, example = "alice@example.com")]
    pub email: String,
    /// Registration time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewSession {
    /// Username or email, in any case.
    #[schema(example = "alice")]
    pub login: String,
    /// The password.
    #[schema(format = Password)]
    pub password: String,
}

/// An access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// A JWT (EdDSA) to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer", pattern = "^Bearer$")]
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// The token-signing public keys (an RFC 7517 JWK set), as users serves
/// them at `/.well-known/jwks.json` and every verifier reads them. Keys of
/// other types parse too (a verifier skips them); users publishes only
/// Ed25519 keys, and the schema describes those.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    /// The signing key first, then any published beside it (a rotation's
    /// next or previous key).
    #[schema(schema_with = ed25519_jwks)]
    pub keys: Vec<Jwk>,
}

impl From<JwkSet> for Jwks {
    fn from(set: JwkSet) -> Self {
        Self { keys: set.keys }
    }
}

impl From<Jwks> for JwkSet {
    fn from(jwks: Jwks) -> Self {
        Self { keys: jwks.keys }
    }
}

/// The schema of [`Jwks::keys`]: Ed25519 public keys with their `kid`.
fn ed25519_jwks() -> ArrayBuilder {
    let constant = |value: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([value]))
    };
    let key = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("An Ed25519 public key (RFC 8037)"))
        .property("kty", constant("OKP"))
        .property("crv", constant("Ed25519"))
        .property("alg", constant("EdDSA"))
        .property("use", constant("sig"))
        .property(
            "x",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9_-]{43}$"))
                .description(Some("The public key, base64url without padding")),
        )
        .property(
            "kid",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The key id: its RFC 7638 thumbprint (SHA-256)")),
        )
        .required("kty")
        .required("crv")
        .required("x")
        .required("kid");
    ArrayBuilder::new().items(key)
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_schema_states_the_bounds_the_service_enforces() {
        let schema = serde_json::to_value(NewUser::schema()).expect("schema");
        let field = |name: &str| &schema["properties"][name];
        assert_eq!(field("username")["minLength"], USERNAME_MIN_LEN);
        assert_eq!(field("username")["maxLength"], USERNAME_MAX_LEN);
        let pattern = format!("^[A-Za-z0-9_.-]{{{USERNAME_MIN_LEN},{USERNAME_MAX_LEN}}}$");
        assert_eq!(field("username")["pattern"], pattern.as_str());
        assert_eq!(field("email")["maxLength"], EMAIL_MAX_LEN);
        assert_eq!(field("email")["format"], "email");
        assert_eq!(field("password")["minLength"], PASSWORD_MIN_LEN);
        assert_eq!(field("password")["maxLength"], PASSWORD_MAX_LEN);
        for name in ["username", "email", "password"] {
            assert_eq!(field(name)["type"], "string", "{name} is not nullable");
        }
        assert_eq!(
            schema["required"],
            serde_json::json!(["username", "email", "password"])
        );
    }

    #[test]
    fn the_key_set_schema_describes_ed25519_keys() {
        let schema = serde_json::to_value(Jwks::schema()).expect("schema");
        let key = &schema["properties"]["keys"]["items"];
        assert_eq!(key["properties"]["kty"]["enum"], serde_json::json!(["OKP"]));
        assert_eq!(
            key["properties"]["crv"]["enum"],
            serde_json::json!(["Ed25519"])
        );
        assert_eq!(
            key["required"],
            serde_json::json!(["kty", "crv", "x", "kid"])
        );
        assert_eq!(schema["required"], serde_json::json!(["keys"]));
    }

    #[test]
    fn a_registration_with_missing_fields_still_reads() {
        let new: NewUser = serde_json::from_str(r#"{"username":"alice"}"#).expect("reads");
        assert_eq!(new.username.as_deref(), Some("alice"));
        assert!(new.email.is_none() && new.password.is_none());
    }
}
