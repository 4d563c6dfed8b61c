//! The checkout page and placing the order.

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::extract::Fields;
use super::redirect::{see_other, see_other_with};
use crate::api::ApiError;
use crate::error::Result;
use crate::session::SignedIn;
use crate::views::{CheckoutPage, Layout, LinesView, Notice, payment_choices, render};

pub(super) async fn checkout_form(
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
pub(super) struct CheckoutFields {
    #[serde(default)]
    payment_token: String,
    #[serde(default)]
    idempotency_key: String,
}

pub(super) async fn place_order(
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
