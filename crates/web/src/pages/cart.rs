//! The cart and its forms.

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use shop_api::ProductId;

use super::AppState;
use super::extract::{Fields, Param};
use super::redirect::see_other_with;
use crate::api::ApiError;
use crate::error::{Error, Result};
use crate::session::SignedIn;
use crate::views::{CartPage, Layout, LinesView, Notice, render};

pub(super) async fn show_cart(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
) -> Result<Response> {
    let cart = state.api.cart(&visitor.caller).await?;
    Ok(render(&CartPage {
        layout: Layout::new("Your cart", true, &visitor.csrf, visitor.notice),
        cart: LinesView::from(&cart),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct AddFields {
    #[serde(default)]
    product_id: String,
    quantity: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct QuantityFields {
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
pub(super) async fn add_cart_item(
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

pub(super) async fn set_cart_item(
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

pub(super) async fn remove_cart_item(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Param(product): Param<ProductId>,
) -> Result<Response> {
    let outcome = state.api.remove_item(&visitor.caller, product).await;
    after_cart_change(outcome, Notice::Removed, visitor.secure)
}

#[cfg(test)]
mod tests {
    use super::*;

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
