//! What every handler can reach: one upstream client per service (built
//! once; clones share its connection pool and balancer), and the request
//! settings the proxy needs.

use std::sync::Arc;

use shop_discovery::UpstreamClient;

use crate::grpc::OrdersClient;
use crate::headers::ClientTrust;

/// An upstream service the gateway forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// Registration, login, the current user, the token keys.
    Users,
    /// Products.
    Catalog,
    /// Carts.
    Cart,
    /// Orders (gRPC; reached through the REST facade).
    Orders,
    /// The storefront: server-rendered pages, itself a client of the API.
    Web,
}

impl Upstream {
    /// Every upstream.
    pub const ALL: [Self; 5] = [
        Self::Users,
        Self::Catalog,
        Self::Cart,
        Self::Orders,
        Self::Web,
    ];

    /// The service name in discovery.
    pub fn service(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Catalog => "catalog",
            Self::Cart => "cart",
            Self::Orders => "orders",
            Self::Web => "web",
        }
    }
}

/// The upstream clients.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// `users`.
    pub users: UpstreamClient,
    /// `catalog`.
    pub catalog: UpstreamClient,
    /// `cart`.
    pub cart: UpstreamClient,
    /// `orders` (HTTP/2, gRPC).
    pub orders: UpstreamClient,
    /// `web`.
    pub web: UpstreamClient,
}

impl Upstreams {
    /// The client of `upstream`.
    pub fn get(&self, upstream: Upstream) -> &UpstreamClient {
        match upstream {
            Upstream::Users => &self.users,
            Upstream::Catalog => &self.catalog,
            Upstream::Cart => &self.cart,
            Upstream::Orders => &self.orders,
            Upstream::Web => &self.web,
        }
    }
}

/// The handlers' state; cloning it is one reference count.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The upstream clients.
    pub upstreams: Upstreams,
    /// The orders gRPC client, over `upstreams.orders`.
    pub orders: OrdersClient,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Whom the client address is believed from (trusted proxies, the
    /// service credential).
    pub client_trust: ClientTrust,
}

impl AppState {
    /// State over `shared`.
    pub fn new(shared: Shared) -> Self {
        Self {
            inner: Arc::new(shared),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.inner
    }
}
