//! Placing an order, exactly once per (user, idempotency key): look the key
//! up, read the caller's cart, store the order with its lines and the
//! outbox row that clears them from the cart in one transaction, and hand
//! the row to this instance's relay. The gRPC adapter only translates.

use shop_api::UserId;
use shop_discovery::Deadline;
use uuid::Uuid;

use crate::cart::{Cart, CartClient, CartError, OrderRemoval, RemovalLine};
use crate::domain::{IdempotencyKey, Order, OrderId, OrderLine, OrderStatus};
use crate::relay::Relay;
use crate::store::{Inserted, NewOrder, OrderStore, StoreError};

/// The caller, from a verified bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user id (the token's subject).
    pub user_id: UserId,
    /// The raw token, for calls made on the caller's behalf.
    pub token: String,
}

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The caller's cart is empty: nothing to order.
    #[error("the cart is empty")]
    EmptyCart,
    /// The cart could not be read.
    #[error(transparent)]
    Cart(#[from] CartError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The outbox message could not be written as JSON.
    #[error("cannot encode the cart removal of an order")]
    Encode(#[source] serde_json::Error),
    /// The key was taken by a concurrent placement whose order then could
    /// not be found (only a hand-deleted row could cause it).
    #[error("the idempotency key is taken but its order is gone")]
    KeyWithoutOrder,
}

/// An order placed, or found placed before with the same key.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The order.
    pub order: Order,
    /// False when an earlier call with the same key placed it.
    pub created: bool,
}

/// Places orders from the caller's cart.
#[derive(Clone)]
pub struct Placement {
    store: OrderStore,
    cart: CartClient,
    relay: Option<Relay>,
}

impl Placement {
    /// Placement over its store and cart client. With a `relay`, each
    /// placed order's cart removal is claimed in the order's transaction and
    /// delivered before the order is answered; without one (relay
    /// disabled), the rows wait for another instance's relay.
    pub fn new(store: OrderStore, cart: CartClient, relay: Option<Relay>) -> Self {
        Self { store, cart, relay }
    }

    /// Places an order for `caller` from their cart, exactly once per key.
    ///
    /// # Errors
    /// [`PlaceError::EmptyCart`], a cart error, or a store error.
    pub async fn place(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        deadline: Option<Deadline>,
    ) -> Result<Placed, PlaceError> {
        if let Some(order) = self.earlier(caller, key).await? {
            return Ok(order);
        }
        let cart = match self.cart.cart(&caller.token, deadline).await {
            Ok(cart) if !cart.items.is_empty() => cart,
            outcome => {
                // A concurrent call with this key may have committed since
                // the lookup, and its relay may already have emptied the
                // cart (or cart went away since): that order is the answer.
                if let Some(order) = self.earlier(caller, key).await? {
                    return Ok(order);
                }
                return Err(match outcome {
                    Ok(_) => PlaceError::EmptyCart,
                    Err(err) => err.into(),
                });
            }
        };
        let order = order_of(caller.user_id, cart);
        let new = NewOrder {
            outbox_payload: removal_of(&order)?,
            order,
            key: key.clone(),
            outbox_id: Uuid::now_v7().to_string(),
            claim: self.relay.as_ref().map(Relay::claim_new),
        };
        match self.store.insert(&new).await? {
            Inserted::Created => {
                if let Some(relay) = &self.relay {
                    relay.deliver_placed(&new.outbox_row()).await;
                }
                tracing::info!(order_id = %new.order.id, user_id = %caller.user_id, total_cents = new.order.total_cents, "order placed");
                Ok(Placed {
                    order: new.order,
                    created: true,
                })
            }
            // A concurrent call with the same key committed first.
            Inserted::KeyTaken => self
                .earlier(caller, key)
                .await?
                .ok_or(PlaceError::KeyWithoutOrder),
        }
    }

    /// The order an earlier call placed with `key`, if any.
    async fn earlier(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
    ) -> Result<Option<Placed>, StoreError> {
        Ok(self
            .store
            .find_by_key(caller.user_id, key)
            .await?
            .map(|order| Placed {
                order,
                created: false,
            }))
    }
}

/// A new order of `user` holding the lines of their priced `cart`.
fn order_of(user: UserId, cart: Cart) -> Order {
    let now = shop_common::db::now_text();
    Order {
        id: OrderId::new(),
        user_id: user,
        status: OrderStatus::Placed,
        lines: cart
            .items
            .into_iter()
            .map(|line| OrderLine {
                product_id: line.product_id.as_uuid(),
                name: line.name,
                unit_price_cents: line.unit_price_cents,
                quantity: line.quantity,
                line_total_cents: line.line_total_cents,
            })
            .collect(),
        total_cents: cart.total_cents,
        currency: cart.currency,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The outbox payload that takes `order`'s lines out of the cart.
fn removal_of(order: &Order) -> Result<String, PlaceError> {
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
    serde_json::to_string(&removal).map_err(PlaceError::Encode)
}
