//! The order history, an order's page and cancelling.

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use shop_api::OrderId;

use super::AppState;
use super::extract::{PageQuery, Param, Params, is_cursor_shaped};
use super::redirect::see_other_with;
use crate::api::ApiError;
use crate::error::Result;
use crate::session::SignedIn;
use crate::views::{Layout, Notice, OrderPage, OrderSummary, OrderView, OrdersPage, render};

pub(super) async fn list_orders(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Params(query): Params<PageQuery>,
) -> Result<Response> {
    let cursor = query.cursor()?;
    let page = state.api.orders(&visitor.caller, cursor).await?;
    let next = page
        .next_cursor
        .as_deref()
        .filter(|cursor| is_cursor_shaped(cursor))
        .map(|cursor| format!("/orders?cursor={cursor}"));
    Ok(render(&OrdersPage {
        layout: Layout::new("Your orders", true, &visitor.csrf, visitor.notice),
        orders: page.items.iter().map(OrderSummary::from).collect(),
        next,
        later: cursor.is_some(),
    }))
}

pub(super) async fn show_order(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Param(id): Param<OrderId>,
) -> Result<Response> {
    let order = OrderView::from(&state.api.order(&visitor.caller, id).await?);
    let mut layout = Layout::new(
        format!("Order {}", order.summary.short_id),
        true,
        &visitor.csrf,
        visitor.notice,
    );
    layout.refresh = order.in_progress;
    Ok(render(&OrderPage { layout, order }))
}

pub(super) async fn cancel_order(
    State(state): State<AppState>,
    SignedIn(visitor): SignedIn,
    Param(id): Param<OrderId>,
) -> Result<Response> {
    let location = format!("/orders/{id}");
    match state.api.cancel_order(&visitor.caller, id).await {
        Ok(_) => Ok(see_other_with(&location, Notice::Cancelled, visitor.secure)),
        Err(ApiError::Problem(problem)) if problem.status == StatusCode::CONFLICT => Ok(
            see_other_with(&location, Notice::NotCancellable, visitor.secure),
        ),
        Err(other) => Err(other.into()),
    }
}
