//! Typed calls to the public API, made through the gateway exactly as curl
//! would make them: the paths of the API, the user's token as a bearer
//! token, JSON both ways. Answers are `shop_api` types; failures are an
//! [`ApiError`] that keeps what a page needs to show (the status, the
//! problem's detail and its per-field `errors`).
//!
//! Every call also carries the service credential and the browser's
//! address ([`Caller::client_ip`]), so the gateway counts its rate limits
//! per browser.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use secrecy::ExposeSecret as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shop_api::cart::{Cart, SetQuantity};
use shop_api::catalog::{Product, ProductPage};
use shop_api::orders::{Order, OrderPage, PlaceOrder};
use shop_api::users::{NewSession, NewUser, Session, User};
use shop_api::{OrderId, ProductId};
use shop_common::config::InternalSettings;
use shop_common::error::{ErrorChain, Problem};
use shop_common::wire::{CLIENT_IP, SERVICE_TOKEN};
use shop_discovery::{CallError, Idempotent, RequestBody, UpstreamClient};

/// Largest API answer read: a page of 100 products or orders is far below.
const MAX_RESPONSE: usize = 2 * 1024 * 1024;

/// Why an API call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The gateway, or the service behind it, could not answer: no
    /// instance, a refused connection, a timeout, or its 502/503/504. The
    /// page says that part is unavailable and to try again.
    #[error("the API is unavailable")]
    Unavailable {
        /// How long to wait, when the API said.
        retry_after: Option<u64>,
    },
    /// The token is missing, expired or invalid (401).
    #[error("the API refused the token")]
    Unauthorized,
    /// The API answered with a problem (a 4xx, or a 500).
    #[error("the API answered {}", .0.status)]
    Problem(ApiProblem),
    /// The API answered something this client cannot read.
    #[error("unexpected API answer: {0}")]
    Unexpected(String),
}

/// A problem answer of the API, as much of it as a page shows.
#[derive(Debug, Clone)]
pub struct ApiProblem {
    /// Its status.
    pub status: StatusCode,
    /// Its `detail`, when it had one.
    pub detail: Option<String>,
    /// Its per-field messages (validation failures).
    pub errors: BTreeMap<String, String>,
    /// Its `Retry-After`, in seconds (a rate limit).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// The problem's status, for a problem answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Problem(problem) => Some(problem.status),
            Self::Unauthorized => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }
}

impl From<CallError> for ApiError {
    fn from(err: CallError) -> Self {
        // The cause names instances and addresses: logged, never shown.
        tracing::warn!(error = %ErrorChain(&err), "the API could not be reached");
        Self::Unavailable {
            retry_after: err.retry_after().map(|wait| wait.as_secs().max(1)),
        }
    }
}

/// Who a call is made for: the user's token, when there is a session, and
/// the browser's address.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The access token from the session cookie.
    pub token: Option<String>,
    /// The browser's address, sent as `x-shop-client-ip`.
    pub client_ip: Option<HeaderValue>,
}

/// The public API, reached through the gateway.
#[derive(Clone, Debug)]
pub struct Api {
    gateway: UpstreamClient,
    service_token: Option<HeaderValue>,
}

impl Api {
    /// Calls through `gateway`, presenting the credential of `internal`.
    pub fn new(gateway: UpstreamClient, internal: &InternalSettings) -> Self {
        let service_token = internal
            .service_token
            .as_ref()
            .and_then(|token| HeaderValue::from_str(token.expose_secret()).ok())
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Self {
            gateway,
            service_token,
        }
    }

    /// One page of the product list.
    ///
    /// # Errors
    /// [`ApiError`] when there is no page to show.
    pub async fn products(
        &self,
        caller: &Caller,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProductPage, ApiError> {
        let mut path = format!("/api/products?limit={limit}");
        if let Some(cursor) = cursor {
            path.push_str("&cursor=");
            path.push_str(cursor);
        }
        self.get(caller, &path).await
    }

    /// One product.
    ///
    /// # Errors
    /// [`ApiError`]; a 404 problem for an unknown product.
    pub async fn product(&self, caller: &Caller, id: ProductId) -> Result<Product, ApiError> {
        self.get(caller, &format!("/api/products/{id}")).await
    }

    /// Registers a user.
    ///
    /// # Errors
    /// [`ApiError`]; 422 with per-field errors, 409 for a taken name.
    pub async fn create_user(&self, caller: &Caller, user: &NewUser) -> Result<User, ApiError> {
        let request = self.json(Method::POST, caller, "/api/users", user)?;
        self.call(request).await
    }

    /// Logs in.
    ///
    /// # Errors
    /// [`ApiError`]; 401 (as a problem) for bad credentials, 429 when
    /// rate limited.
    pub async fn create_session(
        &self,
        caller: &Caller,
        login: &NewSession,
    ) -> Result<Session, ApiError> {
        let request = self.json(Method::POST, caller, "/api/sessions", login)?;
        // Here a 401 means "wrong credentials", not "session expired".
        self.call_raw(request).await.and_then(|(status, body)| {
            if status == StatusCode::UNAUTHORIZED {
                Err(ApiError::Problem(problem_of(status, &body, None)))
            } else {
                decode(status, &body, None)
            }
        })
    }

    /// The caller's cart.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn cart(&self, caller: &Caller) -> Result<Cart, ApiError> {
        self.get(caller, "/api/cart").await
    }

    /// Sets the quantity of `product` in the caller's cart.
    ///
    /// # Errors
    /// [`ApiError`]; 422 for a quantity out of bounds, 404 for an unknown
    /// product.
    pub async fn set_quantity(
        &self,
        caller: &Caller,
        product: ProductId,
        quantity: i64,
    ) -> Result<Cart, ApiError> {
        let body = SetQuantity {
            quantity: Some(quantity),
        };
        let path = format!("/api/cart/items/{product}");
        let request = self.json(Method::PUT, caller, &path, &body)?;
        self.call(request).await
    }

    /// Removes `product` from the caller's cart.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn remove_item(&self, caller: &Caller, product: ProductId) -> Result<(), ApiError> {
        let path = format!("/api/cart/items/{product}");
        let request = self.request(Method::DELETE, caller, &path, RequestBody::empty(), None)?;
        let (status, body) = self.call_raw(request).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(failure(status, &body, None))
        }
    }

    /// Places the caller's cart as an order under the idempotency `key`:
    /// the same key places one order, however often it is sent.
    ///
    /// # Errors
    /// [`ApiError`]; 409 for an empty cart.
    pub async fn place_order(
        &self,
        caller: &Caller,
        key: &str,
        payment_token: &str,
    ) -> Result<Order, ApiError> {
        let body = PlaceOrder {
            payment_token: Some(payment_token.to_owned()),
        };
        let mut request = self.json(Method::POST, caller, "/api/orders", &body)?;
        let key = HeaderValue::from_str(key)
            .map_err(|_| ApiError::Unexpected("an idempotency key that is no header".into()))?;
        request.headers_mut().insert("idempotency-key", key);
        // Safe to send again on another gateway: the key makes it so.
        request.extensions_mut().insert(Idempotent);
        self.call(request).await
    }

    /// One page of the caller's orders, newest first.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn orders(
        &self,
        caller: &Caller,
        cursor: Option<&str>,
    ) -> Result<OrderPage, ApiError> {
        let path = match cursor {
            Some(cursor) => format!("/api/orders?cursor={cursor}"),
            None => "/api/orders".to_owned(),
        };
        self.get(caller, &path).await
    }

    /// One of the caller's orders.
    ///
    /// # Errors
    /// [`ApiError`]; 404 for an unknown order or another user's.
    pub async fn order(&self, caller: &Caller, id: OrderId) -> Result<Order, ApiError> {
        self.get(caller, &format!("/api/orders/{id}")).await
    }

    /// Cancels one of the caller's orders.
    ///
    /// # Errors
    /// [`ApiError`]; 409 when it can no longer be cancelled.
    pub async fn cancel_order(&self, caller: &Caller, id: OrderId) -> Result<Order, ApiError> {
        let path = format!("/api/orders/{id}/cancel");
        let request = self.request(Method::POST, caller, &path, RequestBody::empty(), None)?;
        self.call(request).await
    }

    async fn get<T: DeserializeOwned>(&self, caller: &Caller, path: &str) -> Result<T, ApiError> {
        let request = self.request(Method::GET, caller, path, RequestBody::empty(), None)?;
        self.call(request).await
    }

    fn json<T: Serialize>(
        &self,
        method: Method,
        caller: &Caller,
        path: &str,
        body: &T,
    ) -> Result<Request<RequestBody>, ApiError> {
        let body = serde_json::to_vec(body).map_err(|err| ApiError::Unexpected(err.to_string()))?;
        self.request(
            method,
            caller,
            path,
            RequestBody::full(body),
            Some(HeaderValue::from_static("application/json")),
        )
    }

    fn request(
        &self,
        method: Method,
        caller: &Caller,
        path: &str,
        body: RequestBody,
        content_type: Option<HeaderValue>,
    ) -> Result<Request<RequestBody>, ApiError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .body(body)
            .map_err(|err| ApiError::Unexpected(err.to_string()))?;
        let headers = request.headers_mut();
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, content_type);
        }
        if let Some(token) = &caller.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ApiError::Unauthorized)?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        if let Some(credential) = &self.service_token {
            headers.insert(SERVICE_TOKEN, credential.clone());
        }
        if let Some(client_ip) = &caller.client_ip {
            headers.insert(CLIENT_IP, client_ip.clone());
        }
        Ok(request)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: Request<RequestBody>,
    ) -> Result<T, ApiError> {
        let (status, body) = self.call_raw(request).await?;
        decode(status, &body, None)
    }

    /// Sends `request`; the status and whole body of the answer, a 401 as
    /// [`ApiError::Unauthorized`] and the unavailable statuses as
    /// [`ApiError::Unavailable`].
    async fn call_raw(
        &self,
        request: Request<RequestBody>,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let response = self.gateway.send(request).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let body = response
            .into_body()
            .bytes(MAX_RESPONSE)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "reading an API answer failed");
                ApiError::Unavailable { retry_after: None }
            })?;
        if matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) {
            return Err(ApiError::Unavailable { retry_after });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ApiError::Problem(problem_of(status, &body, retry_after)));
        }
        Ok((status, body))
    }
}

/// The answer's body as `T` when it succeeded, else its failure.
fn decode<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<u64>,
) -> Result<T, ApiError> {
    if status.is_success() {
        serde_json::from_slice(body).map_err(|err| ApiError::Unexpected(err.to_string()))
    } else {
        Err(failure(status, body, retry_after))
    }
}

/// A failed answer as an [`ApiError`].
fn failure(status: StatusCode, body: &[u8], retry_after: Option<u64>) -> ApiError {
    if status == StatusCode::UNAUTHORIZED {
        ApiError::Unauthorized
    } else {
        ApiError::Problem(problem_of(status, body, retry_after))
    }
}

/// What a problem answer says (an unreadable body says nothing).
fn problem_of(status: StatusCode, body: &[u8], retry_after: Option<u64>) -> ApiProblem {
    let problem: Option<Problem> = serde_json::from_slice(body).ok();
    let (detail, errors) = problem.map_or((None, BTreeMap::new()), |problem| {
        (problem.detail, problem.errors.unwrap_or_default())
    });
    ApiProblem {
        status,
        detail,
        errors,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_keeps_its_detail_and_field_errors() {
        let body = br#"{"type":"/problems/validation","title":"Invalid","status":422,"detail":"invalid fields","errors":{"email":"is not an address"}}"#;
        let err = failure(StatusCode::UNPROCESSABLE_ENTITY, body, None);
        let ApiError::Problem(problem) = err else {
            panic!("a problem: {err:?}");
        };
        assert_eq!(problem.status, 422);
        assert_eq!(problem.detail.as_deref(), Some("invalid fields"));
        assert_eq!(problem.errors["email"], "is not an address");
    }

    #[test]
    fn a_401_is_an_expired_session_and_junk_is_no_detail() {
        assert!(matches!(
            failure(StatusCode::UNAUTHORIZED, b"", None),
            ApiError::Unauthorized
        ));
        let ApiError::Problem(problem) = failure(StatusCode::NOT_FOUND, b"<html>", None) else {
            panic!("a problem");
        };
        assert!(problem.detail.is_none() && problem.errors.is_empty());
    }
}
