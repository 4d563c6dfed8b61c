//! `POST /internal/carts/{user_id}/order-removals`: orders takes the lines of
//! a placed order out of the buyer's cart. Idempotent by order id.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shop_api::{OrderId, UserId};
use shop_common::error::{FieldErrors, field};
use shop_common::extract::{self, Path};

use super::AppState;
use crate::domain::{ProductId, Quantity};
use crate::store::OrderedLine;
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new().route(
        "/internal/carts/{user_id}/order-removals",
        post(create_order_removal),
    )
}

#[derive(Debug, Deserialize)]
struct OrderRemoval {
    order_id: OrderId,
    lines: Vec<RemovalLine>,
}

#[derive(Debug, Deserialize)]
struct RemovalLine {
    product_id: ProductId,
    quantity: i64,
}

#[derive(Debug, Serialize)]
struct Removed {
    /// `false` when this order's lines had been removed before (a repeat).
    applied: bool,
    version: i64,
}

async fn create_order_removal(
    State(state): State<AppState>,
    Path(user_id): Path<UserId>,
    extract::Json(body): extract::Json<OrderRemoval>,
) -> Result<Json<Removed>> {
    let mut errors = FieldErrors::new();
    let lines: Vec<OrderedLine> = body
        .lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let quantity = Quantity::parse(line.quantity);
            field(&mut errors, &format!("lines[{i}].quantity"), quantity).map(|quantity| {
                OrderedLine {
                    product_id: line.product_id,
                    quantity,
                }
            })
        })
        .collect();
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let (applied, version) = state
        .store
        .remove_order_lines(user_id, body.order_id, &lines)
        .await?;
    tracing::info!(order_id = %body.order_id, %user_id, applied, "order lines removed from cart");
    Ok(Json(Removed { applied, version }))
}
