//! The gRPC RED metrics of orders' server (`grpc_requests_total`,
//! `grpc_request_duration_seconds` by `service`, `method`, `code`; see
//! [`shop_common::metrics::grpc`]): the methods it serves, each a series
//! of its own from start-up.

use shop_common::metrics::GrpcMetricsLayer;

/// Every method the server serves, as the `method` label names it (the
/// call's path); a call to any other path counts as `other`.
pub const METHODS: [&str; 8] = [
    "/ferroshop.orders.v1.OrderService/PlaceOrder",
    "/ferroshop.orders.v1.OrderService/GetOrder",
    "/ferroshop.orders.v1.OrderService/ListOrders",
    "/ferroshop.orders.v1.OrderService/CancelOrder",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The layer around orders' gRPC server.
pub fn layer() -> GrpcMetricsLayer {
    GrpcMetricsLayer::new(crate::app::SERVICE, &METHODS)
}

#[cfg(test)]
mod tests {
    use shop_proto::orders::v1::order_service_server::{OrderService, OrderServiceServer};
    use tonic::server::NamedService;

    use super::*;

    /// The listed paths use the service name the generated server routes by.
    #[test]
    fn the_order_service_paths_use_its_generated_name() {
        fn name<T: OrderService>() -> &'static str {
            <OrderServiceServer<T> as NamedService>::NAME
        }
        let prefix = format!("/{}/", name::<crate::grpc::OrdersGrpc>());
        assert_eq!(
            METHODS.iter().filter(|m| m.starts_with(&prefix)).count(),
            4,
            "{prefix}"
        );
    }
}
