//! The gateway: ferroshop's single public entry point.
//!
//! It forwards `/api/users*`, `/api/sessions`, `/api/products*`,
//! `/api/cart*` and `/.well-known/jwks.json` unchanged to the owning
//! service through discovery (one balanced, pooled upstream client per
//! service), serves `/api/orders*` as a REST facade over the orders gRPC
//! API, verifies bearer tokens at the edge, enforces the edge limits, and
//! describes itself with an OpenAPI document and a docs page.
//!
//! It also serves the storefront: the pages and forms of
//! [`shop_api::web::ROUTES`] (`/`, `/products/{id}`, `/login`, `/cart`, …)
//! are forwarded unchanged to the `web` service, cookies and all, and a
//! browser's unknown page gets web's HTML 404. web renders them by calling
//! this gateway's API itself, with the service credential and the
//! browser's address, which the gateway believes for that request alone
//! (see [`headers`]): rate limits count the person, not the web instance.
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Settings`] and their defaults (port 8080, limits, balancing per upstream, the service credential) |
//! | [`app`] | the gateway on the shared lifecycle ([`shop_runtime`]); [`Application`] builds, registers and runs it |
//! | [`routes`] | the API's route table and the storefront's, the router built from them, the orders facade, the docs routes |
//! | [`forward`] | forwarding a request to an upstream, bodies streamed |
//! | [`grpc`] | the orders gRPC client over the discovery balancer |
//! | [`headers`] | the client address (trusted proxies' `X-Forwarded-For`, a service's `x-shop-client-ip`), hop-by-hop headers, `X-Forwarded-*` |
//! | [`middleware`] | the edge layers: rate limit, shedding, size limits, deadline, auth, CORS, trace context |
//! | [`readiness`] | `/readyz`: ready when serving; upstreams degrade their own routes instead |
//! | [`state`] | the upstream clients handlers share |
//! | [`openapi`] | the OpenAPI 3.1 document |

pub mod app;
pub mod config;
pub mod forward;
pub mod grpc;
pub mod headers;
pub mod middleware;
pub mod openapi;
pub mod readiness;
pub mod routes;
pub mod state;

pub use app::Gateway;
pub use config::Settings;

/// A gateway that is bound, registered and ready to run.
pub type Application = shop_runtime::Application<Gateway>;
