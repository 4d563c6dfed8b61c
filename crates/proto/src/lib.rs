//! ferroshop's gRPC APIs, generated at build time from the `.proto` files
//! under `proto/` (compiled by protox; no system `protoc` is needed).
//!
//! | module | API |
//! | --- | --- |
//! | [`orders::v1`] | `ferroshop.orders.v1.OrderService`: messages, [`orders::v1::order_service_client::OrderServiceClient`] and [`orders::v1::order_service_server::OrderServiceServer`] |
//!
//! [`FILE_DESCRIPTOR_SET`] is the encoded descriptor set of every file here
//! (with its imports), for gRPC server reflection.

/// The encoded `FileDescriptorSet` of all ferroshop `.proto` files and their
/// imports; register it with `tonic_reflection` so tools such as `grpcurl`
/// work without the `.proto` files.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ferroshop_descriptor.bin"));

/// The orders API (`ferroshop.orders.*`).
pub mod orders {
    /// Version 1 of the orders API (`ferroshop.orders.v1`).
    #[allow(
        missing_docs,
        clippy::all,
        clippy::pedantic,
        clippy::nursery,
        clippy::unwrap_used,
        clippy::expect_used
    )]
    pub mod v1 {
        tonic::include_proto!("ferroshop.orders.v1");
    }
}
