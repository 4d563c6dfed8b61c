//! The pages and form actions: one thin handler per row of
//! [`shop_api::web::ROUTES`], each reading from or writing to the API
//! ([`crate::api`]) and filling a view ([`crate::views`]). The router is
//! built from that table ([`router`]), so the storefront serves exactly the
//! paths the gateway forwards to it.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use axum::{Form, Router};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use shop_api::users::{NewSession, NewUser, Session};
use shop_api::web::{ROUTES, WebMethod};
use shop_api::{OrderId, ProductId};

use crate::Settings;
use crate::api::{Api, ApiError};
use crate::assets;
use crate::error::{Error, Result};
use crate::security;
use crate::session::{
    self, NOTICE_COOKIE, NOTICE_MAX_AGE, SESSION_COOKIE, SignedIn, Visitor, clear_cookie,
    set_cookie,
};
use crate::views::{
    CartPage, CheckoutPage, ErrorPage, FieldErrors, Layout, LinesView, LoginPage, Notice,
    OrderPage, OrderSummary, OrderView, OrdersPage, ProductPage, ProductView, ProductsPage,
    SignupPage, payment_choices, render,
};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The public API, through the gateway.
    pub api: Api,
    /// The service's settings.
    pub settings: Arc<Settings>,
}

/// The storefront's router: every row of [`ROUTES`], a "Page not found"
/// page for any other path, the session middleware
/// ([`session::guard`]) and the security headers ([`security::headers`])
/// around all of it.
///
/// # Errors
/// A row of [`ROUTES`] this crate has no handler for (a route added to the
/// table but not here): the service refuses to start rather than let the
/// gateway forward to a page that does not exist.
pub fn router(state: AppState) -> Result<Router, String> {
    let mut router = Router::new();
    let mut paths: Vec<&str> = Vec::new();
    for &(_, path) in ROUTES {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    for path in paths {
        let mut methods = MethodRouter::new();
        let mut allow: Vec<&str> = Vec::new();
        for &(method, _) in ROUTES.iter().filter(|(_, row)| *row == path) {
            let handler = route(method, path)
                .ok_or_else(|| format!("no handler for {} {path}", method.as_str()))?;
            methods = methods.merge(handler);
            allow.push(method.as_str());
            if method == WebMethod::Get {
                // axum answers HEAD with the GET handler, without the body.
                allow.push("HEAD");
            }
        }
        let allow = allow.join(", ");
        router = router.route(
            path,
            methods.fallback(move || {
                let allow = allow.clone();
                async move { Error::MethodNotAllowed { allow } }
            }),
        );
    }
    Ok(router
        .route("/{*rest}", any(not_found))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::guard,
        ))
        .layer(middleware::from_fn(security::headers))
        .with_state(state))
}

/// The handler of one row of [`ROUTES`].
pub fn route(method: WebMethod, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        (WebMethod::Get, "/") => get(list_products),
        (WebMethod::Get, "/products/{id}") => get(show_product),
        (WebMethod::Get, "/signup") => get(signup_form),
        (WebMethod::Post, "/signup") => post(create_account),
        (WebMethod::Get, "/login") => get(login_form),
        (WebMethod::Post, "/login") => post(create_session),
        (WebMethod::Post, "/logout") => post(delete_session),
        (WebMethod::Get, "/cart") => get(show_cart),
        (WebMethod::Post, "/cart/items") => post(add_cart_item),
        (WebMethod::Post, "/cart/items/{product_id}") => post(set_cart_item),
        (WebMethod::Post, "/cart/items/{product_id}/remove") => post(remove_cart_item),
        (WebMethod::Get, "/checkout") => get(checkout_form),
        (WebMethod::Post, "/checkout") => post(place_order),
        (WebMethod::Get, "/orders") => get(list_orders),
        (WebMethod::Get, "/orders/{id}") => get(show_order),
        (WebMethod::Post, "/orders/{id}/cancel") => post(cancel_order),
        (WebMethod::Get, "/assets/{file}") => get(assets::serve),
        _ => return None,
    })
}

// ------------------------------------------------------------ helpers

/// A 303 to `location` (a local path).
pub fn see_other(location: &str) -> Response {
    let location =
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// A 303 to `location` that leaves `notice` for the page there.
fn see_other_with(location: &str, notice: Notice, secure: bool) -> Response {
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

/// A form body; a body that is no form is refused like a forged one.
pub struct Fields<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequest<S> for Fields<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        Form::<T>::from_request(request, state)
            .await
            .map(|Form(fields)| Self(fields))
            .map_err(|_| Error::Forbidden)
    }
}

/// A path parameter (an id): one that does not parse is no page here
/// (404), never axum's plain-text rejection.
pub struct Param<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Param<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|_| Error::NotFound)
    }
}

/// A page's query: one that does not parse (a field twice) is no page
/// here (404), never axum's plain-text rejection.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|_| Error::NotFound)
    }
}

/// Whether `cursor` can be a page cursor of the API (base64url, or the
/// orders' `o1.` and hex): anything else is no page of this site.
fn is_cursor_shaped(cursor: &str) -> bool {
    !cursor.is_empty()
        && cursor.len() <= 64
        && cursor
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// The query of a paged list.
#[derive(Debug, Deserialize)]
struct PageQuery {
    cursor: Option<String>,
}

impl PageQuery {
    fn cursor(&self) -> Result<Option<&str>> {
        match self.cursor.as_deref() {
            None => Ok(None),
            Some(cursor) if is_cursor_shaped(cursor) => Ok(Some(cursor)),
            Some(_) => Err(Error::NotFound),
        }
    }
}

// ------------------------------------------------------------ errors

/// The page of `error`: "Page not found", "unavailable", "This form has
/// expired…", with the session's header.
pub fn error_page(error: &Error, signed_in: bool, csrf: &str) -> Response {
    let (title, message) = match error {
        Error::NotFound => (
            "Page not found",
            "There is no page at this address. It may have moved, or the link may be mistyped."
                .to_owned(),
        ),
        Error::MethodNotAllowed { .. } => (
            "Page not found",
            "This address cannot be used that way.".to_owned(),
        ),
        Error::Forbidden => (
            "This form has expired",
            "This form has expired or did not come from this shop. Go back, reload the page and try again."
                .to_owned(),
        ),
        Error::PayloadTooLarge => ("Form too large", "That form was too large to send.".to_owned()),
        Error::Unavailable { retry_after } => (
            "Temporarily unavailable",
            match retry_after {
                Some(secs) => format!(
                    "This part of the shop is unavailable right now. Please try again in {secs} seconds."
                ),
                None => "This part of the shop is unavailable right now. Please try again in a moment."
                    .to_owned(),
            },
        ),
        Error::Internal(_) | Error::LoginRequired => (
            "Something went wrong",
            "Something went wrong on our side. Please try again.".to_owned(),
        ),
    };
    let page = ErrorPage {
        layout: Layout::new(title, signed_in, csrf, None),
        message,
    };
    let mut response = render(&page);
    *response.status_mut() = error.status_code();
    match error {
        Error::Unavailable {
            retry_after: Some(secs),
        } => {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        Error::MethodNotAllowed { allow } => {
            if let Ok(value) = HeaderValue::from_str(allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
        }
        _ => {}
    }
    response
}

async fn not_found() -> Error {
    Error::NotFound
}

// ------------------------------------------------------------ catalog

async fn list_products(
    State(state): State<AppState>,
    visitor: Visitor,
    Params(query): Params<PageQuery>,
) -> Result<Response> {
    let cursor = query.cursor()?;
    let page = state
        .api
        .products(&visitor.caller, state.settings.pages.page_size, cursor)
        .await?;
    let next = page
        .next_cursor
        .as_deref()
        .filter(|cursor| is_cursor_shaped(cursor))
        .map(|cursor| format!("/?cursor={cursor}"));
    Ok(render(&ProductsPage {
        layout: Layout::new(
            "Products",
            visitor.signed_in(),
            &visitor.csrf,
            visitor.notice,
        ),
        products: page.items.into_iter().map(ProductView::from).collect(),
        next,
        later: cursor.is_some(),
    }))
}

async fn show_product(
    State(state): State<AppState>,
    visitor: Visitor,
    Param(id): Param<ProductId>,
) -> Result<Response> {
    let product = ProductView::from(state.api.product(&visitor.caller, id).await?);
    Ok(render(&ProductPage {
        layout: Layout::new(
            product.name.clone(),
            visitor.signed_in(),
            &visitor.csrf,
            visitor.notice,
        ),
        product,
    }))
}

// ------------------------------------------------------------ account

/// The `next` of the login and sign-up pages.
#[derive(Debug, Deserialize)]
struct NextQuery {
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

async fn signup_form(visitor: Visitor, Params(query): Params<NextQuery>) -> Response {
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
struct SignupFields {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn create_account(
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

async fn login_form(visitor: Visitor, Params(query): Params<NextQuery>) -> Response {
    render(&LoginPage {
        layout: Layout::new("Log in", visitor.signed_in(), &visitor.csrf, visitor.notice),
        login: String::new(),
        next: query.next(),
    })
}

#[derive(Debug, Deserialize)]
struct LoginFields {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn create_session(
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
async fn delete_session(visitor: Visitor) -> Response {
    let mut response = see_other_with("/", Notice::LoggedOut, visitor.secure);
    response.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(SESSION_COOKIE, visitor.secure),
    );
    response
}

// ------------------------------------------------------------ cart

async fn show_cart(State(state): State<AppState>, SignedIn(visitor): SignedIn) -> Result<Response> {
    let cart = state.api.cart(&visitor.caller).await?;
    Ok(render(&CartPage {
        layout: Layout::new("Your cart", true, &visitor.csrf, visitor.notice),
        cart: LinesView::from(&cart),
    }))
}

#[derive(Debug, Deserialize)]
struct AddFields {
    #[serde(default)]
    product_id: String,
    quantity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QuantityFields {
    #[serde(default)]
    quantity: String,
}

/// A quantity typed in a form: a whole number from `min` to 99.
fn parse_quantity(raw: &str, min: i64) -> Option<i64> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|quantity| (min..=shop_api::cart::MAX_QUANTITY).contains(quantity))
}

/// Where a cart change leads: the cart, with what happened.
fn after_cart_change(
    outcome: Result<(), ApiError>,
    done: Notice,
    secure: bool,
) -> Result<Response> {
    let notice = match outcome {
        Ok(()) => done,
        Err(ApiError::Problem(problem)) => match problem.status {
            StatusCode::UNPROCESSABLE_ENTITY => Notice::QuantityLimit,
            StatusCode::NOT_FOUND => Notice::ProductGone,
            _ => return Err(ApiError::Problem(problem).into()),
        },
        Err(other) => return Err(other.into()),
    };
    Ok(see_other_with("/cart", notice, secure))
}

/// Adds to what is in the cart: the cart's `PUT` sets an absolute
/// quantity, so the current one is read first.
async fn add_cart_item(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Fields(fields): Fields<AddFields>,
) -> Result<Response> {
    let product: ProductId = fields
        .product_id
        .trim()
        .parse()
        .map_err(|_| Error::NotFound)?;
    let Some(added) = parse_quantity(fields.quantity.as_deref().unwrap_or("1"), 1) else {
        return Ok(see_other_with(
            "/cart",
            Notice::QuantityInvalid,
            visitor.secure,
        ));
    };
    let cart = state.api.cart(&visitor.caller).await?;
    let current = cart
        .items
        .iter()
        .find(|item| item.product_id == product)
        .map_or(0, |item| item.quantity);
    let outcome = state
        .api
        .set_quantity(&visitor.caller, product, current.saturating_add(added))
        .await
        .map(drop);
    after_cart_change(outcome, Notice::Added, visitor.secure)
}

async fn set_cart_item(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Param(product): Param<ProductId>,
    Fields(fields): Fields<QuantityFields>,
) -> Result<Response> {
    let Some(quantity) = parse_quantity(&fields.quantity, 0) else {
        return Ok(see_other_with(
            "/cart",
            Notice::QuantityInvalid,
            visitor.secure,
        ));
    };
    if quantity == 0 {
        let outcome = state.api.remove_item(&visitor.caller, product).await;
        return after_cart_change(outcome, Notice::Removed, visitor.secure);
    }
    let outcome = state
        .api
        .set_quantity(&visitor.caller, product, quantity)
        .await
        .map(drop);
    after_cart_change(outcome, Notice::Updated, visitor.secure)
}

async fn remove_cart_item(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Param(product): Param<ProductId>,
) -> Result<Response> {
    let outcome = state.api.remove_item(&visitor.caller, product).await;
    after_cart_change(outcome, Notice::Removed, visitor.secure)
}

// ------------------------------------------------------------ checkout

async fn checkout_form(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
) -> Result<Response> {
    let cart = state.api.cart(&visitor.caller).await?;
    Ok(render(&CheckoutPage {
        layout: Layout::new("Checkout", true, &visitor.csrf, visitor.notice),
        cart: LinesView::from(&cart),
        choices: payment_choices(),
        // Fresh per rendering: a double submit or a reload of this form's
        // post sends the same key, and so places one order.
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    }))
}

#[derive(Debug, Deserialize)]
struct CheckoutFields {
    #[serde(default)]
    payment_token: String,
    #[serde(default)]
    idempotency_key: String,
}

async fn place_order(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Fields(fields): Fields<CheckoutFields>,
) -> Result<Response> {
    let key = uuid::Uuid::parse_str(fields.idempotency_key.trim()).ok();
    let token = shop_api::payments::tokens::ALL
        .into_iter()
        .find(|token| *token == fields.payment_token);
    let (Some(key), Some(token)) = (key, token) else {
        return Ok(see_other_with(
            "/checkout",
            Notice::CheckoutInvalid,
            visitor.secure,
        ));
    };
    match state
        .api
        .place_order(&visitor.caller, &key.hyphenated().to_string(), token)
        .await
    {
        Ok(order) => Ok(see_other(&format!("/orders/{}", order.id))),
        // orders answers an empty cart with 409.
        Err(ApiError::Problem(problem)) if problem.status == StatusCode::CONFLICT => {
            Ok(see_other_with("/cart", Notice::CartEmpty, visitor.secure))
        }
        Err(ApiError::Problem(problem)) if problem.status == StatusCode::UNPROCESSABLE_ENTITY => {
            Ok(see_other_with(
                "/checkout",
                Notice::CheckoutInvalid,
                visitor.secure,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

// ------------------------------------------------------------ orders

async fn list_orders(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Params(query): Params<PageQuery>,
) -> Result<Response> {
    let cursor = query.cursor()?;
    let page = state.api.orders(&visitor.caller, cursor).await?;
    let next = page
        .next_cursor
        .as_deref()
        .filter(|cursor| is_cursor_shaped(cursor))
        .map(|cursor| format!("/orders?cursor={cursor}"));
    Ok(render(&OrdersPage {
        layout: Layout::new("Your orders", true, &visitor.csrf, visitor.notice),
        orders: page.items.iter().map(OrderSummary::from).collect(),
        next,
        later: cursor.is_some(),
    }))
}

async fn show_order(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Param(id): Param<OrderId>,
) -> Result<Response> {
    let order = OrderView::from(&state.api.order(&visitor.caller, id).await?);
    let mut layout = Layout::new(
        format!("Order {}", order.summary.short_id),
        true,
        &visitor.csrf,
        visitor.notice,
    );
    layout.refresh = order.in_progress;
    Ok(render(&OrderPage { layout, order }))
}

async fn cancel_order(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Param(id): Param<OrderId>,
) -> Result<Response> {
    let location = format!("/orders/{id}");
    match state.api.cancel_order(&visitor.caller, id).await {
        Ok(_) => Ok(see_other_with(&location, Notice::Cancelled, visitor.secure)),
        Err(ApiError::Problem(problem)) if problem.status == StatusCode::CONFLICT => Ok(
            see_other_with(&location, Notice::NotCancellable, visitor.secure),
        ),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storefront_route_has_its_handler() {
        for &(method, path) in ROUTES {
            assert!(
                route(method, path).is_some(),
                "{} {path} has no handler",
                method.as_str()
            );
        }
        assert!(route(WebMethod::Post, "/").is_none());
    }

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

    #[test]
    fn quantities_are_whole_numbers_in_bounds() {
        assert_eq!(parse_quantity(" 3 ", 1), Some(3));
        assert_eq!(parse_quantity("0", 1), None);
        assert_eq!(parse_quantity("0", 0), Some(0));
        assert_eq!(parse_quantity("100", 1), None);
        assert_eq!(parse_quantity("2.5", 1), None);
        assert_eq!(parse_quantity("", 1), None);
    }
}
