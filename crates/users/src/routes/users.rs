//! `POST /api/users` (register) and `GET /api/users/me`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use shop_api::users::NewUser;
use shop_common::auth::AuthUser;
use shop_common::error::{FieldErrors, field};
use shop_common::extract;

use super::AppState;
use crate::domain::{Email, Password, User, Username};
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(create_user))
        .route("/api/users/me", get(get_me))
}

/// A registration whose every field parsed.
struct Registration {
    username: Username,
    email: Email,
    password: Password,
}

/// Parses every field of `new`, reporting each invalid or missing one by name.
fn parse(new: NewUser) -> Result<Registration> {
    let mut errors = FieldErrors::new();
    let username = field(
        &mut errors,
        "username",
        required(new.username).and_then(|raw| Username::parse(&raw)),
    );
    let email = field(
        &mut errors,
        "email",
        required(new.email).and_then(|raw| Email::parse(&raw)),
    );
    let password = field(
        &mut errors,
        "password",
        required(new.password).and_then(|raw| Password::parse(&raw, username.as_ref())),
    );
    match (username, email, password) {
        (Some(username), Some(email), Some(password)) => Ok(Registration {
            username,
            email,
            password,
        }),
        _ => Err(Error::Validation(errors)),
    }
}

fn required(value: Option<String>) -> Result<String, String> {
    value.ok_or_else(|| "is required".to_owned())
}

async fn create_user(
    State(state): State<AppState>,
    extract::Json(request): extract::Json<NewUser>,
) -> Result<(StatusCode, Json<User>)> {
    let new = parse(request)?;
    let hash = state.hasher.hash(new.password.expose()).await?;
    let user = state.store.insert(&new.username, &new.email, &hash).await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(user)))
}

async fn get_me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<User>> {
    state
        .store
        .find_by_id(caller.user_id)
        .await?
        .map(Json)
        .ok_or(Error::UserGone)
}
