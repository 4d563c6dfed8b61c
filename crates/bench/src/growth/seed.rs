//! Seeding: brings the users, catalog and orders databases up to a size,
//! adding only the rows that are missing.
//!
//! The schemas are the services' own (their migrations ran when `shop`
//! started on the empty store); this writes rows exactly as the services
//! do, with multi-row `INSERT`s in large transactions, the same SQL on
//! SQLite and PostgreSQL. Seeded orders are settled (`confirmed`, no saga
//! step, no outbox row: a delivered outbox row is purged after the
//! retention, so old orders have none).

use std::time::Instant;

use anyhow::{Context as _, ensure};
use argon2::Argon2;
use argon2::password_hash::PasswordHasher as _;
use sqlx::{AnyConnection, Connection as _, Row as _};

use super::rows::{self, MAX_ROWS, USERS};

/// Rows per `INSERT` on PostgreSQL: at most 7 bound values each, so 7,000
/// per statement, below its bound-parameter limit (65,535).
const ROWS_PER_INSERT: u64 = 1_000;
/// Rows per `INSERT` on SQLite: fewer, because binding costs time linear in
/// the statement's parameter count per parameter (SQLite looks each `$N`
/// name up in a list), so a statement's cost grows with its square; at 100
/// rows that is negligible and statements are still few.
const ROWS_PER_INSERT_SQLITE: u64 = 100;
/// Rows per transaction: large, so commits (and PostgreSQL's WAL flushes)
/// are few.
const ROWS_PER_TRANSACTION: u64 = 100_000;

/// What one table's seeding did.
#[derive(Debug)]
pub struct Seeded {
    /// The table (or tables) seeded.
    pub table: &'static str,
    /// Seeded rows found before.
    pub before: u64,
    /// Rows added.
    pub added: u64,
    /// Seconds it took, counting and settling (`VACUUM ANALYZE`) included.
    pub seconds: f64,
}

/// Whether `url` names a PostgreSQL database (else SQLite).
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// Rows per `INSERT` on the database of `url`.
fn rows_per_insert(url: &str) -> u64 {
    if is_postgres(url) {
        ROWS_PER_INSERT
    } else {
        ROWS_PER_INSERT_SQLITE
    }
}

/// A connection for seeding. On SQLite, commits are not flushed to disk
/// (`synchronous = OFF`): a crash while seeding means seeding again, and
/// the service's own connections keep their settings.
async fn connect(url: &str) -> anyhow::Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    if !is_postgres(url) {
        sqlx::raw_sql(
            "PRAGMA synchronous = OFF; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -262144;",
        )
        .execute(&mut conn)
        .await?;
    }
    Ok(conn)
}

/// After seeding, the database as it settles on its own soon after such a
/// load, so the measurement does not share the machine with the load's
/// aftermath: PostgreSQL's tables vacuumed and analysed (what autovacuum
/// does after a million inserts, for seconds of CPU) and the load's dirty
/// pages written out (`CHECKPOINT`, what the checkpointer would do within
/// its timeout); SQLite's WAL folded back into the database so the service
/// does not start on a huge one.
async fn settle(conn: &mut AnyConnection, url: &str, tables: &[&str]) -> anyhow::Result<()> {
    if is_postgres(url) {
        for table in tables {
            sqlx::raw_sql(&format!("VACUUM ANALYZE {table}"))
                .execute(&mut *conn)
                .await?;
        }
        sqlx::raw_sql("CHECKPOINT").execute(&mut *conn).await?;
    } else {
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `rows` copies of `template`, each `?` in it made a placeholder numbered
/// on from `first` (`$1`, `$2`, …, which both databases take).
fn values(template: &str, rows: u64, first: usize) -> String {
    let mut out = String::with_capacity(template.len() * usize::try_from(rows).unwrap_or(0) * 2);
    let mut next = first;
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        for c in template.chars() {
            if c == '?' {
                out.push('$');
                out.push_str(&next.to_string());
                next += 1;
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// How many rows `sql` counts, with `binds` bound.
async fn count(conn: &mut AnyConnection, sql: &str, binds: &[&str]) -> anyhow::Result<u64> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let found: i64 = query.fetch_one(&mut *conn).await?.try_get(0)?;
    Ok(u64::try_from(found).unwrap_or(0))
}

/// Seeds the users database up to [`USERS`] users, all with the hash of
/// [`rows::PASSWORD`] (one Argon2id hash, computed once, as users makes them).
///
/// # Errors
/// When the database cannot be reached or a statement fails.
pub async fn users(url: &str) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let mut conn = connect(url).await?;
    let rows_per_insert = rows_per_insert(url);
    let before = count(
        &mut conn,
        "SELECT COUNT(*) FROM users WHERE username >= $1 AND username < $2",
        &[rows::USERNAME_RANGE.0, rows::USERNAME_RANGE.1],
    )
    .await?;
    if before < USERS {
        let hash = Argon2::default()
            .hash_password(rows::PASSWORD.as_bytes())
            .map_err(|err| anyhow::anyhow!("hashing the password: {err}"))?
            .to_string();
        let mut tx = conn.begin().await?;
        let mut n = before;
        while n < USERS {
            let batch = rows_per_insert.min(USERS - n);
            // The hash is bound once, as $1, for every row.
            let sql = format!(
                "INSERT INTO users (id, username, email, email_key, password_hash, created_at) VALUES {}",
                values("(?, ?, ?, ?, $1, ?)", batch, 2)
            );
            let mut query = sqlx::query(&sql).bind(hash.clone());
            for k in n..n + batch {
                let name = rows::username(k);
                let email = format!("{name}@example.com");
                query = query
                    .bind(rows::user_id(k).to_string())
                    .bind(name)
                    .bind(email.clone())
                    .bind(email)
                    .bind(rows::user_created_at(k));
            }
            query.execute(&mut *tx).await?;
            n += batch;
        }
        tx.commit().await?;
    }
    settle(&mut conn, url, &["users"]).await?;
    conn.close().await?;
    Ok(Seeded {
        table: "users",
        before,
        added: USERS.saturating_sub(before),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Seeds the catalog up to `target` products (the demo catalog not
/// counted), each with [`rows::STOCK`] units.
///
/// # Errors
/// When `target` is above [`MAX_ROWS`], the database cannot be reached or a
/// statement fails.
pub async fn products(url: &str, target: u64) -> anyhow::Result<Seeded> {
    ensure!(target <= MAX_ROWS, "at most {MAX_ROWS} products");
    let started = Instant::now();
    let mut conn = connect(url).await?;
    let rows_per_insert = rows_per_insert(url);
    let before = count(
        &mut conn,
        "SELECT COUNT(*) FROM products WHERE sku >= $1 AND sku < $2",
        &[rows::SKU_RANGE.0, rows::SKU_RANGE.1],
    )
    .await?;
    let mut n = before;
    while n < target {
        let end = target.min(n + ROWS_PER_TRANSACTION);
        let mut tx = conn.begin().await?;
        while n < end {
            let batch = rows_per_insert.min(end - n);
            let sql = format!(
                "INSERT INTO products (id, sku, name, description, price_cents, currency, image, stock) VALUES {}",
                values(
                    &format!("(?, ?, ?, ?, ?, 'EUR', NULL, {})", rows::STOCK),
                    batch,
                    1
                )
            );
            let mut query = sqlx::query(&sql);
            for k in n..n + batch {
                let (id, sku, name, description, price) = rows::product(k);
                query = query
                    .bind(id)
                    .bind(sku)
                    .bind(name)
                    .bind(description)
                    .bind(price);
            }
            query.execute(&mut *tx).await?;
            n += batch;
        }
        tx.commit().await?;
    }
    settle(&mut conn, url, &["products"]).await?;
    conn.close().await?;
    Ok(Seeded {
        table: "products",
        before,
        added: target.saturating_sub(before),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Seeds the orders database up to `target` settled orders (with their
/// lines) spread over the [`USERS`] users and over most of a year.
///
/// # Errors
/// When `target` is above [`MAX_ROWS`], the database cannot be reached or a
/// statement fails.
pub async fn orders(url: &str, target: u64) -> anyhow::Result<Seeded> {
    ensure!(target <= MAX_ROWS, "at most {MAX_ROWS} orders");
    let started = Instant::now();
    let mut conn = connect(url).await?;
    let rows_per_insert = rows_per_insert(url);
    let bound = rows::order_id_bound();
    let before = count(
        &mut conn,
        "SELECT COUNT(*) FROM orders WHERE id < $1",
        &[bound.as_str()],
    )
    .await?;
    let mut n = before;
    while n < target {
        let end = target.min(n + ROWS_PER_TRANSACTION);
        let mut tx = conn.begin().await?;
        while n < end {
            let batch = rows_per_insert.min(end - n);
            let orders: Vec<_> = (n..n + batch).map(rows::order).collect();
            let sql = format!(
                "INSERT INTO orders (id, user_id, idempotency_key, status, total_cents, currency, created_at, updated_at, \
                 saga_step, saga_attempts, saga_due_at, payment_token, cart_version, traceparent) VALUES {}",
                values(
                    &format!(
                        "(?, ?, ?, 'confirmed', ?, 'EUR', ?, ?, NULL, 0, NULL, '{}', 1, NULL)",
                        rows::PAYMENT_TOKEN
                    ),
                    batch,
                    1
                )
            );
            let mut query = sqlx::query(&sql);
            for order in &orders {
                query = query
                    .bind(order.id.clone())
                    .bind(order.user_id.clone())
                    .bind(order.idempotency_key.clone())
                    .bind(order.total_cents)
                    .bind(order.created_at.clone())
                    .bind(order.updated_at.clone());
            }
            query.execute(&mut *tx).await?;
            let lines: Vec<_> = orders
                .iter()
                .flat_map(|order| {
                    order
                        .lines
                        .iter()
                        .zip(0_i64..)
                        .map(move |(line, line_no)| (order.id.clone(), line_no, line))
                })
                .collect();
            for chunk in lines.chunks(usize::try_from(rows_per_insert).unwrap_or(100)) {
                let sql = format!(
                    "INSERT INTO order_lines (order_id, line_no, product_id, name, unit_price_cents, quantity, line_total_cents) VALUES {}",
                    values("(?, ?, ?, ?, ?, ?, ?)", chunk.len() as u64, 1)
                );
                let mut query = sqlx::query(&sql);
                for (order_id, line_no, line) in chunk {
                    query = query
                        .bind(order_id.clone())
                        .bind(*line_no)
                        .bind(line.product_id.clone())
                        .bind(line.name.clone())
                        .bind(line.unit_price_cents)
                        .bind(line.quantity)
                        .bind(line.unit_price_cents * line.quantity);
                }
                query.execute(&mut *tx).await?;
            }
            n += batch;
        }
        tx.commit().await?;
    }
    settle(&mut conn, url, &["orders", "order_lines"]).await?;
    conn.close().await?;
    Ok(Seeded {
        table: "orders",
        before,
        added: target.saturating_sub(before),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_number_placeholders_across_rows() {
        assert_eq!(values("(?, 'x', ?)", 2, 3), "($3, 'x', $4), ($5, 'x', $6)");
        assert_eq!(values("(?, $1)", 2, 2), "($2, $1), ($3, $1)");
    }
}
