//! Deadlines: the time a caller is still willing to wait, carried into the
//! client in the request's extensions and out to the upstream in a header
//! (`grpc-timeout` for gRPC, `x-shop-deadline-ms` for HTTP) so that the
//! upstream can give up when nobody waits for its answer any more.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::instance::Scheme;

/// The header carrying the remaining deadline to HTTP upstreams, in milliseconds.
pub const DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-shop-deadline-ms");
/// The gRPC deadline header.
pub const GRPC_TIMEOUT_HEADER: HeaderName = HeaderName::from_static("grpc-timeout");

/// The moment a caller stops waiting. Put it in a request's extensions to
/// bound a call by it (the client's own deadline still applies when shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// The deadline an incoming request carries in `x-shop-deadline-ms` or
    /// `grpc-timeout`, counted from now; `None` when neither is present or
    /// valid. Services put it in the extensions of the calls they make on
    /// behalf of that request, so a deadline holds across hops.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let millis = headers
            .get(&DEADLINE_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        millis
            .or_else(|| {
                headers
                    .get(&GRPC_TIMEOUT_HEADER)
                    .and_then(|value| parse_grpc_timeout(value.as_bytes()))
            })
            .map(Self::after)
    }
}

/// Writes the time budget of one try into the header the scheme uses,
/// replacing whatever the incoming request carried.
pub(crate) fn set_header(headers: &mut HeaderMap, scheme: Scheme, budget: Duration) {
    let millis = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX).max(1);
    match scheme {
        Scheme::Http => {
            headers.insert(DEADLINE_HEADER, HeaderValue::from(millis));
        }
        Scheme::Grpc => {
            // grpc-timeout allows at most 8 digits.
            let value = if millis <= 99_999_999 {
                format!("{millis}m")
            } else {
                format!("{}S", (millis / 1000).min(99_999_999))
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(GRPC_TIMEOUT_HEADER, value);
            }
        }
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H M S m u n).
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_encode() {
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"123456789m"), None);
        assert_eq!(parse_grpc_timeout(b"m"), None);
        assert_eq!(parse_grpc_timeout(b"5x"), None);

        let mut headers = HeaderMap::new();
        set_header(&mut headers, Scheme::Grpc, Duration::from_millis(1500));
        assert_eq!(headers[GRPC_TIMEOUT_HEADER], "1500m");
        set_header(&mut headers, Scheme::Http, Duration::from_millis(700));
        assert_eq!(headers[DEADLINE_HEADER], "700");
    }

    #[test]
    fn incoming_deadlines_are_read_from_either_header() {
        let mut headers = HeaderMap::new();
        assert!(Deadline::from_headers(&headers).is_none());
        headers.insert(GRPC_TIMEOUT_HEADER, HeaderValue::from_static("2S"));
        let remaining = Deadline::from_headers(&headers).unwrap().remaining();
        assert!(remaining > Duration::from_millis(1500) && remaining <= Duration::from_secs(2));
        headers.insert(DEADLINE_HEADER, HeaderValue::from_static("300"));
        assert!(
            Deadline::from_headers(&headers).unwrap().remaining() <= Duration::from_millis(300)
        );
    }
}
