//! `GET /.well-known/jwks.json`: the public keys that verify our tokens:
//! the signing key's and those of `auth.published_key_files` / `_pems`.

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
    // The signing key and the keys published beside it (a rotation's next
    // or previous key). Verifiers refetch on a timer and on an unknown kid,
    // whatever this says; the max-age is for other clients.
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.issuer.jwks()),
    )
}
