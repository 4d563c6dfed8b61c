//! `GET /api/openapi.json` (generated once, served from memory) and the
//! `/docs` page: Swagger UI whose files are compiled into the binary
//! (utoipa-swagger-ui's `vendored` feature: nothing is downloaded at build
//! time, and the page loads nothing from the internet).

use std::sync::LazyLock;

use axum::Router;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, header};
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::openapi::ApiDoc;

/// The document, serialised once.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(ApiDoc::openapi().to_json().unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot serialise the OpenAPI document");
        "{}".to_owned()
    }))
});

/// The OpenAPI document.
pub async fn get_openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.clone(),
    )
        .into_response()
}

/// The `/docs` page and its assets, reading the document from
/// `/api/openapi.json`.
pub fn swagger_ui<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = Config::from("/api/openapi.json")
        .validator_url("none")
        .try_it_out_enabled(true);
    Router::from(SwaggerUi::new(super::DOCS_PATH).config(config))
}
