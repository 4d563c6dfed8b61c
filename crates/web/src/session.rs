//! The browser's session, kept in cookies: the access token
//! (`shop_session`), the CSRF token (`shop_csrf`) and a one-shot notice
//! (`shop_notice`); the [`Visitor`] and [`SignedIn`] extractors; and
//! [`guard`], the middleware that sets the CSRF cookie, refuses forged
//! posts, and turns an [`Error`] into its page.
//!
//! Every cookie is `HttpOnly` (no script reads it), `SameSite=Lax` (a
//! cross-site form post carries none of them), `Path=/`, and `Secure` when
//! the page came over TLS or the settings say always
//! ([`crate::config::SecureCookies`]).
//!
//! CSRF is a double-submit token: a random value in the `shop_csrf`
//! cookie, repeated in every form's hidden `csrf_token`; a post whose two
//! values differ (compared in constant time), or whose `Origin` is
//! present and not the page's own, is refused with 403 before any handler
//! runs. `SameSite=Lax` alone already keeps the session cookie off
//! cross-site posts; the token also covers a sibling subdomain, which
//! counts as the same site.

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::time::Duration;
use cookie::{Cookie, CookieBuilder, SameSite};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, header};
use std::net::SocketAddr;
use subtle::ConstantTimeEq as _;

use crate::api::Caller;
use crate::config::SecureCookies;
use crate::error::Error;
use crate::pages::{self, AppState};
use crate::views::Notice;

/// The access token's cookie.
pub const SESSION_COOKIE: &str = "shop_session";
/// The CSRF token's cookie.
pub const CSRF_COOKIE: &str = "shop_csrf";
/// The one-shot notice's cookie: a key of [`Notice`], never free text.
pub const NOTICE_COOKIE: &str = "shop_notice";
/// The hidden form field that repeats the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// How long a notice waits to be shown, in seconds: it is shown by the
/// page the redirect that set it leads to, a moment later.
pub const NOTICE_MAX_AGE: u64 = 60;
/// Largest form body read: the longest form (sign-up) is well under 2 KiB.
pub const FORM_LIMIT: usize = 16 * 1024;
/// Bytes of randomness in a CSRF token (43 characters of base64url).
const CSRF_BYTES: usize = 32;

/// `X-Forwarded-Proto`, set by the gateway.
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The longest a cookie is kept, in seconds: 400 days, the most browsers
/// keep any cookie (RFC 6265bis), whatever `expires_in` the API answered.
pub const MAX_COOKIE_AGE: u64 = 400 * 24 * 60 * 60;

/// The value of the cookie `name` in the request's `Cookie` headers (the
/// first, when a browser sends two), `None` when it is absent or empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value_trimmed().to_owned())
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` that keeps `value` under `name` for `max_age` seconds
/// (at most [`MAX_COOKIE_AGE`]), or until the browser closes when `None`,
/// with the attributes of every cookie of the storefront.
pub fn set_cookie(
    name: &'static str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let mut cookie = Cookie::build((name, value.to_owned()));
    if let Some(secs) = max_age {
        let secs = i64::try_from(secs.min(MAX_COOKIE_AGE)).unwrap_or_default();
        cookie = cookie.max_age(Duration::seconds(secs));
    }
    header_value(cookie, secure)
}

/// A `Set-Cookie` that removes the cookie `name` (`Max-Age=0`, and an
/// `Expires` in the past for browsers that know no `Max-Age`).
pub fn clear_cookie(name: &'static str, secure: bool) -> HeaderValue {
    header_value(Cookie::build(name).removal(), secure)
}

/// `cookie` with the storefront's attributes, as a header value.
fn header_value(cookie: CookieBuilder<'static>, secure: bool) -> HeaderValue {
    let cookie = cookie
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build();
    // Names are ours; values are base64url, notice keys or access tokens
    // checked by `is_token_shaped` when the API answered them: always a
    // valid header. Should one not be, the browser gets no cookie, not a
    // broken header.
    HeaderValue::try_from(cookie.to_string()).unwrap_or_else(|_| {
        tracing::error!(cookie = cookie.name(), "a cookie that is no header value");
        HeaderValue::from_static("shop_invalid=; Max-Age=0")
    })
}

/// What the middleware learnt of a request, for the extractors.
#[derive(Debug, Clone)]
pub struct RequestSession {
    /// The CSRF token forms carry (the cookie's, or a new one).
    pub csrf: String,
    /// Whether cookies set for this request get `Secure`.
    pub secure: bool,
}

/// Whoever asks for a page, signed in or not.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The token (when there is a session) and the browser's address.
    pub caller: Caller,
    /// The CSRF token to put in forms.
    pub csrf: String,
    /// The notice to show once, when a redirect left one.
    pub notice: Option<Notice>,
    /// Whether cookies get `Secure`.
    pub secure: bool,
}

impl Visitor {
    /// Whether there is a session (an access token cookie).
    pub fn signed_in(&self) -> bool {
        self.caller.token.is_some()
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Error> {
        let session = parts
            .extensions
            .get::<RequestSession>()
            .cloned()
            .ok_or_else(|| Error::Internal("the session middleware is missing".into()))?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        // The gateway always sets (overwrites) the header; reached directly
        // (a development setup), the TCP peer is the browser.
        let client_ip = parts
            .headers
            .get(shop_common::wire::CLIENT_IP)
            .cloned()
            .or_else(|| peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()));
        let token = cookie(&parts.headers, SESSION_COOKIE).filter(|token| is_token_shaped(token));
        Ok(Self {
            caller: Caller { token, client_ip },
            csrf: session.csrf,
            notice: cookie(&parts.headers, NOTICE_COOKIE).and_then(|key| Notice::from_key(&key)),
            secure: session.secure,
        })
    }
}

/// A visitor with a session; without one, the page answers with a
/// redirect to the login page ([`Error::LoginRequired`]).
#[derive(Debug, Clone)]
pub struct SignedIn(pub Visitor);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let visitor = Visitor::from_request_parts(parts, state).await?;
        if visitor.signed_in() {
            Ok(Self(visitor))
        } else {
            Err(Error::LoginRequired)
        }
    }
}

/// Whether a cookie value can be a JWT (base64url segments and dots), so
/// that it can go into a header as it is.
pub fn is_token_shaped(value: &str) -> bool {
    value.len() <= 4096
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// Whether a cookie value is a CSRF token this service made.
fn is_csrf_shaped(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'))
}

/// A new CSRF token.
fn new_csrf_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; CSRF_BYTES]>())
}

/// Whether the page request came over TLS, as far as this service can
/// tell: the gateway (or a proxy before it) says so in
/// `X-Forwarded-Proto`.
fn came_over_tls(headers: &HeaderMap) -> bool {
    headers
        .get(X_FORWARDED_PROTO)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The origin (`scheme://host[:port]`) the browser sees this page at.
fn own_origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if came_over_tls(headers) {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{host}"))
}

/// Whether the post may go on: no `Origin` (an older browser, a
/// same-origin request some browsers send without one), or this page's own.
fn origin_allowed(headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let origin = origin.to_str().unwrap_or_default();
            own_origin(headers).is_some_and(|own| own.eq_ignore_ascii_case(origin))
        }
    }
}

/// The `csrf_token` field of a form body.
fn form_token(body: &[u8]) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    fields
        .into_iter()
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value)
}

/// The middleware around every page and form:
///
/// 1. makes a CSRF token when the browser has none (set as a cookie on
///    the HTML page that answers, so its forms and the cookie agree);
/// 2. refuses a post whose `Origin` is another site's, or whose
///    `csrf_token` field does not match the cookie (403 page);
/// 3. after the handler: clears a notice that was shown, and renders an
///    [`Error`] the handler returned as its page — with the session's
///    header — or, for a page that needs a session, redirects to the login
///    page (clearing an expired token).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let secure = match state.settings.cookies.secure {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => came_over_tls(request.headers()),
    };
    let existing = cookie(request.headers(), CSRF_COOKIE).filter(|token| is_csrf_shaped(token));
    let fresh = existing.is_none();
    let csrf = existing.clone().unwrap_or_else(new_csrf_token);
    let had_notice = cookie(request.headers(), NOTICE_COOKIE).is_some();
    let session_cookie = cookie(request.headers(), SESSION_COOKIE);
    let had_session = session_cookie.is_some();
    // The header of an error page: "Log out" only for a session the pages
    // would use (see `Visitor`), not for a cookie holding garbage.
    let signed_in = session_cookie.is_some_and(|token| is_token_shaped(&token));
    let method = request.method().clone();
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |target| target.as_str().to_owned());
    let referer_path = local_referer(request.headers());

    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(RequestSession {
        csrf: csrf.clone(),
        secure,
    });
    let outcome = if method == Method::POST {
        check_post(&parts.headers, existing.as_deref(), body).await
    } else {
        Ok(body)
    };
    let mut response = match outcome {
        Ok(body) => next.run(Request::from_parts(parts, body)).await,
        Err(err) => err.into_response(),
    };

    // What a handler (or the check above) failed with becomes its page.
    if let Some(failure) = response.extensions_mut().remove::<Error>() {
        response = match failure {
            Error::LoginRequired => {
                let next_page = if method == Method::GET || method == Method::HEAD {
                    target
                } else {
                    referer_path.unwrap_or_else(|| "/".to_owned())
                };
                let mut redirect = pages::see_other(&pages::login_path(&next_page));
                if had_session {
                    // Expired or refused: it is of no more use.
                    redirect
                        .headers_mut()
                        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE, secure));
                }
                redirect
            }
            failure => {
                log_failure(&method, &target, &failure);
                pages::error_page(&failure, signed_in, &csrf)
            }
        };
    }

    let headers = response.headers_mut();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if fresh && is_html {
        headers.append(
            header::SET_COOKIE,
            set_cookie(CSRF_COOKIE, &csrf, None, secure),
        );
    }
    let notice_prefix = format!("{NOTICE_COOKIE}=");
    let sets_notice = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|value| value.as_bytes().starts_with(notice_prefix.as_bytes()));
    if had_notice && is_html && !sets_notice {
        headers.append(header::SET_COOKIE, clear_cookie(NOTICE_COOKIE, secure));
    }
    response
}

/// Logs a page that failed, at the level its cause deserves: a fault of
/// ours (500) is an error, a part of the API down (503) a warning (its
/// cause was logged where the call failed), a refused form a notice for
/// whoever looks for forgeries; a missing page is routine.
fn log_failure(method: &Method, target: &str, failure: &Error) {
    let path = target.split('?').next().unwrap_or(target);
    match failure {
        Error::Internal(cause) => tracing::error!(%method, path, error = %cause, "a page failed"),
        Error::Unavailable { .. } => {
            tracing::warn!(%method, path, "a page's part of the API is unavailable")
        }
        Error::Forbidden => {
            tracing::info!(%method, path, "a form without its CSRF token or from another origin was refused")
        }
        Error::PayloadTooLarge => tracing::info!(%method, path, "a form too large was refused"),
        _ => tracing::debug!(%method, path, error = %failure, "no page"),
    }
}

/// The body of a post that passed the checks, or the 403 it gets.
async fn check_post(
    headers: &HeaderMap,
    cookie_token: Option<&str>,
    body: Body,
) -> Result<Body, Error> {
    if !origin_allowed(headers) {
        return Err(Error::Forbidden);
    }
    let bytes = to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let Some(expected) = cookie_token else {
        return Err(Error::Forbidden);
    };
    let sent = form_token(&bytes).unwrap_or_default();
    if bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(Body::from(bytes))
    } else {
        Err(Error::Forbidden)
    }
}

/// The path of the `Referer` when it is a page of this site: where to come
/// back to after logging in from a form post.
fn local_referer(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let own = own_origin(headers)?;
    let rest = referer.strip_prefix(&own)?;
    pages::local_path(rest).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in cookies {
            headers.append(
                header::COOKIE,
                HeaderValue::from_str(line).unwrap_or_else(|_| HeaderValue::from_static("")),
            );
        }
        headers
    }

    #[test]
    fn a_cookie_is_found_in_any_cookie_header_and_garbage_is_none() {
        let sent = headers(&["a=1; shop_csrf=abc", "shop_session=x.y.z"]);
        assert_eq!(cookie(&sent, CSRF_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&sent, SESSION_COOKIE).as_deref(), Some("x.y.z"));
        assert_eq!(cookie(&sent, NOTICE_COOKIE), None);
        let quoted = headers(&["shop_notice=\"added\""]);
        assert_eq!(cookie(&quoted, NOTICE_COOKIE).as_deref(), Some("added"));
        let junk = headers(&[";;=; shop_session=; =x; shop_csrf"]);
        assert_eq!(cookie(&junk, SESSION_COOKIE), None, "empty is absent");
        assert_eq!(cookie(&junk, CSRF_COOKIE), None, "no value is absent");
        let first = headers(&["shop_csrf=first; shop_csrf=second"]);
        assert_eq!(cookie(&first, CSRF_COOKIE).as_deref(), Some("first"));
    }

    #[test]
    fn cookies_are_http_only_lax_on_the_whole_site_and_secure_when_asked() {
        let kept = set_cookie(SESSION_COOKIE, "a.b.c", Some(900), false);
        assert_eq!(
            kept,
            "shop_session=a.b.c; HttpOnly; SameSite=Lax; Path=/; Max-Age=900"
        );
        let browser = set_cookie(CSRF_COOKIE, "t", None, true);
        assert_eq!(
            browser,
            "shop_csrf=t; HttpOnly; SameSite=Lax; Secure; Path=/"
        );
        let capped = set_cookie(SESSION_COOKIE, "a.b.c", Some(u64::MAX), false);
        let capped = capped.to_str().unwrap_or_default();
        assert!(capped.ends_with("; Max-Age=34560000"), "{capped}");
        let cleared = clear_cookie(NOTICE_COOKIE, false);
        let cleared = cleared.to_str().unwrap_or_default();
        assert!(
            cleared
                .starts_with("shop_notice=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Expires="),
            "{cleared}"
        );
    }

    #[test]
    fn only_a_jwt_shaped_session_is_used() {
        assert!(is_token_shaped("eyJh.eyJz-_.c2ln"));
        for garbage in ["a b", "a;b", "é", "<script>", "a\"b"] {
            assert!(!is_token_shaped(garbage), "{garbage}");
        }
        assert!(!is_token_shaped(&"a".repeat(4097)));
    }

    #[test]
    fn the_form_token_is_read_from_any_form_even_one_that_is_no_utf8() {
        assert_eq!(form_token(b"a=1&csrf_token=abc").as_deref(), Some("abc"));
        assert_eq!(
            form_token(b"a=%FF%FE&csrf_token=abc\xff").as_deref(),
            Some("abc\u{fffd}")
        );
        assert_eq!(form_token(b"quantity=1"), None);
    }

    #[test]
    fn a_post_from_another_origin_is_refused_and_one_without_origin_is_not() {
        let mut sent = HeaderMap::new();
        sent.insert(header::HOST, HeaderValue::from_static("shop.example:8080"));
        assert!(origin_allowed(&sent), "no Origin");
        sent.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://shop.example:8080"),
        );
        assert!(origin_allowed(&sent));
        for other in [
            "null",
            "http://evil.example",
            "https://shop.example:8080",
            "http://shop.example:8080.evil",
        ] {
            sent.insert(header::ORIGIN, HeaderValue::from_static(other));
            assert!(!origin_allowed(&sent), "{other}");
        }
        sent.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        sent.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://shop.example:8080"),
        );
        assert!(origin_allowed(&sent), "over TLS");
    }
}
