//! Placing an order, exactly once per (user, idempotency key): look the key
//! up, read the caller's cart, store the pending order with its lines, and
//! drive its checkout saga ([`crate::saga`]) until it settles or the call
//! must be answered. The cart removal is written when the order is
//! confirmed. The gRPC adapter only translates.

use std::time::{Duration, Instant};

use shop_api::UserId;
use shop_discovery::Deadline;

use crate::cart::{Cart, CartClient, CartError};
use crate::domain::{IdempotencyKey, Order, OrderId, OrderLine, OrderStatus, PaymentToken};
use crate::saga::Saga;
use crate::store::{Inserted, NewOrder, OrderStore, SagaOrder, StoreError};

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
    /// The key was taken by a concurrent placement whose order then could
    /// not be found (only a hand-deleted row could cause it).
    #[error("the idempotency key is taken but its order is gone")]
    KeyWithoutOrder,
}

/// An order placed, or found placed before with the same key, as it
/// stands when the call is answered (settled, or still pending).
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
    saga: Saga,
}

impl Placement {
    /// Placement over its store, cart client and saga driver.
    pub fn new(store: OrderStore, cart: CartClient, saga: Saga) -> Self {
        Self { store, cart, saga }
    }

    /// Places an order for `caller` from their cart, exactly once per key.
    ///
    /// # Errors
    /// [`PlaceError::EmptyCart`], a cart error, or a store error.
    pub async fn place(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        token: &PaymentToken,
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
        let cart_version = cart.version;
        let order = order_of(caller.user_id, cart);
        let new = NewOrder {
            order,
            key: key.clone(),
            payment_token: token.as_str().to_owned(),
            cart_version,
            lease_until: self.saga.lease_until(),
        };
        match self.store.insert(&new).await? {
            Inserted::Created => {
                let id = new.order.id;
                tracing::info!(order_id = %id, user_id = %caller.user_id, total_cents = new.order.total_cents, "order placed; checkout under way");
                let written =
                    SagaOrder::placed(new.order.clone(), new.payment_token, new.cart_version);
                let order = self
                    .saga
                    .drive_for(
                        id,
                        Some(written),
                        wait(self.saga.settings().answer_within(), deadline),
                    )
                    .await?
                    .unwrap_or(new.order);
                Ok(Placed {
                    order,
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
        status: OrderStatus::Pending,
        rejection: None,
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

/// How long a call waits for its order to settle: `within`, or less when
/// the caller's deadline comes sooner.
pub fn wait(within: Duration, deadline: Option<Deadline>) -> Duration {
    deadline.map_or(within, |deadline| {
        within.min(deadline.0.saturating_duration_since(Instant::now()))
    })
}
