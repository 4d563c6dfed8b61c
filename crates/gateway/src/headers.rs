//! Header hygiene of forwarded requests and responses: hop-by-hop headers
//! are removed in both directions (RFC 9110 §7.6.1), `X-Forwarded-For` and
//! `X-Forwarded-Proto` are set, and internal credentials a client might
//! send are dropped.
//!
//! The common case — no hop-by-hop header at all — costs one scan over the
//! header names and no allocation.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The credential of internal service-to-service routes; never accepted
/// from outside.
pub const SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-shop-service-token");
/// The client address the gateway resolved (the peer, or the last
/// `X-Forwarded-For` hop behind a trusted proxy), for services that key
/// limits by client; always overwritten, so a client cannot set it.
pub const CLIENT_IP: HeaderName = HeaderName::from_static("x-shop-client-ip");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether `name` is hop-by-hop by definition (not counting the names a
/// `Connection` header lists).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == KEEP_ALIVE
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str().starts_with("proxy-")
}

/// Removes hop-by-hop headers and those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Names listed in Connection, other than the ones removed anyway
    // (`keep-alive`, `close`, `upgrade`), are rare; collect only those.
    let mut listed: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case("upgrade")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                listed.push(name);
            }
        }
    }
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
    let other_proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in other_proxy {
        headers.remove(name);
    }
}

/// Prepares the headers of a request to forward: hop-by-hop headers and
/// internal credentials removed, `X-Forwarded-For` and `X-Forwarded-Proto`
/// set for `client`.
///
/// With `trust_forwarded` (a trusted proxy in front) the client address is
/// appended to the incoming `X-Forwarded-For` and an incoming
/// `X-Forwarded-Proto` kept; otherwise both are replaced, so a client
/// cannot make a service believe it comes from another address.
pub fn prepare_request(headers: &mut HeaderMap, client: IpAddr, trust_forwarded: bool) {
    strip_hop_by_hop(headers);
    headers.remove(SERVICE_TOKEN);
    let client = client.to_string();
    let forwarded_for = if trust_forwarded && headers.contains_key(X_FORWARDED_FOR) {
        let mut joined = String::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            if let Ok(value) = value.to_str() {
                joined.push_str(value);
                joined.push_str(", ");
            }
        }
        joined.push_str(&client);
        joined
    } else {
        client
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !(trust_forwarded && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_go() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-foo", "bar"),
            ("content-type", "application/json"),
            ("authorization", "Bearer t"),
        ]);
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "authorization"]);
    }

    #[test]
    fn forwarded_headers_are_replaced_unless_trusted() {
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let mut map = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("x-shop-service-token", "guess"),
        ]);
        prepare_request(&mut map, ip, false);
        assert_eq!(map[X_FORWARDED_FOR], "203.0.113.7");
        assert_eq!(map[X_FORWARDED_PROTO], "http");
        assert!(!map.contains_key(SERVICE_TOKEN));

        let mut map = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
        ]);
        prepare_request(&mut map, ip, true);
        assert_eq!(map[X_FORWARDED_FOR], "198.51.100.1, 203.0.113.7");
        assert_eq!(map[X_FORWARDED_PROTO], "https");
    }
}
