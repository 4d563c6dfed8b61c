//! The storefront's static files, compiled into the binary: one style
//! sheet, one small script (progressive enhancement only) and the
//! favicon (products' pictures are drawn: [`crate::tile`]). Nothing is fetched from elsewhere.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use crate::error::Error;

/// How long browsers keep an asset: a day. The files change only with a
/// new release of the service.
pub const CACHE_CONTROL: &str = "public, max-age=86400";

/// Every asset: its file name, content type and bytes.
pub const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

/// `GET /assets/{file}`.
///
/// # Errors
/// [`Error::NotFound`] for any other file name.
pub async fn serve(Path(file): Path<String>) -> Result<Response, Error> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or(Error::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            ),
        ],
        *bytes,
    )
        .into_response())
}
