//! The catalog client: product names and prices, read through discovery
//! (balancing, deadlines, retries and the breaker are the upstream client's)
//! and kept for a short while (see [`CatalogCacheSettings`]).
//!
//! With the cache on, concurrent lookups of a product that is not kept
//! share one read: when its entry expires under load, the catalog is asked
//! once, not once per waiting request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use shop_api::catalog::ProductPage;
use shop_discovery::{CallError, RequestBody, ResponseBody, UpstreamClient};

use crate::config::CatalogCacheSettings;
use crate::domain::{CatalogProduct, ProductId};

/// The catalog's batch lookup takes at most this many ids per request.
const BATCH: usize = 100;
/// Largest catalog response read; 100 products are far below it.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Why the catalog could not answer. Cheap to clone: one failed read
/// answers every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// The call failed: no instance, timeout, breaker open, connection error.
    #[error(transparent)]
    Call(Arc<CallError>),
    /// The catalog answered with an unexpected status or body.
    #[error("unexpected catalog response: {0}")]
    Response(String),
}

impl From<CallError> for CatalogError {
    fn from(err: CallError) -> Self {
        Self::Call(Arc::new(err))
    }
}

/// Why a product's lookup brought nothing to keep.
#[derive(Debug)]
enum NotKept {
    /// The catalog does not know the product (never kept).
    Unknown,
    /// The catalog could not be read.
    Failed(CatalogError),
}

/// Products looked up in cart's catalog cache, by `result`: `hit` (kept
/// from an earlier read) or `miss` (not kept: read from the catalog by this
/// request or by another it waited on). Absent when the
/// cache is off.
pub const CATALOG_CACHE_LOOKUPS: &str = "cart_catalog_cache_lookups_total";

/// Reads products from the catalog service.
#[derive(Clone, Debug)]
pub struct CatalogClient {
    upstream: UpstreamClient,
    /// Products read recently; `None` when the cache is off.
    cache: Option<ProductCache>,
}

/// The products kept, and the counters of their lookups.
#[derive(Clone)]
struct ProductCache {
    products: moka::future::Cache<ProductId, CatalogProduct>,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl std::fmt::Debug for ProductCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductCache")
            .field("products", &self.products)
            .finish_non_exhaustive()
    }
}

impl CatalogClient {
    /// A client over an upstream client for the `catalog` service, keeping
    /// products as `cache` says.
    pub fn new(upstream: UpstreamClient, cache: &CatalogCacheSettings) -> Self {
        let cache = (cache.ttl_ms > 0).then(|| {
            // Handles taken before the recorder exists would record nothing.
            shop_common::metrics::handle();
            ProductCache {
                products: moka::future::Cache::builder()
                    .max_capacity(cache.capacity)
                    .time_to_live(Duration::from_millis(cache.ttl_ms))
                    .build(),
                hits: metrics::counter!(CATALOG_CACHE_LOOKUPS, "result" => "hit"),
                misses: metrics::counter!(CATALOG_CACHE_LOOKUPS, "result" => "miss"),
            }
        });
        Self { upstream, cache }
    }

    /// The products among `ids` that the catalog knows, by id: those read
    /// within the cache's time to live from the cache, the rest from the
    /// catalog in one request per 100 ids.
    ///
    /// A product another request is already reading is not asked for again:
    /// this one waits for that read (and shares its failure, if it fails).
    ///
    /// # Errors
    /// [`CatalogError`] when the catalog cannot be reached or answers badly.
    pub async fn products(
        &self,
        ids: &[ProductId],
    ) -> Result<HashMap<ProductId, CatalogProduct>, CatalogError> {
        let Some(cache) = &self.cache else {
            return self.fetch(ids).await;
        };
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::with_capacity(ids.len());
        for id in ids {
            match cache.products.get(id).await {
                Some(product) => {
                    found.insert(*id, product);
                }
                None => missing.push(*id),
            }
        }
        cache.hits.increment(found.len() as u64);
        cache.misses.increment(missing.len() as u64);
        // This call reads all its missing products at most once, on the
        // first of them whose read no other request has started; the
        // products read for that one are there for the others.
        let read = tokio::sync::OnceCell::new();
        for &id in &missing {
            let lookup = cache.products.try_get_with(id, async {
                let products = read
                    .get_or_init(|| self.fetch(&missing))
                    .await
                    .as_ref()
                    .map_err(|err| NotKept::Failed(err.clone()))?;
                products.get(&id).cloned().ok_or(NotKept::Unknown)
            });
            match lookup.await {
                Ok(product) => {
                    found.insert(id, product);
                }
                Err(not_kept) => match &*not_kept {
                    NotKept::Unknown => {}
                    NotKept::Failed(err) => return Err(err.clone()),
                },
            }
        }
        Ok(found)
    }

    /// Reads `ids` from the catalog, 100 per request; unknown ids are absent.
    async fn fetch(
        &self,
        ids: &[ProductId],
    ) -> Result<HashMap<ProductId, CatalogProduct>, CatalogError> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let list = chunk
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let request = Request::get(format!("/api/products?ids={list}"))
                .header(http::header::ACCEPT, "application/json")
                .body(RequestBody::empty())
                .map_err(|err| CatalogError::Response(err.to_string()))?;
            let response = self.upstream.send(request).await?;
            let status = response.status();
            let body = read_body(response).await?;
            if status != StatusCode::OK {
                return Err(CatalogError::Response(format!("status {status}")));
            }
            let page: ProductPage = serde_json::from_slice(&body)
                .map_err(|err| CatalogError::Response(err.to_string()))?;
            found.extend(page.items.into_iter().map(|product| (product.id, product)));
        }
        Ok(found)
    }
}

/// The whole body of an answer, bounded in size (and by the call's deadline).
async fn read_body(response: http::Response<ResponseBody>) -> Result<Bytes, CatalogError> {
    response
        .into_body()
        .bytes(MAX_RESPONSE)
        .await
        .map_err(|err| CatalogError::Response(format!("reading the body: {err}")))
}
