//! `ferroshop.orders.v1.OrderService`: authenticates the caller from the
//! `authorization` metadata, parses requests into domain values, hands
//! placement to [`crate::placement`] and runs lookups and cancellation
//! against the store, and translates the answers and errors.

use std::time::Duration;

use shop_common::auth::TokenVerifier;
use shop_common::wire::parse_bearer;
use shop_discovery::Deadline;
use shop_proto::orders::v1 as pb;
use shop_proto::orders::v1::order_service_server::OrderService;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::cart::CartClient;
use crate::domain::{
    IdempotencyKey, Order, OrderId, OrderStatus, PageSize, PageToken, PaymentToken,
};
use crate::error::{Error, Result};
use crate::placement::{Caller, Placed, Placement, wait};
use crate::saga::Saga;
use crate::store::{Cancelled, OrderStore};

/// Time kept back from a caller's `grpc-timeout` when calling cart, so the
/// cart call gives up (and the caller gets DEADLINE_EXCEEDED with our
/// message) just before tonic's own timer cancels the call.
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);

/// The orders gRPC service.
#[derive(Clone)]
pub struct OrdersGrpc {
    store: OrderStore,
    placement: Placement,
    saga: Saga,
    verifier: TokenVerifier,
}

impl OrdersGrpc {
    /// The service over its store, cart client and saga driver.
    pub fn new(store: OrderStore, cart: CartClient, verifier: TokenVerifier, saga: Saga) -> Self {
        Self {
            placement: Placement::new(store.clone(), cart, saga.clone()),
            saga,
            store,
            verifier,
        }
    }

    /// Verifies the `authorization: Bearer …` metadata.
    async fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller> {
        let token = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_bearer)
            .ok_or(Error::Unauthenticated(
                "missing bearer token in the authorization metadata",
            ))?;
        let claims = self.verifier.verify_fresh(token).await.map_err(|err| {
            tracing::debug!(error = %err, "rejected token");
            Error::Unauthenticated("invalid or expired token")
        })?;
        let user_id = claims
            .user_id()
            .map_err(|_| Error::Unauthenticated("invalid token subject"))?;
        Ok(Caller {
            user_id,
            token: token.to_owned(),
        })
    }

    /// The caller of a request about one order, and that order's id.
    async fn caller_and_order(
        &self,
        metadata: &MetadataMap,
        order_id: &str,
    ) -> Result<(Caller, OrderId)> {
        let caller = self.authenticate(metadata).await?;
        let id = OrderId::parse(order_id).map_err(Error::InvalidArgument)?;
        Ok((caller, id))
    }
}

/// The caller's deadline from `grpc-timeout`, less [`DEADLINE_MARGIN`].
fn deadline_of(metadata: &MetadataMap) -> Option<Deadline> {
    Deadline::from_headers(metadata.as_ref()).map(|deadline| {
        Deadline(
            deadline
                .0
                .checked_sub(DEADLINE_MARGIN)
                .unwrap_or(deadline.0),
        )
    })
}

#[tonic::async_trait]
impl OrderService for OrdersGrpc {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let caller = self.authenticate(request.metadata()).await?;
        let deadline = deadline_of(request.metadata());
        let key = IdempotencyKey::parse(&request.get_ref().idempotency_key)
            .map_err(Error::InvalidArgument)?;
        let token = PaymentToken::parse(&request.get_ref().payment_token)
            .map_err(Error::InvalidArgument)?;
        let Placed { order, created } = self
            .placement
            .place(&caller, &key, &token, deadline)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(to_proto(&order)),
            created,
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let (caller, id) = self
            .caller_and_order(request.metadata(), &request.get_ref().order_id)
            .await?;
        let order = self
            .store
            .get(caller.user_id, id)
            .await
            .map_err(Error::from)?
            .ok_or(Error::NotFound)?;
        Ok(Response::new(to_proto(&order)))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let caller = self.authenticate(request.metadata()).await?;
        let size = PageSize::parse(request.get_ref().page_size).map_err(Error::InvalidArgument)?;
        let after =
            PageToken::parse(&request.get_ref().page_token).map_err(Error::InvalidArgument)?;
        // One more than asked, to know whether another page follows.
        let mut orders = self
            .store
            .list(caller.user_id, after.map(|token| token.0), size.get() + 1)
            .await
            .map_err(Error::from)?;
        let more = orders.len() > size.get() as usize;
        orders.truncate(size.get() as usize);
        let next_page_token = match orders.last() {
            Some(last) if more => PageToken(last.id).to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let (caller, id) = self
            .caller_and_order(request.metadata(), &request.get_ref().order_id)
            .await?;
        let deadline = deadline_of(request.metadata());
        match self
            .store
            .start_cancel(caller.user_id, id, &self.saga.lease_until())
            .await
            .map_err(Error::from)?
        {
            Cancelled::Started(order) if order.status == OrderStatus::Cancelling => {
                tracing::info!(order_id = %id, user_id = %caller.user_id, "order cancelling");
                let order = self
                    .saga
                    .drive_for(
                        id,
                        None,
                        wait(self.saga.settings().answer_within(), deadline),
                    )
                    .await
                    .map_err(Error::from)?
                    .unwrap_or(order);
                Ok(Response::new(to_proto(&order)))
            }
            Cancelled::Started(order) => Ok(Response::new(to_proto(&order))),
            Cancelled::NotFound => Err(Error::NotFound.into()),
            Cancelled::NotCancellable(status) => Err(Error::NotCancellable(status).into()),
        }
    }
}

/// The wire form of an order.
pub fn to_proto(order: &Order) -> pb::Order {
    pb::Order {
        id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        status: match order.status {
            OrderStatus::Pending => pb::OrderStatus::Pending,
            OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
            OrderStatus::Rejected => pb::OrderStatus::Rejected,
            OrderStatus::Cancelling => pb::OrderStatus::Cancelling,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        } as i32,
        rejection: order.rejection.as_ref().map(|rejection| pb::Rejection {
            reason: rejection.reason.as_str().to_owned(),
            out_of_stock: rejection
                .out_of_stock
                .iter()
                .map(ToString::to_string)
                .collect(),
            decline_reason: rejection.decline_reason.clone().unwrap_or_default(),
        }),
        lines: order
            .lines
            .iter()
            .map(|line| pb::OrderLine {
                product_id: line.product_id.to_string(),
                name: line.name.clone(),
                unit_price_cents: line.unit_price_cents,
                quantity: line.quantity,
                line_total_cents: line.line_total_cents,
            })
            .collect(),
        total_cents: order.total_cents,
        currency: order.currency.clone(),
        created_at: timestamp(&order.created_at),
        updated_at: timestamp(&order.updated_at),
    }
}

/// A stored RFC 3339 time as a protobuf timestamp (`None` if unreadable,
/// which only a hand-edited row could be).
fn timestamp(text: &str) -> Option<prost_types::Timestamp> {
    let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).ok()?,
    })
}
