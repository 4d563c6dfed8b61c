//! `GET /api/cart`, `PUT /api/cart/items/{product_id}`,
//! `DELETE /api/cart/items/{product_id}`, `DELETE /api/cart`.
//! The caller's token names the cart; no route takes a user id.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use shop_common::auth::AuthUser;
use shop_common::extract::{self, Path};
use uuid::Uuid;

use super::AppState;
use crate::domain::{Cart, ProductId, Quantity};
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/cart", get(get_cart).delete(delete_cart))
        .route(
            "/api/cart/items/{product_id}",
            put(put_cart_item).delete(delete_cart_item),
        )
}

/// The body of `PUT /api/cart/items/{id}`. Anything else the client sends
/// (a price, a name) is ignored: those come from the catalog.
#[derive(Debug, Deserialize)]
struct PutItem {
    quantity: Option<i64>,
}

async fn get_cart(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Cart>> {
    priced_cart(&state, caller.user_id).await.map(Json)
}

async fn put_cart_item(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(product_id): Path<Uuid>,
    extract::Json(body): extract::Json<PutItem>,
) -> Result<Json<Cart>> {
    let product_id = ProductId(product_id);
    let quantity = body
        .quantity
        .ok_or_else(|| "is required".to_owned())
        .and_then(Quantity::parse)
        .map_err(|message| Error::Validation(BTreeMap::from([("quantity".to_owned(), message)])))?;
    if state.catalog.product(product_id).await?.is_none() {
        return Err(Error::UnknownProduct(product_id));
    }
    state
        .store
        .set_quantity(caller.user_id, product_id, quantity)
        .await?;
    priced_cart(&state, caller.user_id).await.map(Json)
}

async fn delete_cart_item(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(product_id): Path<Uuid>,
) -> Result<StatusCode> {
    state
        .store
        .remove_item(caller.user_id, ProductId(product_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_cart(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode> {
    state.store.clear(caller.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stored cart, priced by the catalog now: never a stored or client price.
async fn priced_cart(state: &AppState, user: Uuid) -> Result<Cart> {
    let stored = state.store.get(user).await?;
    let ids: Vec<ProductId> = stored.lines.iter().map(|(id, _)| *id).collect();
    let products = if ids.is_empty() {
        Default::default()
    } else {
        state.catalog.products(&ids).await?
    };
    Ok(Cart::price(
        &stored.lines,
        &products,
        stored.version,
        &state.currency,
    )?)
}
