//! Names on the wire between ferroshop processes, spelled once: the
//! internal headers the gateway sets or strips and the services read, and
//! the bearer scheme of `Authorization`.

use http::{HeaderMap, HeaderName, header};

/// The credential of internal service-to-service routes
/// ([`crate::config::InternalSettings::service_token`]): orders presents
/// it to cart's internal route. The gateway drops it from every request it
/// forwards, so a client can never present it.
pub const SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-shop-service-token");

/// The client address the gateway resolved (the peer, or behind trusted
/// proxies the address they saw), for services that key limits by client.
/// The gateway always overwrites it, so a client cannot choose it.
pub const CLIENT_IP: HeaderName = HeaderName::from_static("x-shop-client-ip");

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    parse_bearer(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` value `Bearer <token>` (the scheme in
/// any case, the token trimmed and not empty); for gRPC metadata and HTTP
/// headers alike.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_parse_in_any_scheme_case_and_nothing_else_does() {
        for (value, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("Bearer ", None),
            ("Bearer", None),
            ("Basic abc", None),
            ("", None),
        ] {
            assert_eq!(parse_bearer(value), token, "{value:?}");
        }
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer t"),
        );
        assert_eq!(bearer_token(&headers), Some("t"));
    }
}
