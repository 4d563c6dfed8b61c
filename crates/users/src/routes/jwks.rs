//! `GET /.well-known/jwks.json`: the public keys that verify our tokens.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(get_jwks))
}

async fn get_jwks(State(state): State<AppState>) -> impl IntoResponse {
    // Verifiers cache the set and refetch on an unknown kid, so a short
    // max-age is enough and keeps key rotation quick.
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.issuer.jwks()),
    )
}
