//! The catalog client: product names and prices, read through discovery
//! (balancing, deadlines, retries and the breaker are the upstream client's).

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use shop_discovery::{CallError, RequestBody, UpstreamClient};

use crate::domain::{CatalogProduct, ProductId};

/// The catalog's batch lookup takes at most this many ids per request.
const BATCH: usize = 100;
/// Largest catalog response read; 100 products are far below it.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Why the catalog could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The call failed: no instance, timeout, breaker open, connection error.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The catalog answered with an unexpected status or body.
    #[error("unexpected catalog response: {0}")]
    Response(String),
}

#[derive(serde::Deserialize)]
struct Page {
    items: Vec<CatalogProduct>,
}

/// Reads products from the catalog service.
#[derive(Clone, Debug)]
pub struct CatalogClient {
    upstream: UpstreamClient,
}

impl CatalogClient {
    /// A client over an upstream client for the `catalog` service.
    pub fn new(upstream: UpstreamClient) -> Self {
        Self { upstream }
    }

    /// The products among `ids` that the catalog knows, by id.
    ///
    /// # Errors
    /// [`CatalogError`] when the catalog cannot be reached or answers badly.
    pub async fn products(
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
            let body = read_body(response.into_body()).await?;
            if status != StatusCode::OK {
                return Err(CatalogError::Response(format!("status {status}")));
            }
            let page: Page = serde_json::from_slice(&body)
                .map_err(|err| CatalogError::Response(err.to_string()))?;
            found.extend(page.items.into_iter().map(|product| (product.id, product)));
        }
        Ok(found)
    }

    /// One product, or `None` when the catalog does not know it.
    ///
    /// # Errors
    /// As [`CatalogClient::products`].
    pub async fn product(&self, id: ProductId) -> Result<Option<CatalogProduct>, CatalogError> {
        Ok(self.products(&[id]).await?.remove(&id))
    }
}

async fn read_body<B>(body: B) -> Result<Bytes, CatalogError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|err| CatalogError::Response(format!("reading the body: {err}")))
}
