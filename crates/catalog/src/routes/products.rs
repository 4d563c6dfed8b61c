//! `GET /api/products` (a page of the list, or a batch lookup by ids) and
//! `GET /api/products/{id}`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shop_common::extract::{Path, Query};

use super::AppState;
use crate::domain::{Cursor, PageLimit, Product, ProductId, ProductIds, ProductPage};
use crate::{Error, Result};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/products", get(list_products))
        .route("/api/products/{id}", get(get_product))
}

/// The raw query of `GET /api/products`. Values stay text here so that a bad
/// one is reported per parameter (422) like any other invalid value; an
/// unknown parameter is a 400, so a misspelt `ids` cannot silently return
/// the first page instead.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    ids: Option<String>,
}

/// What a `GET /api/products` asks for, every value parsed.
enum ProductQuery {
    /// One page of the list.
    Page {
        limit: PageLimit,
        after: Option<Cursor>,
    },
    /// The products with these ids.
    Ids(ProductIds),
}

impl ListQuery {
    fn parse(self) -> Result<ProductQuery> {
        let mut errors = BTreeMap::new();
        let limit = field(
            &mut errors,
            "limit",
            self.limit.as_deref().map(PageLimit::parse).transpose(),
        );
        let after = field(
            &mut errors,
            "cursor",
            self.cursor.as_deref().map(Cursor::parse).transpose(),
        );
        let query = match self.ids {
            Some(raw) => {
                // A batch is not paged: a limit or cursor next to ids is a
                // client bug, not something to ignore.
                for (name, given) in [
                    ("limit", self.limit.is_some()),
                    ("cursor", self.cursor.is_some()),
                ] {
                    if given {
                        errors.insert(name.to_owned(), "cannot be combined with ids".to_owned());
                    }
                }
                field(&mut errors, "ids", ProductIds::parse(&raw)).map(ProductQuery::Ids)
            }
            None => limit.zip(after).map(|(limit, after)| ProductQuery::Page {
                limit: limit.unwrap_or_default(),
                after,
            }),
        };
        match query {
            Some(query) if errors.is_empty() => Ok(query),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// The parsed value, or `None` with the message recorded under `name`.
fn field<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    result: std::result::Result<T, String>,
) -> Option<T> {
    result
        .map_err(|message| errors.insert(name.to_owned(), message))
        .ok()
}

async fn list_products(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ProductPage>> {
    let page = match query.parse()? {
        ProductQuery::Page { limit, after } => state.store.list(limit, after).await?,
        ProductQuery::Ids(ids) => ProductPage {
            items: state.store.find_by_ids(&ids).await?,
            next_cursor: None,
        },
    };
    Ok(Json(page))
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
