//! `/api/orders*`: a REST facade over the orders gRPC API. Each handler
//! turns the HTTP request into one gRPC call — the caller's bearer token,
//! `x-request-id` and `traceparent` in its metadata, the request's deadline
//! in its extensions — and the answer into JSON, or problem+json by the
//! gRPC status.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use shop_api::OrderId;
use shop_api::orders::{
    MAX_LIMIT, Order, OrderLine, OrderPage, OrderQuery, OrderStatus, PlaceOrder, Rejection,
    RejectionReason,
};
use shop_common::auth::unauthorized;
use shop_common::error::Problem;
use shop_common::extract::{self, Path, Query};
use shop_discovery::error::UPSTREAM_PROBLEM_TYPE;
use shop_discovery::{CallError, Deadline, Idempotent};
use shop_proto::orders::v1 as pb;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use crate::middleware::trace_context::TRACEPARENT;
use crate::state::AppState;

/// The header carrying the client's idempotency key of `POST /api/orders`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// What a facade call carries from the HTTP request into gRPC: the
/// headers to pass on (reference-counted copies) and the deadline.
pub struct CallContext {
    authorization: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    traceparent: Option<HeaderValue>,
    deadline: Option<Deadline>,
}

impl<S: Send + Sync> FromRequestParts<S> for CallContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
            request_id: parts.headers.get("x-request-id").cloned(),
            traceparent: parts.headers.get(TRACEPARENT).cloned(),
            deadline: parts.extensions.get::<Deadline>().copied(),
        })
    }
}

impl CallContext {
    /// A gRPC request for `message` on behalf of this HTTP request.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        pass_on(metadata, "authorization", self.authorization.as_ref());
        pass_on(metadata, "x-request-id", self.request_id.as_ref());
        pass_on(metadata, "traceparent", self.traceparent.as_ref());
        if let Some(deadline) = self.deadline {
            request.extensions_mut().insert(deadline);
        }
        request
    }
}

fn pass_on(metadata: &mut MetadataMap, key: &'static str, value: Option<&HeaderValue>) {
    if let Some(value) = value
        && let Ok(value) = AsciiMetadataValue::try_from(value.as_bytes())
    {
        metadata.insert(key, value);
    }
}

/// Place an order from the caller's cart, paid with the body's payment
/// token; the `Idempotency-Key` header is required. A new order answers 201
/// once settled (confirmed or rejected) and 202 while still pending; a
/// repeat with the same key answers the first order as it stands now (200,
/// or 202 while pending). 201 and 202 carry the order's `Location`.
pub async fn place_order(
    State(state): State<AppState>,
    call: CallContext,
    key: IdempotencyKey,
    extract::Json(body): extract::Json<PlaceOrder>,
) -> Response {
    let Some(payment_token) = body.payment_token else {
        return invalid("payment_token", "is required".to_owned());
    };
    if !shop_api::payments::is_token_shaped(&payment_token) {
        return invalid("payment_token", shop_api::payments::NOT_A_TOKEN.to_owned());
    }
    let mut request = call.request(pb::PlaceOrderRequest {
        idempotency_key: key.0,
        payment_token,
    });
    // Same key, same order: safe to retry on another instance.
    request.extensions_mut().insert(Idempotent);
    let answer = match state.orders.clone().place_order(request).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return status_problem(&status).into_response(),
    };
    let Some(order) = answer.order.and_then(|order| order_from_pb(order).ok()) else {
        return bad_answer("PlaceOrder returned no valid order").into_response();
    };
    let status = match (order.status.is_settled(), answer.created) {
        (false, _) => StatusCode::ACCEPTED,
        (true, true) => StatusCode::CREATED,
        (true, false) => StatusCode::OK,
    };
    let location = (status != StatusCode::OK)
        .then(|| HeaderValue::try_from(format!("/api/orders/{}", order.id)).ok())
        .flatten();
    let mut response = (status, Json(order)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The caller's orders, newest first.
pub async fn list_orders(
    State(state): State<AppState>,
    call: CallContext,
    Query(query): Query<OrderQuery>,
) -> Response {
    let page_size = match query.limit.as_deref().map(str::parse::<i32>) {
        None => 0,
        Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
        Some(_) => {
            return invalid("limit", format!("must be a number from 1 to {MAX_LIMIT}"));
        }
    };
    // An empty token means "the first page" to orders; from a client it is
    // not a cursor any page returned.
    if query.cursor.as_deref() == Some("") {
        return invalid("cursor", "is not a cursor from a previous page".to_owned());
    }
    let mut request = call.request(pb::ListOrdersRequest {
        page_size,
        page_token: query.cursor.unwrap_or_default(),
    });
    request.extensions_mut().insert(Idempotent);
    let answer = match state.orders.clone().list_orders(request).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return status_problem(&status).into_response(),
    };
    let items: Result<Vec<Order>, _> = answer.orders.into_iter().map(order_from_pb).collect();
    let Ok(items) = items else {
        return bad_answer("ListOrders returned an invalid order").into_response();
    };
    let next_cursor = Some(answer.next_page_token).filter(|token| !token.is_empty());
    Json(OrderPage { items, next_cursor }).into_response()
}

/// 422 naming the one invalid query parameter.
fn invalid(name: &str, message: String) -> Response {
    Problem::validation([(name.to_owned(), message)].into()).into_response()
}

/// One of the caller's orders; another user's order is 404.
pub async fn get_order(
    State(state): State<AppState>,
    call: CallContext,
    Path(id): Path<OrderId>,
) -> Response {
    let mut request = call.request(pb::GetOrderRequest {
        order_id: id.to_string(),
    });
    request.extensions_mut().insert(Idempotent);
    order_response(state.orders.clone().get_order(request).await)
}

/// Cancel one of the caller's placed orders.
pub async fn cancel_order(
    State(state): State<AppState>,
    call: CallContext,
    Path(id): Path<OrderId>,
) -> Response {
    let request = call.request(pb::CancelOrderRequest {
        order_id: id.to_string(),
    });
    order_response(state.orders.clone().cancel_order(request).await)
}

fn order_response(answer: Result<tonic::Response<pb::Order>, tonic::Status>) -> Response {
    match answer {
        Ok(order) => match order_from_pb(order.into_inner()) {
            Ok(order) => Json(order).into_response(),
            Err(reason) => bad_answer(reason).into_response(),
        },
        Err(status) => status_problem(&status).into_response(),
    }
}

/// The `Idempotency-Key` header; missing is 400, not printable ASCII 422.
pub struct IdempotencyKey(String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let value = parts.headers.get(IDEMPOTENCY_KEY).ok_or_else(|| {
            Problem::with_detail(
                StatusCode::BAD_REQUEST,
                "the Idempotency-Key header is required: a value unique to this order, \
                 sent again unchanged when retrying",
            )
        })?;
        value.to_str().map(|key| Self(key.to_owned())).map_err(|_| {
            Problem::validation(
                [(
                    "Idempotency-Key".to_owned(),
                    "must be 1–128 printable ASCII characters".to_owned(),
                )]
                .into(),
            )
        })
    }
}

/// The API's order from the gRPC one; an answer that does not fit the API
/// (no valid status, an id that is not a UUID, no timestamps) is an error.
fn order_from_pb(order: pb::Order) -> Result<Order, &'static str> {
    let status = match pb::OrderStatus::try_from(order.status) {
        Ok(pb::OrderStatus::Pending) => OrderStatus::Pending,
        Ok(pb::OrderStatus::Confirmed) => OrderStatus::Confirmed,
        Ok(pb::OrderStatus::Rejected) => OrderStatus::Rejected,
        Ok(pb::OrderStatus::Cancelling) => OrderStatus::Cancelling,
        Ok(pb::OrderStatus::Cancelled) => OrderStatus::Cancelled,
        Ok(pb::OrderStatus::Unspecified) | Err(_) => {
            return Err("an order without a valid status");
        }
    };
    let rejection = match order.rejection {
        None => None,
        Some(rejection) => Some(Rejection {
            reason: RejectionReason::from_word(&rejection.reason)
                .ok_or("a rejection with an unknown reason")?,
            out_of_stock: rejection
                .out_of_stock
                .iter()
                .map(|id| uuid(id, "a rejection with a malformed product id"))
                .collect::<Result<_, _>>()?,
            decline_reason: Some(rejection.decline_reason).filter(|reason| !reason.is_empty()),
        }),
    };
    let lines = order
        .lines
        .into_iter()
        .map(|line| {
            Ok(OrderLine {
                product_id: uuid(&line.product_id, "a line with a malformed product id")?,
                name: line.name,
                unit_price_cents: line.unit_price_cents,
                quantity: line.quantity,
                line_total_cents: line.line_total_cents,
            })
        })
        .collect::<Result<_, &'static str>>()?;
    Ok(Order {
        id: uuid(&order.id, "an order with a malformed id")?,
        user_id: uuid(&order.user_id, "an order with a malformed user id")?,
        status,
        rejection,
        lines,
        total_cents: order.total_cents,
        currency: order.currency,
        created_at: rfc3339(order.created_at.as_ref()).ok_or("an order without created_at")?,
        updated_at: rfc3339(order.updated_at.as_ref()).ok_or("an order without updated_at")?,
    })
}

/// One of the id types, from its text in a gRPC answer.
fn uuid<T: std::str::FromStr>(text: &str, problem: &'static str) -> Result<T, &'static str> {
    text.parse().map_err(|_| problem)
}

fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> Option<String> {
    let timestamp = timestamp?;
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    let at: DateTime<Utc> = DateTime::from_timestamp(timestamp.seconds, nanos)?;
    Some(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// 502 for an answer that does not fit the API; the reason goes to the log.
fn bad_answer(reason: &str) -> Problem {
    tracing::warn!(upstream = "orders", reason, "unexpected answer");
    Problem::with_detail(
        StatusCode::BAD_GATEWAY,
        "a service needed for this request failed",
    )
    .kind(UPSTREAM_PROBLEM_TYPE, "Bad gateway")
}

/// The HTTP answer to a failed gRPC call.
///
/// Client errors pass the orders service's message on (it is written for
/// clients); anything else gets a generic text, the status goes to the log.
/// A call that never got an answer maps like any upstream call failure
/// (`Problem::from(CallError)`): no instance, breaker open or no instance
/// reachable is 503 with `Retry-After`, so with every orders replica down
/// these routes say "unavailable, try again" while the rest of the API
/// works; time running out is 504; a connection that broke mid-answer 502.
pub fn status_problem(status: &tonic::Status) -> Problem {
    if let Some(call) = call_error(status) {
        return Problem::from(call);
    }
    let message = status.message();
    match status.code() {
        tonic::Code::NotFound => Problem::with_detail(StatusCode::NOT_FOUND, message),
        tonic::Code::FailedPrecondition => Problem::with_detail(StatusCode::CONFLICT, message),
        tonic::Code::InvalidArgument => {
            Problem::with_detail(StatusCode::UNPROCESSABLE_ENTITY, message).kind(
                shop_common::error::VALIDATION_TYPE,
                "Your request parameters didn't validate",
            )
        }
        tonic::Code::Unauthenticated => unauthorized("invalid or expired token"),
        tonic::Code::Unavailable => {
            tracing::warn!(upstream = "orders", %message, "orders unavailable");
            unavailable().retry_after(1)
        }
        tonic::Code::DeadlineExceeded => Problem::with_detail(
            StatusCode::GATEWAY_TIMEOUT,
            "a service needed for this request did not answer in time",
        )
        .kind(UPSTREAM_PROBLEM_TYPE, "Upstream timeout"),
        code => {
            tracing::warn!(upstream = "orders", ?code, %message, "orders call failed");
            Problem::with_detail(
                StatusCode::BAD_GATEWAY,
                "a service needed for this request failed",
            )
            .kind(UPSTREAM_PROBLEM_TYPE, "Bad gateway")
        }
    }
}

fn unavailable() -> Problem {
    Problem::with_detail(
        StatusCode::SERVICE_UNAVAILABLE,
        "a service needed for this request is unavailable; try again later",
    )
    .kind(UPSTREAM_PROBLEM_TYPE, "Service unavailable")
}

fn call_error(status: &tonic::Status) -> Option<&CallError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(call) = err.downcast_ref::<CallError>() {
            return Some(call);
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http_statuses() {
        for (code, status) in [
            (tonic::Code::NotFound, 404),
            (tonic::Code::FailedPrecondition, 409),
            (tonic::Code::InvalidArgument, 422),
            (tonic::Code::Unauthenticated, 401),
            (tonic::Code::Unavailable, 503),
            (tonic::Code::DeadlineExceeded, 504),
            (tonic::Code::Internal, 502),
            (tonic::Code::Unknown, 502),
            (tonic::Code::PermissionDenied, 502),
        ] {
            let problem = status_problem(&tonic::Status::new(code, "db at 10.0.0.1 exploded"));
            assert_eq!(problem.status, status, "{code:?}");
            if status >= 500 {
                assert!(!problem.to_string().contains("10.0.0.1"), "{problem}");
            }
        }
    }

    #[test]
    fn calls_that_reached_no_orders_instance_are_503_with_retry_after() {
        let upstream: std::sync::Arc<str> = "orders".into();
        let refused = CallError::Connect {
            upstream: upstream.clone(),
            address: "10.0.0.7:50051".into(),
            source: "connection refused".into(),
        };
        let unreachable = [
            refused,
            CallError::NoInstance {
                upstream: upstream.clone(),
            },
            CallError::BreakerOpen {
                upstream: upstream.clone(),
                retry_after: std::time::Duration::from_secs(3),
            },
        ];
        for call in unreachable {
            let what = format!("{call:?}");
            // How tonic hands a transport error back: Unknown, with the
            // transport's error as its source.
            let status = tonic::Status::from_error(Box::new(call));
            let problem = status_problem(&status);
            assert_eq!(problem.status, 503, "{what}");
            assert!(
                problem
                    .headers
                    .iter()
                    .any(|(name, _)| name == header::RETRY_AFTER),
                "{what}: Retry-After"
            );
            assert!(!problem.to_string().contains("10.0.0.7"), "{problem}");
        }
        let broken = CallError::Protocol {
            upstream,
            address: "10.0.0.7:50051".into(),
            source: "connection reset".into(),
        };
        let problem = status_problem(&tonic::Status::from_error(Box::new(broken)));
        assert_eq!(problem.status, 502, "it may have reached orders");
    }

    #[test]
    fn orders_convert_with_rfc3339_times() {
        let order = pb::Order {
            id: "0190c9f0-0000-7000-8000-000000000001".to_owned(),
            user_id: "0190c9f0-0000-7000-8000-0000000000aa".to_owned(),
            status: pb::OrderStatus::Cancelled as i32,
            rejection: None,
            lines: vec![pb::OrderLine {
                product_id: "0190c9f0-0000-7000-8000-0000000000bb".to_owned(),
                name: "Mug".to_owned(),
                unit_price_cents: 450,
                quantity: 2,
                line_total_cents: 900,
            }],
            total_cents: 900,
            currency: "EUR".to_owned(),
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            updated_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_001,
                nanos: 500_000_000,
            }),
        };
        let json =
            serde_json::to_value(order_from_pb(order.clone()).expect("valid")).expect("json");
        assert_eq!(json["status"], "cancelled");
        assert_eq!(json["created_at"], "2023-11-14T22:13:20Z");
        assert_eq!(json["updated_at"], "2023-11-14T22:13:21.500Z");
        assert_eq!(json["lines"][0]["line_total_cents"], 900);
        assert_eq!(json["user_id"], "0190c9f0-0000-7000-8000-0000000000aa");
        assert_eq!(
            json["lines"][0]["product_id"],
            "0190c9f0-0000-7000-8000-0000000000bb"
        );
        let unspecified = pb::Order::default();
        assert!(order_from_pb(unspecified).is_err());
        let malformed = pb::Order {
            user_id: "u".to_owned(),
            ..order
        };
        assert!(order_from_pb(malformed).is_err(), "ids are UUIDs");
    }
}
