//! `ferroshop.orders.v1.OrderService`: authenticates the caller from the
//! `authorization` metadata, parses requests into domain values, and runs
//! placement, lookups and cancellation against the store and the cart.

use std::time::Duration;

use shop_common::auth::TokenVerifier;
use shop_discovery::Deadline;
use shop_proto::orders::v1 as pb;
use shop_proto::orders::v1::order_service_server::OrderService;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cart::{CartClient, OrderRemoval, RemovalLine};
use crate::domain::{IdempotencyKey, Order, OrderId, OrderLine, OrderStatus, PageSize, PageToken};
use crate::error::{Error, Result};
use crate::relay::Relay;
use crate::store::{Cancelled, Inserted, NewOrder, OrderStore, StoreError};

/// Time kept back from a caller's `grpc-timeout` when calling cart, so the
/// cart call gives up (and the caller gets DEADLINE_EXCEEDED with our
/// message) just before tonic's own timer cancels the call.
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);

/// The caller, from a verified bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user id (the token's subject).
    pub user_id: Uuid,
    /// The raw token, for calls made on the caller's behalf.
    pub token: String,
}

/// The orders gRPC service.
#[derive(Clone)]
pub struct OrdersGrpc {
    store: OrderStore,
    cart: CartClient,
    verifier: TokenVerifier,
    relay: Option<Relay>,
}

impl OrdersGrpc {
    /// The service over its store and clients. With a `relay`, each placed
    /// order's cart removal is claimed in the order's transaction and
    /// delivered before the order is answered; without one (relay
    /// disabled), the rows wait for another instance's relay.
    pub fn new(
        store: OrderStore,
        cart: CartClient,
        verifier: TokenVerifier,
        relay: Option<Relay>,
    ) -> Self {
        Self {
            store,
            cart,
            verifier,
            relay,
        }
    }

    /// Verifies the `authorization: Bearer …` metadata.
    async fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller> {
        let token = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(Error::Unauthenticated(
                "missing bearer token in the authorization metadata",
            ))?;
        let claims = self.verifier.verify_fresh(token).await.map_err(|err| {
            tracing::debug!(error = %err, "rejected token");
            Error::Unauthenticated("invalid or expired token")
        })?;
        let user_id = Uuid::parse_str(&claims.sub)
            .map_err(|_| Error::Unauthenticated("invalid token subject"))?;
        Ok(Caller {
            user_id,
            token: token.to_owned(),
        })
    }

    /// Places an order for `caller` from their cart, exactly once per key.
    ///
    /// # Errors
    /// [`Error::EmptyCart`], a cart error, or a store error.
    pub async fn place(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        deadline: Option<Deadline>,
    ) -> Result<(Order, bool)> {
        if let Some(order) = self.store.find_by_key(caller.user_id, key).await? {
            return Ok((order, false));
        }
        let cart = match self.cart.cart(&caller.token, deadline).await {
            Ok(cart) if !cart.items.is_empty() => cart,
            outcome => {
                // A concurrent call with this key may have committed since
                // the lookup, and its relay may already have emptied the
                // cart (or cart went away since): that order is the answer.
                if let Some(order) = self.store.find_by_key(caller.user_id, key).await? {
                    return Ok((order, false));
                }
                return Err(match outcome {
                    Ok(_) => Error::EmptyCart,
                    Err(err) => err.into(),
                });
            }
        };
        let now = shop_common::db::now_text();
        let order = Order {
            id: OrderId::new(),
            user_id: caller.user_id,
            status: OrderStatus::Placed,
            lines: cart
                .items
                .iter()
                .map(|line| OrderLine {
                    product_id: line.product_id,
                    name: line.name.clone(),
                    unit_price_cents: line.unit_price_cents,
                    quantity: line.quantity,
                    line_total_cents: line.line_total_cents,
                })
                .collect(),
            total_cents: cart.total_cents,
            currency: cart.currency,
            created_at: now.clone(),
            updated_at: now,
        };
        let removal = OrderRemoval {
            order_id: order.id.0,
            lines: order
                .lines
                .iter()
                .map(|line| RemovalLine {
                    product_id: line.product_id,
                    quantity: line.quantity,
                })
                .collect(),
        };
        let outbox_payload = serde_json::to_string(&removal)
            .map_err(|err| Error::Store(StoreError::from(sqlx::Error::Encode(Box::new(err)))))?;
        let new = NewOrder {
            order,
            key: key.clone(),
            outbox_payload,
            outbox_id: Uuid::now_v7().to_string(),
            claim: self.relay.as_ref().map(Relay::claim_new),
        };
        match self.store.insert(&new).await? {
            Inserted::Created => {
                if let Some(relay) = &self.relay {
                    relay.deliver_placed(&new.outbox_row()).await;
                }
                tracing::info!(order_id = %new.order.id, user_id = %caller.user_id, total_cents = new.order.total_cents, "order placed");
                Ok((new.order, true))
            }
            Inserted::KeyTaken => {
                // A concurrent call with the same key committed first.
                let winner = self
                    .store
                    .find_by_key(caller.user_id, key)
                    .await?
                    .ok_or_else(|| Error::Store(StoreError::from(sqlx::Error::RowNotFound)))?;
                Ok((winner, false))
            }
        }
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
        let (order, created) = self.place(&caller, &key, deadline).await?;
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(to_proto(&order)),
            created,
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = self.authenticate(request.metadata()).await?;
        let id = OrderId::parse(&request.get_ref().order_id).map_err(Error::InvalidArgument)?;
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
        let caller = self.authenticate(request.metadata()).await?;
        let id = OrderId::parse(&request.get_ref().order_id).map_err(Error::InvalidArgument)?;
        match self
            .store
            .cancel(caller.user_id, id)
            .await
            .map_err(Error::from)?
        {
            Cancelled::Done(order) => {
                tracing::info!(order_id = %id, user_id = %caller.user_id, "order cancelled");
                Ok(Response::new(to_proto(&order)))
            }
            Cancelled::NotFound => Err(Error::NotFound.into()),
            Cancelled::NotPlaced(status) => Err(Error::NotCancellable(status).into()),
        }
    }
}

/// The wire form of an order.
pub fn to_proto(order: &Order) -> pb::Order {
    pb::Order {
        id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        status: match order.status {
            OrderStatus::Placed => pb::OrderStatus::Placed,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        } as i32,
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
