//! `POST /api/sessions`: log in with username or email and password.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shop_common::extract;

use super::AppState;
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/sessions", post(create_session))
}

#[derive(Debug, Deserialize)]
struct CreateSession {
    login: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct Session {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// Longest login (an email) or password worth hashing; anything longer cannot
/// match and must not buy extra hashing work.
const MAX_INPUT: usize = 256;

async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    extract::Json(request): extract::Json<CreateSession>,
) -> Result<Json<Session>> {
    let client = state.client_addr(peer, &headers);
    state
        .limiter
        .check(client, &request.login)
        .map_err(Error::TooManyAttempts)?;
    let credentials = if request.login.len() > MAX_INPUT {
        None
    } else {
        state.store.find_by_login(&request.login).await?
    };
    // Unknown logins are verified against a dummy hash: same answer, same work.
    let password = if request.password.len() > MAX_INPUT {
        ""
    } else {
        request.password.as_str()
    };
    let hash = credentials.as_ref().map(|c| c.password_hash.as_str());
    let verified = state.hasher.verify(password, hash).await?;
    let Some(credentials) = credentials.filter(|_| verified) else {
        state.limiter.record_failure(client, &request.login);
        return Err(Error::InvalidCredentials);
    };
    state.limiter.record_success(client, &request.login);
    let token = state.issuer.issue(&credentials.user.id.to_string())?;
    Ok(Json(Session {
        access_token: token.token,
        token_type: "Bearer",
        expires_in: token.expires_in,
    }))
}
