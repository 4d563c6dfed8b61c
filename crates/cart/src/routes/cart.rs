//! `GET /api/cart`, `PUT /api/cart/items/{product_id}`,
//! `DELETE /api/cart/items/{product_id}`, `DELETE /api/cart`.
//! The caller's token names the cart; no route takes a user id.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use shop_api::UserId;
use shop_api::cart::SetQuantity;
use shop_common::auth::AuthUser;
use shop_common::error::{FieldErrors, field};
use shop_common::extract::{self, Path};

use super::AppState;
use crate::domain::{self, Cart, CatalogProduct, ProductId, Quantity};
use crate::store::StoredCart;
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/cart", get(get_cart).delete(delete_cart))
        .route(
            "/api/cart/items/{product_id}",
            put(put_cart_item).delete(delete_cart_item),
        )
}

async fn get_cart(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Cart>> {
    priced_cart(&state, caller.user_id).await.map(Json)
}

async fn put_cart_item(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(product_id): Path<ProductId>,
    extract::Json(body): extract::Json<SetQuantity>,
) -> Result<Json<Cart>> {
    let mut errors = FieldErrors::new();
    let required = body.quantity.ok_or_else(|| "is required".to_owned());
    let quantity = field(&mut errors, "quantity", required.and_then(Quantity::parse))
        .ok_or(Error::Validation(errors))?;
    // One catalog call both proves the product exists and prices the lines
    // already in the cart; only a line another request added meanwhile
    // needs a second one.
    let stored = state.store.get(caller.user_id).await?;
    let mut ids: Vec<ProductId> = stored.lines.iter().map(|(id, _)| *id).collect();
    if !ids.contains(&product_id) {
        ids.push(product_id);
    }
    let products = state.catalog.products(&ids).await?;
    if !products.contains_key(&product_id) {
        return Err(Error::UnknownProduct(product_id));
    }
    let updated = state
        .store
        .set_quantity(caller.user_id, product_id, quantity, &stored)
        .await?;
    price(&state, &updated, products).await.map(Json)
}

async fn delete_cart_item(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(product_id): Path<ProductId>,
) -> Result<StatusCode> {
    state.store.remove_item(caller.user_id, product_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_cart(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode> {
    state.store.clear(caller.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stored cart, priced by the catalog now: never a stored or client price.
async fn priced_cart(state: &AppState, user: UserId) -> Result<Cart> {
    let stored = state.store.get(user).await?;
    price(state, &stored, HashMap::new()).await
}

/// Prices `stored` with `known` products, asking the catalog (one batch
/// call) only for the lines `known` lacks.
async fn price(
    state: &AppState,
    stored: &StoredCart,
    mut known: HashMap<ProductId, CatalogProduct>,
) -> Result<Cart> {
    let unknown: Vec<ProductId> = stored
        .lines
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !known.contains_key(id))
        .collect();
    if !unknown.is_empty() {
        known.extend(state.catalog.products(&unknown).await?);
    }
    Ok(domain::price(
        &stored.lines,
        &known,
        stored.version,
        &state.currency,
    )?)
}
