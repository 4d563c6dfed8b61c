//! The product list and a product's page.

use axum::extract::State;
use axum::response::Response;
use shop_api::ProductId;

use super::AppState;
use super::extract::{PageQuery, Param, Params, is_cursor_shaped};
use crate::error::Result;
use crate::session::Visitor;
use crate::views::{Layout, ProductPage, ProductView, ProductsPage, render};

pub(super) async fn list_products(
    State(state): State<AppState>,
    visitor: Visitor,
    Params(query): Params<PageQuery>,
) -> Result<Response> {
    let cursor = query.cursor()?;
    let page = state
        .api
        .products(&visitor.caller, state.settings.pages.page_size, cursor)
        .await?;
    let next = page
        .next_cursor
        .as_deref()
        .filter(|cursor| is_cursor_shaped(cursor))
        .map(|cursor| format!("/?cursor={cursor}"));
    Ok(render(&ProductsPage {
        layout: Layout::new(
            "Products",
            visitor.signed_in(),
            &visitor.csrf,
            visitor.notice,
        ),
        products: page.items.into_iter().map(ProductView::from).collect(),
        next,
        later: cursor.is_some(),
    }))
}

pub(super) async fn show_product(
    State(state): State<AppState>,
    visitor: Visitor,
    Param(id): Param<ProductId>,
) -> Result<Response> {
    let product = ProductView::from(state.api.product(&visitor.caller, id).await?);
    Ok(render(&ProductPage {
        layout: Layout::new(
            product.name.clone(),
            visitor.signed_in(),
            &visitor.csrf,
            visitor.notice,
        ),
        product,
    }))
}
