//! `PUT /internal/payments/{order_id}` (authorize), `GET` of the same path,
//! and `POST …/capture`, `…/void`, `…/refund`. Each is idempotent by order
//! id and answers the order's [`Payment`].

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use shop_common::error::{FieldErrors, field};
use shop_common::extract::{self, Path};

use super::AppState;
use crate::domain::{Amount, Authorize, Currency, Operation, OrderId, Payment, PaymentToken};
use crate::ledger::Authorization;
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/internal/payments/{order_id}",
            put(put_payment).get(get_payment),
        )
        .route(
            "/internal/payments/{order_id}/capture",
            post(capture_payment),
        )
        .route("/internal/payments/{order_id}/void", post(void_payment))
        .route("/internal/payments/{order_id}/refund", post(refund_payment))
}

async fn put_payment(
    State(state): State<AppState>,
    Path(order_id): Path<OrderId>,
    extract::Json(body): extract::Json<Authorize>,
) -> Result<Json<Payment>> {
    let request = parse(&body)?;
    state.ledger.authorize(order_id, &request).await.map(Json)
}

async fn get_payment(
    State(state): State<AppState>,
    Path(order_id): Path<OrderId>,
) -> Result<Json<Payment>> {
    state.ledger.get(order_id).await.map(Json)
}

async fn capture_payment(
    State(state): State<AppState>,
    Path(order_id): Path<OrderId>,
) -> Result<Json<Payment>> {
    state
        .ledger
        .change(order_id, Operation::Capture)
        .await
        .map(Json)
}

async fn void_payment(
    State(state): State<AppState>,
    Path(order_id): Path<OrderId>,
) -> Result<Json<Payment>> {
    state
        .ledger
        .change(order_id, Operation::Void)
        .await
        .map(Json)
}

async fn refund_payment(
    State(state): State<AppState>,
    Path(order_id): Path<OrderId>,
) -> Result<Json<Payment>> {
    state
        .ledger
        .change(order_id, Operation::Refund)
        .await
        .map(Json)
}

/// Parses every field of `body`, reporting each invalid one by name.
fn parse(body: &Authorize) -> Result<Authorization> {
    let mut errors = FieldErrors::new();
    let amount = field(
        &mut errors,
        "amount_cents",
        Amount::parse(body.amount_cents),
    );
    let currency = field(&mut errors, "currency", Currency::parse(&body.currency));
    let token = field(
        &mut errors,
        "payment_token",
        PaymentToken::parse(&body.payment_token),
    );
    match (amount, currency, token) {
        (Some(amount), Some(currency), Some(token)) => Ok(Authorization {
            amount,
            currency,
            token,
        }),
        _ => Err(Error::Validation(errors)),
    }
}
