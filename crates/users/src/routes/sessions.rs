//! `POST /api/sessions`: log in with username or email and password.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::routing::post;
use axum::{Json, Router};
use shop_api::users::{NewSession, Session};
use shop_common::extract;

use super::AppState;
use crate::domain::Password;
use crate::domain::email;
use crate::login_limit::Account;
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/sessions", post(create_session))
}

/// The token response must stay out of every cache (RFC 6749 §5.1);
/// `Pragma` for HTTP/1.0 caches.
const NO_STORE: [(HeaderName, &str); 2] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::PRAGMA, "no-cache"),
];

/// Logs in. The limiter's slots are taken before the password is verified
/// (see [`crate::login_limit`]): first the client's, before the store is
/// asked, then the account's, once the login has resolved to one.
async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    extract::Json(request): extract::Json<NewSession>,
) -> Result<([(HeaderName, &'static str); 2], Json<Session>)> {
    let client = state.client_addr(peer, &headers);
    let limiter = &state.limiter;
    let reservation = limiter
        .reserve(client, &request.login)
        .map_err(Error::TooManyAttempts)?;
    // No account has a login longer than the longest email, so a longer one
    // is not looked up (it still counts, under its own key).
    let credentials = if request.login.chars().nth(email::MAX_LEN).is_some() {
        None
    } else {
        match state.store.find_by_login(&request.login).await {
            Ok(found) => found,
            Err(err) => {
                limiter.release(reservation);
                return Err(err.into());
            }
        }
    };
    let account = match &credentials {
        Some(credentials) => Account::Known(credentials.user.id.as_uuid()),
        None => Account::Unknown(&request.login),
    };
    let reservation = limiter
        .reserve_account(reservation, account)
        .map_err(Error::TooManyAttempts)?;
    // Unknown logins are verified against a dummy hash, and over-long
    // passwords (which cannot have registered) as the empty one: same
    // answer, same work.
    let password = if Password::fits(&request.password) {
        request.password.as_str()
    } else {
        ""
    };
    let hash = credentials.as_ref().map(|c| c.password_hash.as_str());
    let verified = match state.hasher.verify(password, hash).await {
        Ok(verified) => verified,
        Err(err) => {
            limiter.release(reservation);
            return Err(err.into());
        }
    };
    let Some(credentials) = credentials.filter(|_| verified) else {
        limiter.failed(reservation);
        return Err(Error::InvalidCredentials);
    };
    limiter.succeeded(reservation);
    let token = state.issuer.issue(&credentials.user.id.to_string())?;
    Ok((
        NO_STORE,
        Json(Session {
            access_token: token.token,
            token_type: "Bearer".to_owned(),
            expires_in: token.expires_in,
        }),
    ))
}
