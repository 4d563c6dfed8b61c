//! What the pages show: one askama template struct per page (the
//! templates live in `templates/`, compiled into the binary and escaped
//! for HTML), the [`Layout`] every page shares, the view models the
//! handlers fill from API answers, the fixed set of [`Notice`]s, and
//! money formatting.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use shop_api::cart::Cart;
use shop_api::catalog::Product;
use shop_api::orders::{Order, OrderLine, OrderStatus, RejectionReason};
use shop_api::payments::tokens;

use crate::error::Error;
use crate::tile::Tile;

/// What every page's frame shows: the title, the header (which depends on
/// the session), the error summary and the notice.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The page's name (its `<h1>` and `<title>`).
    pub title: String,
    /// Whether the visitor has a session ("Orders" and "Log out", or
    /// "Log in" and "Sign up").
    pub signed_in: bool,
    /// The CSRF token of the page's forms.
    pub csrf: String,
    /// The sentence of the error summary at the top of `main`.
    pub error: Option<String>,
    /// The success notice.
    pub notice: Option<String>,
    /// Whether the page reloads itself every 2 s (an order being processed).
    pub refresh: bool,
}

impl Layout {
    /// A layout titled `title`, showing `notice` (an error notice goes to
    /// the error summary).
    pub fn new(
        title: impl Into<String>,
        signed_in: bool,
        csrf: &str,
        notice: Option<Notice>,
    ) -> Self {
        let mut layout = Self {
            title: title.into(),
            signed_in,
            csrf: csrf.to_owned(),
            ..Self::default()
        };
        if let Some(notice) = notice {
            if notice.is_error() {
                layout.error = Some(notice.text().to_owned());
            } else {
                layout.notice = Some(notice.text().to_owned());
            }
        }
        layout
    }
}

/// A one-shot message left by a form's redirect for the page it leads to.
/// It travels as its key ([`Notice::key`]) in the `shop_notice` cookie, so
/// no text a visitor typed is ever reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A product was added to the cart.
    Added,
    /// A line's quantity was changed.
    Updated,
    /// A line was removed.
    Removed,
    /// A quantity that is no whole number from 1 to 99.
    QuantityInvalid,
    /// The cart refused the quantity (more than 99 of one product).
    QuantityLimit,
    /// The product is not in the catalog (any more).
    ProductGone,
    /// A checkout of an empty cart.
    CartEmpty,
    /// A checkout form that was tampered with or is stale.
    CheckoutInvalid,
    /// An order's cancellation was accepted.
    Cancelled,
    /// An order that can no longer be cancelled.
    NotCancellable,
    /// The session was closed.
    LoggedOut,
    /// An account was created (and logged in).
    Welcome,
    /// Logged in.
    LoggedIn,
}

impl Notice {
    const ALL: [Self; 13] = [
        Self::Added,
        Self::Updated,
        Self::Removed,
        Self::QuantityInvalid,
        Self::QuantityLimit,
        Self::ProductGone,
        Self::CartEmpty,
        Self::CheckoutInvalid,
        Self::Cancelled,
        Self::NotCancellable,
        Self::LoggedOut,
        Self::Welcome,
        Self::LoggedIn,
    ];

    /// Its key in the cookie.
    pub fn key(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Updated => "updated",
            Self::Removed => "removed",
            Self::QuantityInvalid => "quantity_invalid",
            Self::QuantityLimit => "quantity_limit",
            Self::ProductGone => "product_gone",
            Self::CartEmpty => "cart_empty",
            Self::CheckoutInvalid => "checkout_invalid",
            Self::Cancelled => "cancelled",
            Self::NotCancellable => "not_cancellable",
            Self::LoggedOut => "logged_out",
            Self::Welcome => "welcome",
            Self::LoggedIn => "logged_in",
        }
    }

    /// The notice with key `key`; `None` for anything else.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|notice| notice.key() == key)
    }

    /// Whether it reports a failure (shown as the error summary).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Self::QuantityInvalid
                | Self::QuantityLimit
                | Self::ProductGone
                | Self::CartEmpty
                | Self::CheckoutInvalid
                | Self::NotCancellable
        )
    }

    /// The sentence shown.
    pub fn text(self) -> &'static str {
        match self {
            Self::Added => "Added to your cart.",
            Self::Updated => "Your cart was updated.",
            Self::Removed => "Removed from your cart.",
            Self::QuantityInvalid => "The quantity must be a whole number from 1 to 99.",
            Self::QuantityLimit => {
                "Your cart could not be changed: at most 99 of one product fit in a cart."
            }
            Self::ProductGone => "That product is no longer available.",
            Self::CartEmpty => "Your cart is empty: add a product before checking out.",
            Self::CheckoutInvalid => {
                "The checkout form was out of date. Check your order and place it again."
            }
            Self::Cancelled => "Your order is being cancelled.",
            Self::NotCancellable => "This order can no longer be cancelled.",
            Self::LoggedOut => "You are logged out.",
            Self::Welcome => "Welcome to ferroshop! Your account is ready and you are logged in.",
            Self::LoggedIn => "You are logged in.",
        }
    }
}

/// `cents` of `currency` as people write it: `€12.50`, `$3.00`,
/// `12.50 CHF`; currencies without minor units (JPY) without decimals.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let amount = match currency {
        "JPY" | "KRW" | "ISK" => abs.to_string(),
        _ => format!("{}.{:02}", abs / 100, abs % 100),
    };
    match currency {
        "EUR" => format!("{sign}€{amount}"),
        "USD" => format!("{sign}${amount}"),
        "GBP" => format!("{sign}£{amount}"),
        "JPY" => format!("{sign}¥{amount}"),
        other => format!("{sign}{amount} {other}"),
    }
}

/// A product as the list and its page show it.
#[derive(Debug, Clone)]
pub struct ProductView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its formatted price.
    pub price: String,
    /// "In stock: N" or "Out of stock".
    pub stock_text: String,
    /// Whether it can be added to a cart.
    pub in_stock: bool,
    /// Its picture (the catalog's image paths are served by no service,
    /// and nothing is fetched from elsewhere).
    pub tile: Tile,
}

impl From<Product> for ProductView {
    fn from(product: Product) -> Self {
        let id = product.id.to_string();
        Self {
            tile: Tile::new(&id, &product.name),
            id,
            price: money(product.price_cents, &product.currency),
            stock_text: if product.stock > 0 {
                format!("In stock: {}", product.stock)
            } else {
                "Out of stock".to_owned()
            },
            in_stock: product.stock > 0,
            name: product.name,
            description: product.description,
        }
    }
}

/// A line of a cart or an order.
#[derive(Debug, Clone)]
pub struct LineView {
    /// The product's id.
    pub product_id: String,
    /// The product's name.
    pub name: String,
    /// The formatted unit price.
    pub unit_price: String,
    /// How many.
    pub quantity: i64,
    /// The formatted line total.
    pub total: String,
}

/// A cart's (or an order's) lines and total.
#[derive(Debug, Clone)]
pub struct LinesView {
    /// The lines.
    pub lines: Vec<LineView>,
    /// The formatted total.
    pub total: String,
}

impl From<&Cart> for LinesView {
    fn from(cart: &Cart) -> Self {
        Self {
            lines: cart
                .items
                .iter()
                .map(|item| LineView {
                    product_id: item.product_id.to_string(),
                    name: item.name.clone(),
                    unit_price: money(item.unit_price_cents, &cart.currency),
                    quantity: item.quantity,
                    total: money(item.line_total_cents, &cart.currency),
                })
                .collect(),
            total: money(cart.total_cents, &cart.currency),
        }
    }
}

fn order_lines(lines: &[OrderLine], currency: &str) -> Vec<LineView> {
    lines
        .iter()
        .map(|line| LineView {
            product_id: line.product_id.to_string(),
            name: line.name.clone(),
            unit_price: money(line.unit_price_cents, currency),
            quantity: line.quantity,
            total: money(line.line_total_cents, currency),
        })
        .collect()
}

/// The status word of an order, capitalised for a person.
pub fn status_word(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "Pending",
        OrderStatus::Confirmed => "Confirmed",
        OrderStatus::Rejected => "Rejected",
        OrderStatus::Cancelling => "Cancelling",
        OrderStatus::Cancelled => "Cancelled",
    }
}

/// An order in the history.
#[derive(Debug, Clone)]
pub struct OrderSummary {
    /// Its id.
    pub id: String,
    /// The first 8 characters of its id.
    pub short_id: String,
    /// Its status, capitalised.
    pub status: &'static str,
    /// The machine word of its status (`data-status`).
    pub status_key: &'static str,
    /// When it was placed (the date and time, UTC).
    pub placed: String,
    /// Its formatted total.
    pub total: String,
}

impl From<&Order> for OrderSummary {
    fn from(order: &Order) -> Self {
        let id = order.id.to_string();
        Self {
            short_id: id.chars().take(8).collect(),
            id,
            status: status_word(order.status),
            status_key: order.status.as_str(),
            placed: readable_time(&order.created_at),
            total: money(order.total_cents, &order.currency),
        }
    }
}

/// `2025-05-01T10:11:12.345Z` as `2025-05-01 10:11 UTC`.
fn readable_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => rfc3339.to_owned(),
    }
}

/// An order on its page.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// The order in the history's terms.
    pub summary: OrderSummary,
    /// The sentence that says where it stands, and why when rejected.
    pub sentence: String,
    /// Its lines.
    pub lines: Vec<LineView>,
    /// Whether its owner can still cancel it.
    pub cancellable: bool,
    /// Whether it is still changing (the page reloads itself).
    pub in_progress: bool,
}

impl From<&Order> for OrderView {
    fn from(order: &Order) -> Self {
        Self {
            summary: OrderSummary::from(order),
            sentence: order_sentence(order),
            lines: order_lines(&order.lines, &order.currency),
            cancellable: order.status == OrderStatus::Confirmed,
            in_progress: !order.status.is_settled(),
        }
    }
}

/// Where `order` stands, for a person.
pub fn order_sentence(order: &Order) -> String {
    match order.status {
        OrderStatus::Pending => {
            "Pending: your order is being processed. This page refreshes by itself.".to_owned()
        }
        OrderStatus::Confirmed => {
            "Confirmed: your payment was taken and the products are reserved for you.".to_owned()
        }
        OrderStatus::Cancelling => {
            "Cancelling: your cancellation is being processed. This page refreshes by itself."
                .to_owned()
        }
        OrderStatus::Cancelled => {
            "Cancelled: your payment was refunded and the products returned to stock.".to_owned()
        }
        OrderStatus::Rejected => {
            let Some(rejection) = &order.rejection else {
                return "Rejected: the order could not be placed; nothing was charged.".to_owned();
            };
            match rejection.reason {
                RejectionReason::OutOfStock => {
                    let names: Vec<&str> = order
                        .lines
                        .iter()
                        .filter(|line| rejection.out_of_stock.contains(&line.product_id))
                        .map(|line| line.name.as_str())
                        .collect();
                    let names = if names.is_empty() {
                        "some products".to_owned()
                    } else {
                        names.join(", ")
                    };
                    format!(
                        "Rejected: out of stock. There are not enough of {names}. Nothing was charged."
                    )
                }
                RejectionReason::PaymentDeclined => {
                    let reason = rejection.decline_reason.as_deref().unwrap_or("declined");
                    format!("Rejected. Your payment was declined ({reason}). Nothing was charged.")
                }
                RejectionReason::PaymentFailed => {
                    "Rejected: the payment provider failed; nothing was charged.".to_owned()
                }
            }
        }
    }
}

/// One choice of the checkout's payment fieldset.
#[derive(Debug, Clone)]
pub struct PaymentChoice {
    /// The test token.
    pub token: &'static str,
    /// Its label.
    pub label: String,
    /// Whether it is checked by default.
    pub checked: bool,
}

/// The checkout's payment choices: the provider's test tokens.
pub fn payment_choices() -> Vec<PaymentChoice> {
    [
        (tokens::SUCCESS, "Card that pays"),
        (tokens::DECLINED, "Card that is declined"),
        (tokens::INSUFFICIENT_FUNDS, "Card without funds"),
        (tokens::PROVIDER_ERROR, "Provider failure"),
        (tokens::SLOW, "Slow provider"),
    ]
    .into_iter()
    .map(|(token, what)| PaymentChoice {
        token,
        label: format!("{what} ({token})"),
        checked: token == tokens::SUCCESS,
    })
    .collect()
}

/// A form field's error, shown next to it.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    /// The username's.
    pub username: Option<String>,
    /// The email address's.
    pub email: Option<String>,
    /// The password's.
    pub password: Option<String>,
}

/// `GET /`: the product list.
#[derive(Template)]
#[template(path = "products.html")]
pub struct ProductsPage {
    /// The frame.
    pub layout: Layout,
    /// This page's products.
    pub products: Vec<ProductView>,
    /// The next page's link, when there is one.
    pub next: Option<String>,
    /// Whether this is a later page (a "First page" link).
    pub later: bool,
}

/// `GET /products/{id}`.
#[derive(Template)]
#[template(path = "product.html")]
pub struct ProductPage {
    /// The frame.
    pub layout: Layout,
    /// The product.
    pub product: ProductView,
}

/// `GET /signup`, and the form again with its errors.
#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    /// The frame.
    pub layout: Layout,
    /// The username typed.
    pub username: String,
    /// The email address typed.
    pub email: String,
    /// Where to go afterwards.
    pub next: String,
    /// The errors per field.
    pub errors: FieldErrors,
}

/// `GET /login`, and the form again after a failure.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// The frame.
    pub layout: Layout,
    /// The username or email typed.
    pub login: String,
    /// Where to go afterwards.
    pub next: String,
}

/// `GET /cart`.
#[derive(Template)]
#[template(path = "cart.html")]
pub struct CartPage {
    /// The frame.
    pub layout: Layout,
    /// The lines and total.
    pub cart: LinesView,
}

/// `GET /checkout`.
#[derive(Template)]
#[template(path = "checkout.html")]
pub struct CheckoutPage {
    /// The frame.
    pub layout: Layout,
    /// The lines and total.
    pub cart: LinesView,
    /// The payment choices.
    pub choices: Vec<PaymentChoice>,
    /// This rendering's idempotency key (a fresh UUID v4).
    pub idempotency_key: String,
}

/// `GET /orders`.
#[derive(Template)]
#[template(path = "orders.html")]
pub struct OrdersPage {
    /// The frame.
    pub layout: Layout,
    /// This page's orders.
    pub orders: Vec<OrderSummary>,
    /// The next page's link, when there is one.
    pub next: Option<String>,
    /// Whether this is a later page.
    pub later: bool,
}

/// `GET /orders/{id}`.
#[derive(Template)]
#[template(path = "order.html")]
pub struct OrderPage {
    /// The frame.
    pub layout: Layout,
    /// The order.
    pub order: OrderView,
}

/// A page that failed: not found, unavailable, a stale form.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// The frame (its title is the heading).
    pub layout: Layout,
    /// What to tell the visitor.
    pub message: String,
}

/// Renders `page` as an HTML response.
pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => Error::Internal(format!("rendering a page failed: {err}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_people_write_it() {
        assert_eq!(money(1250, "EUR"), "€12.50");
        assert_eq!(money(5, "USD"), "$0.05");
        assert_eq!(money(100_000, "GBP"), "£1000.00");
        assert_eq!(money(1500, "JPY"), "¥1500");
        assert_eq!(money(990, "CHF"), "9.90 CHF");
        assert_eq!(money(-250, "EUR"), "-€2.50");
    }

    #[test]
    fn notices_travel_as_keys_and_nothing_else_is_read() {
        for notice in Notice::ALL {
            assert_eq!(Notice::from_key(notice.key()), Some(notice));
        }
        assert_eq!(Notice::from_key("<script>"), None);
        assert_eq!(Notice::from_key(""), None);
    }

    #[test]
    fn the_checkout_offers_every_test_token_and_pays_by_default() {
        let choices = payment_choices();
        let offered: Vec<&str> = choices.iter().map(|choice| choice.token).collect();
        assert_eq!(offered, tokens::ALL);
        assert_eq!(choices[0].label, "Card that pays (tok_visa)");
        assert!(choices[0].checked && choices[1..].iter().all(|choice| !choice.checked));
    }
}
