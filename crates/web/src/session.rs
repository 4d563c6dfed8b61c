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

/// The value of the cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value for `name`: kept `max_age` seconds (0 clears it),
/// or until the browser closes when `None`.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let max_age = max_age.map_or_else(String::new, |secs| format!("; Max-Age={secs}"));
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/{max_age}; HttpOnly; SameSite=Lax{secure}");
    // Names are ours; values are base64url, JWTs (base64url and dots) or
    // notice keys: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
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
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .filter(|token| is_token_shaped(token))
            .map(str::to_owned);
        Ok(Self {
            caller: Caller { token, client_ip },
            csrf: session.csrf,
            notice: cookie(&parts.headers, NOTICE_COOKIE).and_then(Notice::from_key),
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
fn is_token_shaped(value: &str) -> bool {
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
    let existing = cookie(request.headers(), CSRF_COOKIE)
        .filter(|token| is_csrf_shaped(token))
        .map(str::to_owned);
    let fresh = existing.is_none();
    let csrf = existing.clone().unwrap_or_else(new_csrf_token);
    let had_notice = cookie(request.headers(), NOTICE_COOKIE).is_some();
    let had_session = cookie(request.headers(), SESSION_COOKIE).is_some();
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
                let next_page = if method == Method::GET {
                    target
                } else {
                    referer_path.unwrap_or_else(|| "/".to_owned())
                };
                let mut redirect = pages::see_other(&pages::login_path(&next_page));
                if had_session {
                    // Expired or refused: it is of no more use.
                    redirect.headers_mut().append(
                        header::SET_COOKIE,
                        set_cookie(SESSION_COOKIE, "", Some(0), secure),
                    );
                }
                redirect
            }
            failure => {
                let signed_in = had_session;
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
    let sets_notice = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|value| value.as_bytes().starts_with(NOTICE_COOKIE.as_bytes()));
    if had_notice && is_html && !sets_notice {
        headers.append(
            header::SET_COOKIE,
            set_cookie(NOTICE_COOKIE, "", Some(0), secure),
        );
    }
    response
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
