//! The orders gRPC client over discovery: tonic's generated client runs on
//! [`OrdersChannel`], which sends each call through the `orders`
//! [`UpstreamClient`] (HTTP/2 to instances registered with scheme `grpc`),
//! so gRPC calls get the same balancing, deadlines, breaker and ejection as
//! forwarded HTTP.
//!
//! A call marked [`shop_discovery::Idempotent`] (reads, and a placement
//! carrying its idempotency key) has its request message buffered — unary
//! messages are tiny — so that it can be retried on another instance; any
//! other call streams its body and is sent once.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Limited};
use shop_discovery::{CallError, Idempotent, RequestBody, ResponseBody, UpstreamClient};
use shop_proto::orders::v1::order_service_client::OrderServiceClient;

/// Largest request message buffered for a retry.
const MAX_BUFFERED: usize = 64 * 1024;

/// The tonic client of the orders API.
pub type OrdersClient = OrderServiceClient<OrdersChannel>;

/// A tonic transport that sends calls through an [`UpstreamClient`].
#[derive(Debug, Clone)]
pub struct OrdersChannel {
    upstream: UpstreamClient,
}

impl OrdersChannel {
    /// A channel over `upstream` (the `orders` service).
    pub fn new(upstream: UpstreamClient) -> Self {
        Self { upstream }
    }

    /// The tonic client over this channel.
    pub fn client(self) -> OrdersClient {
        OrderServiceClient::new(self)
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for OrdersChannel {
    type Response = http::Response<ResponseBody>;
    type Error = CallError;
    type Future = BoxFuture<'static, Result<Self::Response, CallError>>;

    /// Always ready; the upstream client fails fast instead (breaker open,
    /// no instance).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let upstream = self.upstream.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = if parts.extensions.get::<Idempotent>().is_some() {
                let bytes = Limited::new(body, MAX_BUFFERED)
                    .collect()
                    .await
                    .map_err(|err| CallError::InvalidRequest {
                        upstream: upstream.service().into(),
                        reason: format!("reading the request message: {err}"),
                    })?
                    .to_bytes();
                RequestBody::full(bytes)
            } else {
                RequestBody::streaming(body)
            };
            upstream.send(http::Request::from_parts(parts, body)).await
        })
    }
}
