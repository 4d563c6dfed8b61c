//! The generated API and the descriptor set agree with `proto/`.

use prost::Message;
use prost_types::FileDescriptorSet;
use shop_proto::orders::v1::{OrderStatus, PlaceOrderRequest};

#[test]
fn descriptor_set_holds_the_orders_service_and_its_imports() {
    let set = FileDescriptorSet::decode(shop_proto::FILE_DESCRIPTOR_SET);
    assert!(set.is_ok(), "descriptor set decodes");
    let set = set.unwrap_or_default();
    let orders = set
        .file
        .iter()
        .find(|file| file.name() == "ferroshop/orders/v1/orders.proto");
    let services: Vec<&str> = orders
        .map(|file| file.service.iter().map(|s| s.name()).collect())
        .unwrap_or_default();
    assert_eq!(services, ["OrderService"]);
    assert!(
        set.file
            .iter()
            .any(|file| file.name() == "google/protobuf/timestamp.proto"),
        "imports are included, so reflection can resolve Timestamp"
    );
}

#[test]
fn generated_messages_round_trip() {
    let request = PlaceOrderRequest {
        idempotency_key: "key-1".to_owned(),
        payment_token: "tok_visa".to_owned(),
    };
    let decoded = PlaceOrderRequest::decode(request.encode_to_vec().as_slice());
    assert_eq!(decoded.ok(), Some(request));
    assert_eq!(
        OrderStatus::Confirmed.as_str_name(),
        "ORDER_STATUS_CONFIRMED"
    );
}
