//! `POST /internal/carts/{user_id}/order-removals`: orders takes the lines of
//! a placed order out of the buyer's cart. Idempotent by order id; lines the
//! shopper set after the order's snapshot (`cart_version`) are left alone.

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
    /// The cart's version in the snapshot the order was made from. Absent
    /// in removals recorded before orders sent it: every line is taken out.
    cart_version: Option<i64>,
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
    /// Ordered products left in the cart because their lines were set after
    /// `cart_version`; empty on a repeat.
    skipped: Vec<ProductId>,
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
    let snapshot = body.cart_version.and_then(|version| {
        let version = match version {
            0.. => Ok(version),
            _ => Err("must be at least 0".to_owned()),
        };
        field(&mut errors, "cart_version", version)
    });
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let removal = state
        .store
        .remove_order_lines(user_id, body.order_id, &lines, snapshot)
        .await?;
    tracing::info!(
        order_id = %body.order_id,
        %user_id,
        applied = removal.applied,
        "order lines removed from cart"
    );
    if !removal.skipped.is_empty() {
        let skipped: Vec<String> = removal.skipped.iter().map(ToString::to_string).collect();
        tracing::info!(
            order_id = %body.order_id,
            %user_id,
            cart_version = snapshot,
            skipped = skipped.join(","),
            "ordered lines left in the cart: the shopper set them after the order's snapshot"
        );
    }
    Ok(Json(Removed {
        applied: removal.applied,
        version: removal.version,
        skipped: removal.skipped,
    }))
}
