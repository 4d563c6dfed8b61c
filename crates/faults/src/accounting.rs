//! The books after a scenario, read from each service's own database:
//! orders (and their idempotency keys), payments, stock and reservations,
//! checked against what the shoppers were told.
//!
//! Table and state names come from migrations/: `orders.status` is
//! pending → confirmed | rejected (cancelling → cancelled), a payment is
//! keyed by order id (authorized, declined, captured, voided, refunded), a
//! reservation by order id (reserved, rejected, released).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::time::{Instant, sleep};

use crate::docker::Docker;
use crate::load::{Key, KeyOutcome};

/// The stock the products the load buys start each run with: never short,
/// so every order can be confirmed and stock is a clean sum.
pub const STOCK: i64 = 1_000_000;
/// How many products the load buys.
const PRODUCTS: usize = 4;

/// Picks the products the load buys (the first with stock) and sets their
/// stock to [`STOCK`].
///
/// # Errors
/// psql failed or the catalog has too few products.
pub async fn prepare_products(docker: &Docker) -> Result<Vec<String>> {
    let rows = docker
        .psql(
            "catalog",
            &format!("SELECT id FROM products WHERE stock > 0 ORDER BY id LIMIT {PRODUCTS}"),
        )
        .await?;
    let ids: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    if ids.len() < PRODUCTS {
        bail!(
            "the catalog has {} products in stock, the load needs {PRODUCTS}",
            ids.len()
        );
    }
    for id in &ids {
        uuid::Uuid::parse_str(id).with_context(|| format!("product id {id:?} is not a UUID"))?;
    }
    docker
        .psql(
            "catalog",
            &format!(
                "UPDATE products SET stock = {STOCK} WHERE id IN ({})",
                quoted(&ids)
            ),
        )
        .await?;
    Ok(ids)
}

/// The stock of `products` now.
///
/// # Errors
/// psql failed or answered something else than numbers.
pub async fn stock(docker: &Docker, products: &[String]) -> Result<BTreeMap<String, i64>> {
    let rows = docker
        .psql(
            "catalog",
            &format!(
                "SELECT id, stock FROM products WHERE id IN ({})",
                quoted(products)
            ),
        )
        .await?;
    rows.into_iter()
        .map(|row| match row.as_slice() {
            [id, stock] => Ok((id.clone(), stock.parse().context("stock is not a number")?)),
            _ => bail!("unexpected row {row:?}"),
        })
        .collect()
}

/// `'a', 'b'`: ids (UUIDs, checked by whoever made them) as SQL literals.
fn quoted(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("'{}'", id.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SQL condition selecting the orders whose key (in `column`) starts
/// with `prefix-`.
fn of_prefix(column: &str, prefix: &str) -> String {
    let prefix = format!("{prefix}-").replace('\'', "''");
    format!("left({column}, {}) = '{prefix}'", prefix.chars().count())
}

/// Waits until no order of the scenario is `pending` or `cancelling`.
///
/// # Errors
/// Some are still unresolved after `timeout` (how many, in the error).
pub async fn wait_settled(docker: &Docker, prefix: &str, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let sql = format!(
        "SELECT count(*) FROM orders WHERE {} AND status IN ('pending', 'cancelling')",
        of_prefix("idempotency_key", prefix)
    );
    loop {
        let rows = docker.psql("orders", &sql).await;
        let open = match rows {
            Ok(rows) => rows
                .first()
                .and_then(|r| r.first())
                .and_then(|n| n.parse::<u64>().ok()),
            // orders' database may be briefly unreachable: ask again.
            Err(_) => None,
        };
        if open == Some(0) {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            bail!(
                "{} orders still pending or cancelling {}s after the load stopped",
                open.map_or_else(|| "some".to_owned(), |n| n.to_string()),
                timeout.as_secs()
            );
        }
        sleep(Duration::from_secs(1)).await;
    }
}

/// What the books say about one scenario.
#[derive(Debug, Default, Clone)]
pub struct Books {
    /// Keys the load sent.
    pub keys: usize,
    /// Orders stored for them.
    pub orders: usize,
    /// Of those, confirmed.
    pub confirmed: usize,
    /// Of those, rejected.
    pub rejected: usize,
    /// Order ids a shopper was told that do not exist.
    pub lost: usize,
    /// Keys with more than one order (stored, or told to the shopper).
    pub duplicated: usize,
    /// Keys never answered within the retry bound.
    pub lost_to_client: usize,
    /// Keys answered 409 (the cart was empty: the API's own answer).
    pub empty_cart: usize,
    /// Units of stock the confirmed orders took.
    pub units: i64,
    /// Every discrepancy found, in words; empty when the books are clean.
    pub problems: Vec<String>,
}

/// The rows the audit reads, from each service's own database.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    /// orders: the scenario's orders by id.
    pub orders: BTreeMap<String, Order>,
    /// orders: the ids of every order of the run (any scenario).
    pub all_order_ids: BTreeSet<String>,
    /// orders: units of each product in the scenario's confirmed orders.
    pub confirmed_units: BTreeMap<String, i64>,
    /// payments: every payment by order id.
    pub payments: BTreeMap<String, Payment>,
    /// payments: order ids that have more than one payment row.
    pub doubled_payments: Vec<String>,
    /// catalog: the state of every reservation, by order id.
    pub reservations: BTreeMap<String, String>,
    /// catalog: the stock of the load's products now.
    pub stock_after: BTreeMap<String, i64>,
}

/// An order as orders stored it.
#[derive(Debug, Clone)]
pub struct Order {
    /// Its idempotency key.
    pub key: String,
    /// pending, confirmed, rejected, cancelling, cancelled.
    pub status: String,
    /// Its total.
    pub total_cents: i64,
    /// Its currency.
    pub currency: String,
}

/// A payment as payments stored it.
#[derive(Debug, Clone)]
pub struct Payment {
    /// authorized, declined, captured, voided, refunded.
    pub state: String,
    /// What was taken (0 for a void before any authorization).
    pub amount_cents: i64,
    /// Its currency (`XXX` for a void before any authorization).
    pub currency: String,
}

/// Reads the books of the scenario whose keys start with `prefix` and
/// checks them (see [`check`]) against `keys` and the stock before it.
///
/// # Errors
/// A database could not be read (a discrepancy is not an error: see
/// [`Books::problems`]).
pub async fn audit(
    docker: &Docker,
    prefix: &str,
    keys: &[Key],
    products: &[String],
    stock_before: &BTreeMap<String, i64>,
) -> Result<Books> {
    let tables = read(docker, prefix, products).await?;
    Ok(check(&tables, keys, products, stock_before))
}

/// Reads the [`Tables`] of a scenario.
async fn read(docker: &Docker, prefix: &str, products: &[String]) -> Result<Tables> {
    let mut tables = Tables::default();
    let rows = docker
        .psql(
            "orders",
            &format!(
                "SELECT id, idempotency_key, status, total_cents, currency FROM orders WHERE {}",
                of_prefix("idempotency_key", prefix)
            ),
        )
        .await?;
    for row in rows {
        let [id, key, status, total, currency] = row.as_slice() else {
            bail!("unexpected orders row {row:?}");
        };
        tables.orders.insert(
            id.clone(),
            Order {
                key: key.clone(),
                status: status.clone(),
                total_cents: total.parse().context("total_cents is not a number")?,
                currency: currency.clone(),
            },
        );
    }
    tables.all_order_ids = docker
        .psql("orders", "SELECT id FROM orders")
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    let rows = docker
        .psql(
            "orders",
            &format!(
                "SELECT l.product_id, sum(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id \
                 WHERE o.status = 'confirmed' AND {} GROUP BY l.product_id",
                of_prefix("o.idempotency_key", prefix)
            ),
        )
        .await?;
    for row in rows {
        let [product, units] = row.as_slice() else {
            bail!("unexpected order_lines row {row:?}");
        };
        tables.confirmed_units.insert(
            product.clone(),
            units.parse().context("quantity is not a number")?,
        );
    }
    let rows = docker
        .psql(
            "payments",
            "SELECT order_id, state, amount_cents, currency FROM payments",
        )
        .await?;
    for row in rows {
        let [order, state, amount, currency] = row.as_slice() else {
            bail!("unexpected payments row {row:?}");
        };
        let payment = Payment {
            state: state.clone(),
            amount_cents: amount.parse().context("amount_cents is not a number")?,
            currency: currency.clone(),
        };
        if tables.payments.insert(order.clone(), payment).is_some() {
            tables.doubled_payments.push(order.clone());
        }
    }
    let rows = docker
        .psql("catalog", "SELECT order_id, state FROM reservations")
        .await?;
    for row in rows {
        let [order, state] = row.as_slice() else {
            bail!("unexpected reservations row {row:?}");
        };
        tables.reservations.insert(order.clone(), state.clone());
    }
    tables.stock_after = stock(docker, products).await?;
    Ok(tables)
}

/// Checks a scenario's `tables` against the `keys` its shoppers sent and
/// the stock of `products` before it; every discrepancy is a line of
/// [`Books::problems`].
pub fn check(
    tables: &Tables,
    keys: &[Key],
    products: &[String],
    stock_before: &BTreeMap<String, i64>,
) -> Books {
    let orders = &tables.orders;
    let mut books = Books {
        keys: keys.len(),
        orders: orders.len(),
        confirmed: orders.values().filter(|o| o.status == "confirmed").count(),
        rejected: orders.values().filter(|o| o.status == "rejected").count(),
        ..Books::default()
    };
    let mut problems = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, order) in orders {
        by_key
            .entry(order.key.as_str())
            .or_default()
            .push(id.as_str());
        if order.status != "confirmed" && order.status != "rejected" {
            problems.push(format!(
                "order {id} (key {}) is {}: no shopper cancels, and it should have settled",
                order.key, order.status
            ));
        }
    }

    // Keys against orders.
    let sent: BTreeSet<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    for (key, ids) in &by_key {
        if ids.len() > 1 {
            books.duplicated += 1;
            problems.push(format!(
                "key {key} produced {} orders: {}",
                ids.len(),
                ids.join(", ")
            ));
        }
        if !sent.contains(key) {
            problems.push(format!("key {key} has an order but the load never sent it"));
        }
    }
    for key in keys {
        let stored = by_key.get(key.key.as_str()).map_or(0, Vec::len);
        match &key.outcome {
            KeyOutcome::Told(ids) => {
                let distinct: BTreeSet<&String> = ids.iter().collect();
                if distinct.len() > 1 {
                    books.duplicated += 1;
                    problems.push(format!(
                        "key {} was answered with {} different orders",
                        key.key,
                        distinct.len()
                    ));
                }
                if distinct.is_empty() {
                    problems.push(format!("key {} was answered without an order id", key.key));
                }
                for id in distinct {
                    if orders.get(id).is_none_or(|o| o.key != key.key) {
                        books.lost += 1;
                        problems.push(format!(
                            "order {id} (key {}) was told to the shopper but is not stored under that key",
                            key.key
                        ));
                    }
                }
            }
            KeyOutcome::Refused(status) => {
                if *status == 409 {
                    books.empty_cart += 1;
                }
                if stored != 0 {
                    problems.push(format!(
                        "key {} was refused {status} but produced an order",
                        key.key
                    ));
                }
            }
            KeyOutcome::Lost => {
                books.lost_to_client += 1;
            }
        }
    }

    // One charge per order, matching its state and total.
    for order in &tables.doubled_payments {
        problems.push(format!("order {order} has two payments"));
    }
    for (id, order) in orders {
        match (order.status.as_str(), tables.payments.get(id)) {
            ("confirmed", Some(p)) if p.state != "captured" => {
                problems.push(format!(
                    "confirmed order {id} has its payment {}, not captured",
                    p.state
                ));
            }
            ("confirmed", Some(p))
                if p.amount_cents != order.total_cents || p.currency != order.currency =>
            {
                problems.push(format!(
                    "confirmed order {id} totals {} {} but {} {} was captured",
                    order.total_cents, order.currency, p.amount_cents, p.currency
                ));
            }
            ("confirmed", None) => problems.push(format!("confirmed order {id} has no payment")),
            ("rejected", Some(p)) if p.state != "voided" && p.state != "declined" => {
                problems.push(format!(
                    "rejected order {id} has its payment {}, not voided or declined",
                    p.state
                ));
            }
            _ => {}
        }
    }
    // A charge for an order that does not exist (of any scenario); a void
    // tombstone takes nothing.
    for (order, payment) in &tables.payments {
        if !tables.all_order_ids.contains(order) && payment.state != "voided" {
            problems.push(format!(
                "payment {} for order {order}, which does not exist",
                payment.state
            ));
        }
    }

    // Stock: what the confirmed orders took, and nothing held for others.
    books.units = tables.confirmed_units.values().sum();
    for product in products {
        let before = stock_before.get(product).copied().unwrap_or_default();
        let after = tables.stock_after.get(product).copied().unwrap_or_default();
        let sold = tables
            .confirmed_units
            .get(product)
            .copied()
            .unwrap_or_default();
        if before - after != sold {
            problems.push(format!(
                "product {product}: stock went {before} → {after} ({} units) but confirmed orders took {sold}",
                before - after
            ));
        }
    }
    for product in tables.confirmed_units.keys() {
        if !products.contains(product) {
            problems.push(format!(
                "confirmed orders took product {product}, which the load never buys"
            ));
        }
    }
    for (id, order) in orders {
        match (
            order.status.as_str(),
            tables.reservations.get(id).map(String::as_str),
        ) {
            ("confirmed", Some("reserved")) => {}
            ("confirmed", other) => problems.push(format!(
                "confirmed order {id} has its reservation {}",
                other.unwrap_or("missing")
            )),
            (status, Some("reserved")) => {
                problems.push(format!("{status} order {id} still holds its reservation"));
            }
            _ => {}
        }
    }
    books.problems = problems;
    books
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCT: &str = "0196a1c0-5e00-7000-8000-000000000001";

    /// Two keys, two confirmed orders of 2 units of 1000 cents each, paid,
    /// reserved and taken from stock: clean books.
    fn clean() -> (Tables, Vec<Key>, BTreeMap<String, i64>) {
        let mut tables = Tables::default();
        let mut keys = Vec::new();
        for n in 1..=2 {
            let id = format!("order-{n}");
            let key = format!("run-scenario-0-{n}");
            tables.orders.insert(
                id.clone(),
                Order {
                    key: key.clone(),
                    status: "confirmed".into(),
                    total_cents: 1000,
                    currency: "EUR".into(),
                },
            );
            tables.all_order_ids.insert(id.clone());
            tables.payments.insert(
                id.clone(),
                Payment {
                    state: "captured".into(),
                    amount_cents: 1000,
                    currency: "EUR".into(),
                },
            );
            tables.reservations.insert(id.clone(), "reserved".into());
            keys.push(Key {
                key,
                outcome: KeyOutcome::Told(vec![id]),
            });
        }
        tables.confirmed_units.insert(PRODUCT.into(), 4);
        tables.stock_after.insert(PRODUCT.into(), STOCK - 4);
        (tables, keys, [(PRODUCT.to_owned(), STOCK)].into())
    }

    fn problems(tables: &Tables, keys: &[Key], before: &BTreeMap<String, i64>) -> Vec<String> {
        check(tables, keys, &[PRODUCT.to_owned()], before).problems
    }

    #[test]
    fn clean_books_have_no_problem() {
        let (tables, keys, before) = clean();
        let books = check(&tables, &keys, &[PRODUCT.to_owned()], &before);
        assert_eq!(books.problems, Vec::<String>::new());
        assert_eq!((books.orders, books.confirmed, books.units), (2, 2, 4));
    }

    #[test]
    fn a_told_order_missing_is_lost() {
        let (mut tables, keys, before) = clean();
        tables.orders.remove("order-1");
        let books = check(&tables, &keys, &[PRODUCT.to_owned()], &before);
        assert_eq!(books.lost, 1);
    }

    #[test]
    fn a_key_answered_with_two_orders_is_a_duplicate() {
        let (tables, mut keys, before) = clean();
        if let Some(KeyOutcome::Told(ids)) = keys.first_mut().map(|k| &mut k.outcome) {
            ids.push("order-2".into());
        }
        let books = check(&tables, &keys, &[PRODUCT.to_owned()], &before);
        assert_eq!(books.duplicated, 1);
    }

    #[test]
    fn payments_must_match_the_order() {
        let (mut tables, keys, before) = clean();
        if let Some(p) = tables.payments.get_mut("order-1") {
            p.amount_cents = 999;
        }
        if let Some(p) = tables.payments.get_mut("order-2") {
            p.state = "authorized".into();
        }
        tables.payments.insert(
            "order-9".into(),
            Payment {
                state: "captured".into(),
                amount_cents: 5,
                currency: "EUR".into(),
            },
        );
        let found = problems(&tables, &keys, &before);
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn stock_and_reservations_must_match_the_confirmed_orders() {
        let (mut tables, keys, before) = clean();
        tables.stock_after.insert(PRODUCT.into(), STOCK - 5);
        tables
            .reservations
            .insert("order-1".into(), "released".into());
        let found = problems(&tables, &keys, &before);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn an_unsettled_order_and_a_refused_key_with_an_order_are_problems() {
        let (mut tables, mut keys, before) = clean();
        if let Some(o) = tables.orders.get_mut("order-2") {
            o.status = "pending".into();
        }
        tables.confirmed_units.insert(PRODUCT.into(), 2);
        tables.stock_after.insert(PRODUCT.into(), STOCK - 2);
        tables
            .reservations
            .insert("order-2".into(), "reserved".into());
        if let Some(k) = keys.first_mut() {
            k.outcome = KeyOutcome::Refused(409);
        }
        let found = problems(&tables, &keys, &before);
        // pending; still holds its reservation; key refused but ordered.
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
