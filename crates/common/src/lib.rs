//! Shared plumbing for every ferroshop service. No business rules live here.
//!
//! | module | owns |
//! | --- | --- |
//! | [`cli`] | the `main` of every service binary: `--config`, `--healthcheck`, one-line failures |
//! | [`config`] | layered settings: defaults, an optional TOML file, `SHOP_` environment variables |
//! | [`telemetry`] | the tracing subscriber (logs with trace ids, OpenTelemetry), the server span and per-request log line, span export (`[telemetry]`) |
//! | [`trace`] | W3C trace context in and out, the gRPC server span, `db.transaction` spans, traces continued from a stored `traceparent` |
//! | [`metrics`] | the Prometheus recorder and the per-request counters and histogram |
//! | [`health`] | `/healthz`, `/readyz` with named readiness checks; `/metrics` for admin listeners |
//! | [`healthcheck`] | the `--healthcheck` probe containers run: `GET /readyz` on the service's own port |
//! | [`shutdown`] | SIGINT/SIGTERM handling and the stop token services share |
//! | [`server`] | serving a service's API and admin listeners with shared layers, limits and a bounded drain |
//! | [`db`] | connecting to `sqlite:` or `postgres:` URLs and running migrations |
//! | [`error`] | the RFC 9457 problem+json error body |
//! | [`extract`] | request extractors whose rejections are problem+json |
//! | [`auth`] | EdDSA token verification and the `AuthUser` extractor; signing and the JWKS document with the `issue` feature |
//! | [`wire`] | internal header names (`x-shop-*`) and bearer-token parsing, spelled once |

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod health;
pub mod healthcheck;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
pub mod wire;
