//! The seeded rows: products, users and orders, each computed from its
//! number alone.
//!
//! Ids are UUID v7 in form with the row's time in the timestamp bits and
//! its number in the random bits, so text order is number order (the
//! catalog lists by id, a user's orders page by id) and the same number
//! always gives the same row on either database.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat};
use uuid::Uuid;

/// Users the orders are spread over (and the users database holds).
pub const USERS: u64 = 10_000;
/// Password of every seeded user.
pub const PASSWORD: &str = "growth password 1234";
/// The payment token recorded on seeded orders (the test token checkout uses).
pub const PAYMENT_TOKEN: &str = "tok_visa";
/// Stock of every seeded product: far more than any run orders.
pub const STOCK: i64 = 1_000_000;
/// Seeded products an order line may name: those that exist at every size.
const LINE_PRODUCTS: u64 = 10_000;

/// 2024-01-01T00:00:00Z: seeded products are created a millisecond apart
/// from here.
const PRODUCT_EPOCH_MS: u64 = 1_704_067_200_000;
/// 2023-01-01T00:00:00Z: seeded users sign up a second apart from here.
const USER_EPOCH_MS: u64 = 1_672_531_200_000;
/// Seeded orders are placed [`ORDER_STEP_MS`] apart from 2024-01-01, so
/// a million of them span most of a year, all before any benchmark order.
const ORDER_EPOCH_MS: u64 = 1_704_067_200_000;
/// Time between two seeded orders (30 s).
const ORDER_STEP_MS: u64 = 30_000;

/// A UUID v7 with timestamp `ms` and `low` in its random bits.
fn v7(ms: u64, low: u64) -> Uuid {
    let value = (u128::from(ms & 0xffff_ffff_ffff) << 80)
        | (0x7_u128 << 76)
        | (0x8_u128 << 60)
        | u128::from(low & 0x0fff_ffff_ffff_ffff);
    Uuid::from_u128(value)
}

/// `ms` since the Unix epoch as stored timestamps are (RFC 3339, UTC,
/// milliseconds: `shop_common::db::timestamp_text`).
fn timestamp(ms: u64) -> String {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The id of seeded product `n`.
pub fn product_id(n: u64) -> Uuid {
    v7(PRODUCT_EPOCH_MS + n, n)
}

/// The list cursor the catalog hands out for a page ending with product
/// `n`: base64url of the id's 16 bytes (`shop_catalog::domain::Cursor`).
pub fn cursor_after(n: u64) -> String {
    URL_SAFE_NO_PAD.encode(product_id(n).as_bytes())
}

/// The price of seeded product `n`, in EUR cents.
pub fn product_price(n: u64) -> i64 {
    i64::try_from(100 + (n * 37) % 10_000).unwrap_or(100)
}

/// Seeded product `n`: (id, sku, name, description, price_cents).
pub fn product(n: u64) -> (String, String, String, String, i64) {
    (
        product_id(n).to_string(),
        format!("GRW-{n:07}"),
        format!("Growth product {n}"),
        format!(
            "Seeded product number {n} of the growth benchmark: a plain description of ordinary length."
        ),
        product_price(n),
    )
}

/// The SKU range of seeded products, for counting them on the SKU index.
pub const SKU_RANGE: (&str, &str) = ("GRW-", "GRW.");

/// The id of seeded user `n`.
pub fn user_id(n: u64) -> Uuid {
    v7(USER_EPOCH_MS + n * 1000, n)
}

/// The user name of seeded user `n`.
pub fn username(n: u64) -> String {
    format!("growth{n:05}")
}

/// When seeded user `n` signed up.
pub fn user_created_at(n: u64) -> String {
    timestamp(USER_EPOCH_MS + n * 1000)
}

/// The user-name range of seeded users, for counting them on its index.
pub const USERNAME_RANGE: (&str, &str) = ("growth", "growti");

/// One line of a seeded order.
#[derive(Debug, Clone)]
pub struct Line {
    /// The product's id.
    pub product_id: String,
    /// Its name when ordered.
    pub name: String,
    /// Its price when ordered.
    pub unit_price_cents: i64,
    /// Units ordered.
    pub quantity: i64,
}

/// Seeded order `n`: confirmed, its saga done, placed by user
/// `n % USERS`, with one or two lines.
#[derive(Debug, Clone)]
pub struct SeedOrder {
    /// The order id.
    pub id: String,
    /// The buyer.
    pub user_id: String,
    /// The key it was placed with.
    pub idempotency_key: String,
    /// Sum of the lines.
    pub total_cents: i64,
    /// When it was placed.
    pub created_at: String,
    /// When its saga confirmed it.
    pub updated_at: String,
    /// Its lines.
    pub lines: Vec<Line>,
}

/// The id of seeded order `n`.
pub fn order_id(n: u64) -> Uuid {
    v7(ORDER_EPOCH_MS + n * ORDER_STEP_MS, n)
}

/// Most seeded orders (and products): their ids stay below
/// [`order_id_bound`].
pub const MAX_ROWS: u64 = 1_000_000;

/// An id above every seeded order's and below every order placed since
/// 2025 (a benchmark's): seeded orders are counted as the ids below it.
pub fn order_id_bound() -> String {
    v7(ORDER_EPOCH_MS + MAX_ROWS * ORDER_STEP_MS, 0).to_string()
}

/// Seeded order `n`.
pub fn order(n: u64) -> SeedOrder {
    let ms = ORDER_EPOCH_MS + n * ORDER_STEP_MS;
    let lines: Vec<Line> = (0..1 + n % 2)
        .map(|k| {
            let product = (n * 7919 + k * 104_729) % LINE_PRODUCTS;
            Line {
                product_id: product_id(product).to_string(),
                name: format!("Growth product {product}"),
                unit_price_cents: product_price(product),
                quantity: i64::try_from(1 + (n + k) % 3).unwrap_or(1),
            }
        })
        .collect();
    SeedOrder {
        id: order_id(n).to_string(),
        user_id: user_id(n % USERS).to_string(),
        idempotency_key: format!("growth-{n}"),
        total_cents: lines
            .iter()
            .map(|line| line.unit_price_cents * line.quantity)
            .sum(),
        created_at: timestamp(ms),
        updated_at: timestamp(ms + 150),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_ascend_with_their_number_as_text() {
        for n in [0, 1, 9, 10, 99_999, MAX_ROWS - 1] {
            assert!(product_id(n).to_string() < product_id(n + 1).to_string());
            assert!(order_id(n).to_string() < order_id(n + 1).to_string());
            assert!(order_id(n).to_string() < order_id_bound());
            assert_eq!(product_id(n).get_version_num(), 7);
        }
        assert!(user_id(9_999).to_string() < user_id(10_000).to_string());
        assert!(order_id_bound() < Uuid::now_v7().to_string());
    }

    #[test]
    fn cursors_are_the_catalogs_shape() {
        let cursor = cursor_after(123);
        assert_eq!(cursor.len(), 22);
        let bytes = URL_SAFE_NO_PAD.decode(&cursor).expect("base64url");
        assert_eq!(Uuid::from_slice(&bytes).expect("16 bytes"), product_id(123));
    }

    #[test]
    fn orders_add_up_and_name_products_of_every_size() {
        let order = order(12_345);
        assert_eq!(order.user_id, user_id(2_345).to_string());
        assert_eq!(
            order.total_cents,
            order
                .lines
                .iter()
                .map(|line| line.unit_price_cents * line.quantity)
                .sum::<i64>()
        );
        assert!(order.created_at.ends_with('Z') && order.created_at.len() == 24);
        let usernames = (username(0), username(9_999));
        assert!(
            USERNAME_RANGE.0 <= usernames.0.as_str() && usernames.1.as_str() < USERNAME_RANGE.1
        );
    }
}
