//! `GET /api/products` (a page of the list, or a batch lookup by ids) and
//! `GET /api/products/{id}`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shop_api::catalog::ProductQuery;
use shop_common::error::{FieldErrors, field};
use shop_common::extract::{Path, Query};

use super::AppState;
use crate::domain::{Cursor, PageLimit, Product, ProductId, ProductIds, ProductPage};
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/products", get(list_products))
        .route("/api/products/{id}", get(get_product))
}

/// What a `GET /api/products` asks for, every value parsed.
enum Wanted {
    /// One page of the list.
    Page {
        limit: PageLimit,
        after: Option<Cursor>,
    },
    /// The products with these ids.
    Ids(ProductIds),
}

/// Parses every parameter of `query`, reporting each invalid one by name.
fn parse(query: ProductQuery) -> Result<Wanted> {
    let mut errors = FieldErrors::new();
    let limit = field(
        &mut errors,
        "limit",
        query.limit.as_deref().map(PageLimit::parse).transpose(),
    );
    let after = field(
        &mut errors,
        "cursor",
        query.cursor.as_deref().map(Cursor::parse).transpose(),
    );
    let wanted = match query.ids {
        Some(raw) => {
            // A batch is not paged: a limit or cursor next to ids is a
            // client bug, not something to ignore.
            for (name, given) in [
                ("limit", query.limit.is_some()),
                ("cursor", query.cursor.is_some()),
            ] {
                if given {
                    errors.insert(name.to_owned(), "cannot be combined with ids".to_owned());
                }
            }
            field(&mut errors, "ids", ProductIds::parse(&raw)).map(Wanted::Ids)
        }
        None => limit.zip(after).map(|(limit, after)| Wanted::Page {
            limit: limit.unwrap_or_default(),
            after,
        }),
    };
    match wanted {
        Some(wanted) if errors.is_empty() => Ok(wanted),
        _ => Err(Error::Validation(errors)),
    }
}

async fn list_products(
    State(state): State<AppState>,
    Query(query): Query<ProductQuery>,
) -> Result<Json<shop_api::catalog::ProductPage>> {
    let page = match parse(query)? {
        Wanted::Page { limit, after } => state.store.list(limit, after).await?,
        Wanted::Ids(ids) => ProductPage {
            items: state.store.find_by_ids(&ids).await?,
            next_cursor: None,
        },
    };
    Ok(Json(page.into()))
}

async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
) -> Result<Json<Product>> {
    state
        .store
        .find_by_id(id)
        .await?
        .map(Json)
        .ok_or(Error::ProductNotFound)
}
