//! Where a page or form leads next: redirects, the notices they leave,
//! and the local paths a login may come back to.

use axum::response::{IntoResponse, Response};
use http::uri::PathAndQuery;
use http::{HeaderValue, StatusCode, header};

use crate::session::{NOTICE_COOKIE, NOTICE_MAX_AGE, set_cookie};
use crate::views::Notice;

/// A 303 to `location` (a local path).
pub fn see_other(location: &str) -> Response {
    let location =
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// A 303 to `location` that leaves `notice` for the page there.
pub(super) fn see_other_with(location: &str, notice: Notice, secure: bool) -> Response {
    let mut response = see_other(location);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(NOTICE_COOKIE, notice.key(), Some(NOTICE_MAX_AGE), secure),
    );
    response
}

/// `raw` when it is a path of this site, for the `next` of the login
/// page: it starts with one `/` (`//host` and `/\\host` are read by
/// browsers as another host), holds no backslash (some browsers read it as
/// `/`), and is a valid path and query in ASCII as it is (no control
/// character or space: a `Location` header carries it unchanged).
/// Percent-encoded slashes stay encoded in a `Location`, so `/%2F%2Fhost`
/// is a path here.
pub fn local_path(raw: &str) -> Option<&str> {
    let local = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.contains('\\')
        && raw.len() <= MAX_NEXT
        && raw.is_ascii()
        && raw.parse::<PathAndQuery>().is_ok()
        && HeaderValue::from_str(raw).is_ok();
    local.then_some(raw)
}

/// The longest `next` kept: longer is no link of this site.
const MAX_NEXT: usize = 2048;

/// The login page's path, coming back to `next` afterwards.
pub fn login_path(next: &str) -> String {
    match serde_urlencoded::to_string([("next", next)]) {
        Ok(query) if next != "/" => format!("/login?{query}"),
        _ => "/login".to_owned(),
    }
}
