//! `POST /api/users` (register) and `GET /api/users/me`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shop_common::auth::AuthUser;
use shop_common::extract;

use super::AppState;
use crate::domain::{Email, Password, User, Username};
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(create_user))
        .route("/api/users/me", get(get_me))
}

/// Registration request; fields are optional here so that a missing one is
/// reported per field like any other invalid value.
#[derive(Debug, Deserialize)]
struct CreateUser {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// A registration whose every field parsed.
struct NewUser {
    username: Username,
    email: Email,
    password: Password,
}

impl CreateUser {
    fn parse(self) -> Result<NewUser> {
        let mut errors = BTreeMap::new();
        let username = field(
            &mut errors,
            "username",
            required(self.username).and_then(|raw| Username::parse(&raw)),
        );
        let email = field(
            &mut errors,
            "email",
            required(self.email).and_then(|raw| Email::parse(&raw)),
        );
        let password = field(
            &mut errors,
            "password",
            required(self.password).and_then(|raw| Password::parse(&raw, username.as_ref())),
        );
        match (username, email, password) {
            (Some(username), Some(email), Some(password)) => Ok(NewUser {
                username,
                email,
                password,
            }),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// The parsed value, or `None` with the message recorded under `name`.
fn field<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    result: Result<T, String>,
) -> Option<T> {
    result
        .map_err(|message| errors.insert(name.to_owned(), message))
        .ok()
}

fn required(value: Option<String>) -> Result<String, String> {
    value.ok_or_else(|| "is required".to_owned())
}

async fn create_user(
    State(state): State<AppState>,
    extract::Json(request): extract::Json<CreateUser>,
) -> Result<(StatusCode, Json<User>)> {
    let new = request.parse()?;
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
