//! The routes orders calls during checkout, behind the service credential
//! (see [`shop_api::stock`] for the contract):
//!
//! - `PUT /internal/reservations/{order_id}`: reserve an order's lines,
//!   all or none, idempotently by order id;
//! - `POST /internal/reservations/{order_id}/release`: give them back;
//! - `PUT /internal/products/{product_id}/stock`: set a product's stock.

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use shop_api::stock::{Reservation, SetStock};
use shop_common::error::{FieldErrors, field};
use shop_common::extract::{self, Path};

use super::AppState;
use crate::domain::{
    OrderId, Product, ProductId, ReservationLines, ReservationOutcome, ReservationState, Stock,
};
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/reservations/{order_id}", put(put_reservation))
        .route(
            "/internal/reservations/{order_id}/release",
            post(release_reservation),
        )
        .route("/internal/products/{product_id}/stock", put(put_stock))
}

async fn put_reservation(
    State(state): State<AppState>,
    Path(order_id): Path<OrderId>,
    extract::Json(body): extract::Json<Reservation>,
) -> Result<Json<ReservationOutcome>> {
    let lines = ReservationLines::parse(&body).map_err(Error::Validation)?;
    let (outcome, recorded) = state.stock.reserve(order_id, &lines).await?;
    let rejected = outcome.state == ReservationState::Rejected;
    state.metrics.reservation(recorded, rejected);
    tracing::info!(
        %order_id,
        state = ?outcome.state,
        repeat = !recorded,
        out_of_stock = outcome.out_of_stock.len(),
        "stock reservation"
    );
    Ok(Json(outcome))
}

async fn release_reservation(
    State(state): State<AppState>,
    Path(order_id): Path<OrderId>,
) -> Result<Json<ReservationOutcome>> {
    let (outcome, effect) = state.stock.release(order_id).await?;
    state.metrics.release(effect);
    tracing::info!(%order_id, effect = effect.label(), "stock reservation released");
    Ok(Json(outcome))
}

async fn put_stock(
    State(state): State<AppState>,
    Path(product_id): Path<ProductId>,
    extract::Json(body): extract::Json<SetStock>,
) -> Result<Json<Product>> {
    let mut errors = FieldErrors::new();
    let Some(stock) = field(&mut errors, "stock", Stock::parse(body.stock)) else {
        return Err(Error::Validation(errors));
    };
    let product = state
        .stock
        .set_stock(product_id, stock)
        .await?
        .ok_or(Error::ProductNotFound)?;
    tracing::info!(%product_id, stock = stock.get(), "stock set");
    Ok(Json(product))
}
