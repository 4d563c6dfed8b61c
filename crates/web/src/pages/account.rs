//! Signing up, logging in and out.

use axum::extract::State;
use axum::response::Response;
use http::{StatusCode, header};
use serde::Deserialize;
use shop_api::users::{NewSession, NewUser, Session};

use super::AppState;
use super::extract::{Fields, Params};
use super::redirect::{local_path, see_other_with};
use crate::api::ApiError;
use crate::error::{Error, Result};
use crate::session::{self, SESSION_COOKIE, Visitor, clear_cookie, set_cookie};
use crate::views::{FieldErrors, Layout, LoginPage, Notice, SignupPage, render};

/// The `next` of the login and sign-up pages.
#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

impl NextQuery {
    fn next(&self) -> String {
        self.next
            .as_deref()
            .and_then(local_path)
            .unwrap_or("/")
            .to_owned()
    }
}

pub(super) async fn signup_form(visitor: Visitor, Params(query): Params<NextQuery>) -> Response {
    render(&SignupPage {
        layout: Layout::new(
            "Sign up",
            visitor.signed_in(),
            &visitor.csrf,
            visitor.notice,
        ),
        username: String::new(),
        email: String::new(),
        next: query.next(),
        errors: FieldErrors::default(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct SignupFields {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub(super) async fn create_account(
    State(state): State<AppState>,
    visitor: Visitor,
    Fields(fields): Fields<SignupFields>,
) -> Result<Response> {
    let next = NextQuery { next: fields.next }.next();
    let user = NewUser {
        username: Some(fields.username.trim().to_owned()),
        email: Some(fields.email.trim().to_owned()),
        password: Some(fields.password.clone()),
    };
    let failed = match state.api.create_user(&visitor.caller, &user).await {
        Ok(_) => {
            let login = NewSession {
                login: fields.username.trim().to_owned(),
                password: fields.password,
            };
            let session = state.api.create_session(&visitor.caller, &login).await?;
            return start_session(&session, &next, Notice::Welcome, visitor.secure);
        }
        Err(err) => err,
    };
    let (status, summary, errors) = match failed {
        ApiError::Problem(problem) if problem.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let errors = FieldErrors {
                username: problem
                    .errors
                    .get("username")
                    .map(|m| sentence("Username", m)),
                email: problem.errors.get("email").map(|m| sentence("Email", m)),
                password: problem
                    .errors
                    .get("password")
                    .map(|m| sentence("Password", m)),
            };
            (
                problem.status,
                "Some details need fixing: see the messages next to the fields.".to_owned(),
                errors,
            )
        }
        ApiError::Problem(problem) if problem.status == StatusCode::CONFLICT => (
            problem.status,
            "That username or email is already registered. Log in, or choose another.".to_owned(),
            FieldErrors::default(),
        ),
        ApiError::Problem(problem) if problem.status == StatusCode::TOO_MANY_REQUESTS => (
            problem.status,
            too_many_attempts(problem.retry_after),
            FieldErrors::default(),
        ),
        other => return Err(other.into()),
    };
    let mut layout = Layout::new("Sign up", visitor.signed_in(), &visitor.csrf, None);
    layout.error = Some(summary);
    let mut response = render(&SignupPage {
        layout,
        username: fields.username,
        email: fields.email,
        next,
        errors,
    });
    *response.status_mut() = status;
    Ok(response)
}

/// A field's message from the API (`is not an address`) as a sentence
/// naming the field (`Email is not an address.`).
fn sentence(field: &str, message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    format!("{field} {message}.")
}

fn too_many_attempts(retry_after: Option<u64>) -> String {
    format!(
        "Too many attempts, try again in {} seconds.",
        retry_after.unwrap_or(1)
    )
}

pub(super) async fn login_form(visitor: Visitor, Params(query): Params<NextQuery>) -> Response {
    render(&LoginPage {
        layout: Layout::new("Log in", visitor.signed_in(), &visitor.csrf, visitor.notice),
        login: String::new(),
        next: query.next(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginFields {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub(super) async fn create_session(
    State(state): State<AppState>,
    visitor: Visitor,
    Fields(fields): Fields<LoginFields>,
) -> Result<Response> {
    let next = NextQuery { next: fields.next }.next();
    let login = NewSession {
        login: fields.login.trim().to_owned(),
        password: fields.password,
    };
    let (status, summary) = match state.api.create_session(&visitor.caller, &login).await {
        Ok(session) => return start_session(&session, &next, Notice::LoggedIn, visitor.secure),
        Err(ApiError::Problem(problem))
            if matches!(
                problem.status,
                StatusCode::UNAUTHORIZED | StatusCode::UNPROCESSABLE_ENTITY
            ) =>
        {
            (
                StatusCode::UNAUTHORIZED,
                "Wrong username/email or password.".to_owned(),
            )
        }
        Err(ApiError::Problem(problem)) if problem.status == StatusCode::TOO_MANY_REQUESTS => (
            StatusCode::TOO_MANY_REQUESTS,
            too_many_attempts(problem.retry_after),
        ),
        Err(other) => return Err(other.into()),
    };
    let mut layout = Layout::new("Log in", visitor.signed_in(), &visitor.csrf, None);
    layout.error = Some(summary);
    let mut response = render(&LoginPage {
        layout,
        login: fields.login,
        next,
    });
    *response.status_mut() = status;
    Ok(response)
}

/// The redirect to `next` after logging in: the token in the session
/// cookie, kept as long as the token lasts (`expires_in`).
///
/// # Errors
/// [`Error::Internal`] for a token that cannot be a cookie (the API
/// answered something that is no JWT).
fn start_session(session: &Session, next: &str, notice: Notice, secure: bool) -> Result<Response> {
    if !session::is_token_shaped(&session.access_token) {
        return Err(Error::Internal(
            "the API answered an access token that is no JWT".into(),
        ));
    }
    let mut response = see_other_with(next, notice, secure);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &session.access_token,
            Some(session.expires_in),
            secure,
        ),
    );
    Ok(response)
}

/// Forgets the token: the cookie is cleared. (The API keeps no sessions
/// to revoke; the token simply expires.)
pub(super) async fn delete_session(visitor: Visitor) -> Response {
    let mut response = see_other_with("/", Notice::LoggedOut, visitor.secure);
    response.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(SESSION_COOKIE, visitor.secure),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::login_path;

    #[test]
    fn next_is_a_local_path_or_home() {
        for (raw, next) in [
            (Some("/cart"), "/cart"),
            (Some("/orders?cursor=x"), "/orders?cursor=x"),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("cart"), "/"),
            (Some("/\\/evil.example"), "/"),
            (Some("/cart\\..\\\\evil.example"), "/"),
            (Some("/\tevil.example"), "/"),
            (Some("/ /evil.example"), "/"),
            (Some("/caf\u{e9}"), "/"),
            (Some("\u{ff0f}\u{ff0f}evil.example"), "/"),
            // Encoded slashes stay encoded in a Location: a path here.
            (Some("/%2F%2Fevil.example"), "/%2F%2Fevil.example"),
            (Some("/%5Cevil.example"), "/%5Cevil.example"),
            (Some(&"/a".repeat(2000)), "/"),
            (Some(""), "/"),
            (None, "/"),
        ] {
            let query = NextQuery {
                next: raw.map(str::to_owned),
            };
            assert_eq!(query.next(), next, "{raw:?}");
        }
        assert_eq!(login_path("/cart"), "/login?next=%2Fcart");
        assert_eq!(login_path("/"), "/login");
    }
}
