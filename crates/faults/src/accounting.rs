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

/// The SQL condition selecting the orders whose key starts with `prefix-`.
fn of_prefix(prefix: &str) -> String {
    let prefix = format!("{prefix}-").replace('\'', "''");
    format!(
        "left(idempotency_key, {}) = '{prefix}'",
        prefix.chars().count()
    )
}

/// Waits until no order of the scenario is `pending` or `cancelling`.
///
/// # Errors
/// Some are still unresolved after `timeout` (how many, in the error).
pub async fn wait_settled(docker: &Docker, prefix: &str, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let sql = format!(
        "SELECT count(*) FROM orders WHERE {} AND status IN ('pending', 'cancelling')",
        of_prefix(prefix)
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

/// An order as orders stored it.
#[derive(Debug, Clone)]
struct Order {
    key: String,
    status: String,
    total_cents: i64,
    currency: String,
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

/// Reads the books of the scenario whose keys start with `prefix` and
/// checks them against `keys` and the stock before it (`stock_before`).
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
    let mut books = Books {
        keys: keys.len(),
        ..Books::default()
    };
    let problems = &mut books.problems;

    // Orders of this scenario, by id, and by key.
    let rows = docker
        .psql(
            "orders",
            &format!(
                "SELECT id, idempotency_key, status, total_cents, currency FROM orders WHERE {}",
                of_prefix(prefix)
            ),
        )
        .await?;
    let mut orders: BTreeMap<String, Order> = BTreeMap::new();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let [id, key, status, total, currency] = row.as_slice() else {
            bail!("unexpected orders row {row:?}");
        };
        by_key.entry(key.clone()).or_default().push(id.clone());
        orders.insert(
            id.clone(),
            Order {
                key: key.clone(),
                status: status.clone(),
                total_cents: total.parse().context("total_cents is not a number")?,
                currency: currency.clone(),
            },
        );
    }
    books.orders = orders.len();
    books.confirmed = orders.values().filter(|o| o.status == "confirmed").count();
    books.rejected = orders.values().filter(|o| o.status == "rejected").count();
    for order in orders.values() {
        if order.status != "confirmed" && order.status != "rejected" {
            problems.push(format!(
                "order with key {} is {} (no shopper cancels)",
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
        if !sent.contains(key.as_str()) {
            problems.push(format!("key {key} has an order but the load never sent it"));
        }
    }
    for key in keys {
        let stored = by_key.get(&key.key).map_or(0, Vec::len);
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
                for id in distinct {
                    if orders.get(id).is_none_or(|o| o.key != key.key) {
                        books.lost += 1;
                        problems.push(format!(
                            "order {id} (key {}) was told to the shopper but is not stored",
                            key.key
                        ));
                    }
                }
                if stored != 1 && ids.is_empty() {
                    problems.push(format!("key {} was answered without an order id", key.key));
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
                if stored > 1 {
                    problems.push(format!(
                        "key {} (never answered) produced {stored} orders",
                        key.key
                    ));
                }
            }
        }
    }

    // One charge per order, matching its state and total.
    let rows = docker
        .psql(
            "payments",
            "SELECT order_id, state, amount_cents, currency FROM payments",
        )
        .await?;
    let mut payments: BTreeMap<String, (String, i64, String)> = BTreeMap::new();
    for row in rows {
        let [order, state, amount, currency] = row.as_slice() else {
            bail!("unexpected payments row {row:?}");
        };
        let amount = amount.parse().context("amount_cents is not a number")?;
        if payments
            .insert(order.clone(), (state.clone(), amount, currency.clone()))
            .is_some()
        {
            problems.push(format!("order {order} has two payments"));
        }
    }
    for (id, order) in &orders {
        match (order.status.as_str(), payments.get(id)) {
            ("confirmed", Some((state, amount, currency))) => {
                if state != "captured" {
                    problems.push(format!(
                        "confirmed order {id} has its payment {state}, not captured"
                    ));
                } else if *amount != order.total_cents || *currency != order.currency {
                    problems.push(format!(
                        "confirmed order {id} totals {} {} but captured {amount} {currency}",
                        order.total_cents, order.currency
                    ));
                }
            }
            ("confirmed", None) => problems.push(format!("confirmed order {id} has no payment")),
            ("rejected", Some((state, _, _))) if state != "voided" && state != "declined" => {
                problems.push(format!(
                    "rejected order {id} has its payment {state}, not voided or declined"
                ));
            }
            _ => {}
        }
    }
    // A charge for an order that does not exist (any scenario's).
    let all_orders: BTreeSet<String> = docker
        .psql("orders", "SELECT id FROM orders")
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    for (order, (state, _, _)) in &payments {
        if !all_orders.contains(order) && state != "voided" {
            problems.push(format!(
                "payment {state} for order {order}, which does not exist"
            ));
        }
    }

    // Stock: what the confirmed orders took, and nothing held for others.
    let rows = docker
        .psql(
            "orders",
            &format!(
                "SELECT l.product_id, sum(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id \
                 WHERE o.status = 'confirmed' AND left(o.idempotency_key, {}) = '{}' GROUP BY l.product_id",
                prefix.chars().count() + 1,
                format!("{prefix}-").replace('\'', "''")
            ),
        )
        .await?;
    let mut taken: BTreeMap<String, i64> = BTreeMap::new();
    for row in rows {
        let [product, units] = row.as_slice() else {
            bail!("unexpected order_lines row {row:?}");
        };
        taken.insert(
            product.clone(),
            units.parse().context("quantity is not a number")?,
        );
    }
    books.units = taken.values().sum();
    let stock_after = stock(docker, products).await?;
    for product in products {
        let before = stock_before.get(product).copied().unwrap_or_default();
        let after = stock_after.get(product).copied().unwrap_or_default();
        let sold = taken.get(product).copied().unwrap_or_default();
        if before - after != sold {
            problems.push(format!(
                "product {product}: stock went {before} → {after} ({} units) but confirmed orders took {sold}",
                before - after
            ));
        }
    }
    for product in taken.keys() {
        if !products.contains(product) {
            problems.push(format!(
                "confirmed orders took product {product}, which the load never buys"
            ));
        }
    }
    let rows = docker
        .psql("catalog", "SELECT order_id, state FROM reservations")
        .await?;
    let mut reserved = 0;
    for row in rows {
        let [order, state] = row.as_slice() else {
            bail!("unexpected reservations row {row:?}");
        };
        let Some(found) = orders.get(order) else {
            continue;
        };
        match (found.status.as_str(), state.as_str()) {
            ("confirmed", "reserved") => reserved += 1,
            ("confirmed", other) => problems.push(format!(
                "confirmed order {order} has its reservation {other}"
            )),
            (status, "reserved") => problems.push(format!(
                "{status} order {order} still holds its reservation"
            )),
            _ => {}
        }
    }
    if reserved != books.confirmed {
        problems.push(format!(
            "{} confirmed orders but {reserved} reservations held for them",
            books.confirmed
        ));
    }
    Ok(books)
}
