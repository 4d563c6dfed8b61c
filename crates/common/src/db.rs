//! Databases: one connection path for `sqlite:` and `postgres:` URLs.
//!
//! Stores use sqlx's `Any` driver so one set of queries (with `$1`
//! placeholders and portable SQL) runs on both; ids and timestamps are stored
//! as text. SQLite files (and their directories) are created, run in WAL mode
//! with a busy timeout and foreign keys on.
//!
//! The readiness check of a [`Db`] ([`ReadinessCheck`]) never takes a
//! pooled connection: it keeps one connection of its own
//! ([`READINESS_CONNECTIONS`]), so a pool saturated by requests does not
//! make the instance not-ready (and push its load onto the others), while a
//! database that stops answering still does.
//!
//! Pool saturation is measured per service (the [`metrics::scope`] the
//! pool is opened in): [`DB_POOL_CONNECTIONS`] in use and idle and
//! [`DB_POOL_MAX_CONNECTIONS`], read from the pools when `/metrics` is
//! rendered (summed over a service's pools: the all-in-one binary runs two
//! cart replicas), and [`DB_POOL_ACQUIRE_DURATION`], the wait for a
//! connection where [`Db`] takes one.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Once, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyPoolOptions, AnyRow, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::DatabaseSettings;
use crate::health::ReadinessCheck;
use crate::metrics;

/// Connections of a service's pools, by `service` and `state` (`in_use`,
/// `idle`); their sum is the connections open.
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// The most connections a service's pools may open, by `service`.
pub const DB_POOL_MAX_CONNECTIONS: &str = "db_pool_max_connections";
/// Seconds waited for a pooled connection, by `service`: in
/// [`Db::acquire`], and in [`Db::begin_write`] where the wait includes
/// `BEGIN` (on PostgreSQL a round trip). A pool at its maximum shows here
/// first.
pub const DB_POOL_ACQUIRE_DURATION: &str = "db_pool_acquire_duration_seconds";

/// Milliseconds a SQLite connection waits on a locked database before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// Extra tries of a SQLite migration that lost a race with another process.
const SQLITE_MIGRATE_RETRIES: u32 = 5;

/// A pooled connection idle for at least this long is pinged before it is
/// handed out (and replaced if the ping fails). sqlx's default pings on
/// every acquire: one extra round trip per query or transaction, which on
/// the checkout path was about a third of all database round trips. A
/// connection in steady use is known to be alive; one that sat idle may
/// have been closed by the server or a proxy.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(10);

/// Connections a [`Db`]'s readiness check holds beside the pool: one, opened
/// at the first check, kept between checks and reopened after a failure.
/// Every instance of a service with a database may therefore hold
/// `database.max_connections + READINESS_CONNECTIONS` connections; the
/// deployment check (`shop-deploy-check`) counts them against PostgreSQL's
/// limit.
pub const READINESS_CONNECTIONS: u32 = 1;

/// The longest one readiness check of a [`Db`] takes (connecting included)
/// before it counts as failed.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Which SQL engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("database.url: unsupported scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    /// The directory for a SQLite file could not be created.
    #[error("cannot create the directory for {path}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to the {0:?} database")]
    Connect(Backend, #[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// A pooled connection to a service's own database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: whose turn it is to write (see [`Db::begin_write`]).
    write_turn: Option<Arc<Mutex<()>>>,
    /// The readiness check's own connection (see [`READINESS_CONNECTIONS`]).
    probe: Arc<Probe>,
    /// [`DB_POOL_ACQUIRE_DURATION`] of the pool's service.
    acquire_duration: ::metrics::Histogram,
    /// Keeps the pool among those sampled (see [`watch_pool`]) while a
    /// clone of this `Db` lives.
    _watched: Arc<WatchedPool>,
}

/// The readiness check's connection, outside the pool: `None` until the
/// first check, and again after a failed one (the next reopens it).
#[derive(Debug)]
struct Probe {
    /// The URL the pool was opened with (a SQLite file prepared to exist).
    url: SecretString,
    connection: Mutex<Option<AnyConnection>>,
}

/// A transaction that writes, from [`Db::begin_write`]. Dereferences to
/// the connection, like a `Transaction` (`.execute(&mut *tx)`); rolled
/// back when dropped without [`commit`](WriteTransaction::commit).
pub struct WriteTransaction {
    tx: Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTransaction {
    /// Commits, then gives the write turn to the next writer.
    ///
    /// # Errors
    /// The database's error.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then gives the write turn to the next writer.
    ///
    /// # Errors
    /// The database's error.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Db {
    /// Connects to the database in `settings`, creating a SQLite file if needed.
    ///
    /// # Errors
    /// [`DbError`] when the URL is unsupported, the file cannot be created or
    /// the server cannot be reached within the acquire timeout.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, DbError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(install_default_drivers);

        let url = settings.url.expose_secret();
        let backend = backend_of(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_WHEN_IDLE_FOR {
                        return Ok(true);
                    }
                    // `false` closes this connection; the pool takes another.
                    Ok(conn.ping().await.is_ok())
                })
            });
        let options = match backend {
            Backend::Sqlite => options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"
                        )
                        .as_str(),
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres if settings.statement_timeout_ms > 0 => {
                let timeout_ms = settings.statement_timeout_ms;
                options.after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        conn.execute(format!("SET statement_timeout = {timeout_ms}").as_str())
                            .await?;
                        Ok(())
                    })
                })
            }
            Backend::Postgres => options,
        };
        let pool = options
            .connect(&url)
            .await
            .map_err(|err| DbError::Connect(backend, err))?;
        let write_turn = (backend == Backend::Sqlite).then(|| write_turn_of(&url));
        let service = metrics::current_service();
        // Installs the recorder first: handles taken without one record nothing.
        let watched = watch_pool(service, &pool);
        Ok(Self {
            pool,
            backend,
            write_turn,
            probe: Arc::new(Probe {
                url: SecretString::from(url),
                connection: Mutex::new(None),
            }),
            acquire_duration: ::metrics::histogram!(DB_POOL_ACQUIRE_DURATION, "service" => service),
            _watched: watched,
        })
    }

    /// Applies `migrator`'s pending migrations.
    ///
    /// # Errors
    /// [`DbError::Migrate`] when a migration fails or the applied ones were changed.
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), DbError> {
        // PostgreSQL serialises concurrent migrators with an advisory lock;
        // sqlx takes no lock on SQLite, so two replicas starting together on
        // one fresh file race and the loser fails (its migration rolls back
        // whole). Retrying then finds the migration applied and skips it.
        if self.backend == Backend::Postgres {
            // A migration may rewrite a large table, and a migrator may wait
            // on another's lock: neither is bounded by the statement timeout.
            // The connection is closed after, never serving a request untimed.
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|err| DbError::Migrate(err.into()))?;
            conn.execute("SET statement_timeout = 0")
                .await
                .map_err(|err| DbError::Migrate(err.into()))?;
            let result = migrator.run(&mut *conn).await;
            conn.close().await.ok();
            return result.map_err(DbError::Migrate);
        }
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(err) if self.backend == Backend::Sqlite && attempt < SQLITE_MIGRATE_RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %err, attempt, "SQLite migration raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(err) => return Err(DbError::Migrate(err)),
            }
        }
    }

    /// The connection pool, for store queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A connection from the pool, the wait recorded in
    /// [`DB_POOL_ACQUIRE_DURATION`].
    ///
    /// # Errors
    /// The pool's error (its acquire timeout, a closed pool).
    pub async fn acquire(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        let started = Instant::now();
        let connection = self.pool.acquire().await;
        self.acquire_duration
            .record(started.elapsed().as_secs_f64());
        connection
    }

    /// Begins a transaction that will write.
    ///
    /// On SQLite, writers of this process first queue for their turn (a
    /// fair async mutex), so that at most one of them holds SQLite's write
    /// lock at a time. Otherwise concurrent writers meet `SQLITE_BUSY` and
    /// SQLite's busy handler makes them sleep and poll (1, 2, 5, 10 ms…):
    /// under load that, not the work, set the latency. Writers in other
    /// processes on the same file still meet the busy handler. On
    /// PostgreSQL this is a plain `begin`; row locks order the writers.
    ///
    /// # Errors
    /// The database's error.
    pub async fn begin_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        let turn = self.write_turn().await;
        // Timed after the write turn: the wait for the pool, not for the
        // other writers.
        let started = Instant::now();
        let tx = self.pool.begin().await;
        self.acquire_duration
            .record(started.elapsed().as_secs_f64());
        Ok(WriteTransaction {
            tx: tx?,
            _turn: turn,
        })
    }

    /// Waits for the write turn (SQLite; `None` on PostgreSQL) for a write
    /// outside [`Db::begin_write`], e.g. one `UPDATE`: hold it while the
    /// statement runs.
    pub async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.write_turn {
            Some(turn) => Some(Arc::clone(turn).lock_owned().await),
            None => None,
        }
    }

    /// The SQL engine behind this pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `SELECT 1`.
    ///
    /// # Errors
    /// The database error when the database does not answer.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut connection = self.acquire().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *connection)
            .await
            .map(drop)
    }

    /// Runs `statement`, a `SELECT COUNT(*) …`, and returns the count.
    ///
    /// # Errors
    /// The database's error.
    pub async fn count(&self, statement: &str) -> Result<i64, sqlx::Error> {
        let mut connection = self.acquire().await?;
        sqlx::query(statement)
            .fetch_one(&mut *connection)
            .await?
            .try_get(0)
    }

    /// Deletes up to `limit` rows of `table` whose `stamp` column is before
    /// `before` (a [`timestamp_text`]), oldest first, in one statement that
    /// holds the write turn; returns how many. Rows whose `stamp` is NULL
    /// never compare as before, so they stay. `key` is a column unique per
    /// row. Call again while it returns `limit` ([`delete_in_batches`]).
    ///
    /// The names are spliced into the statement, so they are `'static`:
    /// code's own names, never input.
    ///
    /// # Errors
    /// The database's error.
    pub async fn delete_oldest(
        &self,
        table: &'static str,
        key: &'static str,
        stamp: &'static str,
        before: &str,
        limit: u32,
    ) -> Result<u64, sqlx::Error> {
        // `IN (SELECT … LIMIT)`: neither database takes `DELETE … LIMIT`.
        let statement = format!(
            "DELETE FROM {table} WHERE {key} IN ( \
               SELECT {key} FROM {table} WHERE {stamp} < $1 ORDER BY {stamp} LIMIT $2)"
        );
        let _turn = self.write_turn().await;
        let mut connection = self.acquire().await?;
        Ok(sqlx::query(&statement)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&mut *connection)
            .await?
            .rows_affected())
    }

    /// Closes the pool, waiting for connections in use to be returned, and
    /// the readiness check's connection.
    pub async fn close(&self) {
        self.pool.close().await;
        let probe = self.probe.connection.lock().await.take();
        if let Some(connection) = probe {
            connection.close().await.ok();
        }
    }

    /// Runs `SELECT 1` on the readiness check's own connection, opening it
    /// first when there is none; a failure drops it, so the next check
    /// opens a fresh one. Checks take turns on the one connection.
    async fn probe(&self) -> Result<(), String> {
        if self.pool.is_closed() {
            return Err("database pool is closed".to_owned());
        }
        let mut slot = self.probe.connection.lock().await;
        // Taken out while in use: if this future is dropped mid-query (a
        // caller's timeout), the connection goes with it, never reused in
        // an unknown state.
        let connection = match slot.take() {
            Some(connection) => connection,
            None => AnyConnection::connect(self.probe.url.expose_secret())
                .await
                .map_err(|err| {
                    tracing::debug!(error = %err, "readiness: cannot connect to the database");
                    "database does not accept a connection".to_owned()
                })?,
        };
        let mut connection = connection;
        match sqlx::query("SELECT 1").execute(&mut connection).await {
            Ok(_) => {
                *slot = Some(connection);
                Ok(())
            }
            Err(err) => {
                tracing::debug!(error = %err, "readiness: the database does not answer");
                connection.close_hard().await.ok();
                Err("database does not answer".to_owned())
            }
        }
    }
}

/// `SELECT 1` on a connection of its own, never one of the pool's (see the
/// module documentation), within [`READINESS_TIMEOUT`].
impl ReadinessCheck for Db {
    fn name(&self) -> &str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match tokio::time::timeout(READINESS_TIMEOUT, self.probe()).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "database did not answer within {} s",
                    READINESS_TIMEOUT.as_secs()
                )),
            }
        })
    }
}

/// A pool whose gauges [`sample_pools`] sets.
#[derive(Debug)]
struct WatchedPool(AnyPool);

/// The pools sampled, by service: weak, so a `Db` dropped without
/// [`close`](Db::close) does not keep its connections open.
type Watched = Vec<(&'static str, std::sync::Weak<WatchedPool>)>;
static POOLS: std::sync::Mutex<Watched> = std::sync::Mutex::new(Vec::new());

/// Adds `pool` to the pools sampled at every render of `/metrics` and
/// sets `service`'s gauges at once, so they show from start-up.
fn watch_pool(service: &'static str, pool: &AnyPool) -> Arc<WatchedPool> {
    // Gauges set before the recorder exists would be lost.
    metrics::handle();
    static COLLECTOR: Once = Once::new();
    COLLECTOR.call_once(|| metrics::on_render(sample_pools));
    let watched = Arc::new(WatchedPool(pool.clone()));
    POOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((service, Arc::downgrade(&watched)));
    sample_pools();
    watched
}

/// Sets every service's pool gauges from its open pools (summed); a
/// service whose pools are all closed or dropped reads 0, and those pools
/// are forgotten.
fn sample_pools() {
    #[derive(Default)]
    struct Totals {
        in_use: u64,
        idle: u64,
        max: u64,
    }
    let mut services: HashMap<&'static str, Totals> = HashMap::new();
    POOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|(service, watched)| {
            let totals = services.entry(service).or_default();
            let Some(watched) = watched.upgrade().filter(|pool| !pool.0.is_closed()) else {
                return false;
            };
            let pool = &watched.0;
            let size = u64::from(pool.size());
            let idle = (pool.num_idle() as u64).min(size);
            totals.in_use += size - idle;
            totals.idle += idle;
            totals.max += u64::from(pool.options().get_max_connections());
            true
        });
    for (service, totals) in services {
        ::metrics::gauge!(DB_POOL_CONNECTIONS, "service" => service, "state" => "in_use")
            .set(totals.in_use as f64);
        ::metrics::gauge!(DB_POOL_CONNECTIONS, "service" => service, "state" => "idle")
            .set(totals.idle as f64);
        ::metrics::gauge!(DB_POOL_MAX_CONNECTIONS, "service" => service).set(totals.max as f64);
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl)
    }
}

/// The write turn of one SQLite database, shared by every [`Db`] of this
/// process on it (the all-in-one binary runs two cart replicas on one
/// file). Keyed by the prepared URL; the few entries live as long as the
/// process.
fn write_turn_of(url: &str) -> Arc<Mutex<()>> {
    static TURNS: OnceLock<std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let turns = TURNS.get_or_init(Default::default);
    let mut turns = turns
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(turns.entry(url.to_owned()).or_default())
}

/// Creates the directory of a SQLite file and asks sqlx to create the file.
fn prepare_sqlite(url: &str) -> Result<String, DbError> {
    let rest = url.trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.strip_prefix("//").unwrap_or(path);
    let dir = Some(path)
        .filter(|path| *path != ":memory:" && !path.is_empty())
        .and_then(|path| Path::new(path).parent())
        .filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let has_mode = query.split('&').any(|pair| pair.starts_with("mode="));
    Ok(match (query.is_empty(), has_mode) {
        (_, true) => url.to_owned(),
        (true, false) => format!("{url}?mode=rwc"),
        (false, false) => format!("{url}&mode=rwc"),
    })
}

/// If `err` is a unique-constraint violation, the name of what was violated:
/// the constraint (PostgreSQL) or `table.column` (SQLite). Stores map this to
/// a 409 in one place instead of matching error text in handlers.
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db_err) = err else {
        return None;
    };
    if !db_err.is_unique_violation() {
        return None;
    }
    Some(db_err.constraint().map(str::to_owned).unwrap_or_else(|| {
        db_err
            .message()
            .rsplit(": ")
            .next()
            .unwrap_or_default()
            .to_owned()
    }))
}

/// The text column `column` of `row`, parsed: ids are stored as text and
/// read back as their types. Text that does not parse is a decode error.
///
/// # Errors
/// [`sqlx::Error::ColumnNotFound`] or [`sqlx::Error::Decode`].
pub fn parse_column<T>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|err: T::Err| sqlx::Error::Decode(Box::new(err)))
}

/// `count` numbered placeholders from `$first` on, comma-separated
/// (`$3, $4, $5`): for an `IN (…)` list or one row of `VALUES`, so that a
/// statement with a variable number of values still binds every value.
/// The same text serves both databases.
pub fn placeholders(first: usize, count: usize) -> String {
    let mut text = String::with_capacity(count * 5);
    for n in first..first + count {
        if n > first {
            text.push_str(", ");
        }
        text.push('$');
        text.push_str(&n.to_string());
    }
    text
}

/// `rows` parenthesised rows of `columns` placeholders each, numbered from
/// `$1`, for a multi-row `INSERT … VALUES`: `($1, $2), ($3, $4)`.
pub fn placeholder_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(1 + row * columns, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The current time as stored in the database: RFC 3339 UTC with
/// milliseconds, fixed width so that text order is time order.
pub fn now_text() -> String {
    timestamp_text(chrono::Utc::now())
}

/// `at` in the stored timestamp format (see [`now_text`]).
pub fn timestamp_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The stored timestamp of `age` ago, saturating at the earliest time
/// representable: the cut-off of a retention period.
pub fn timestamp_text_ago(age: Duration) -> String {
    let at = chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| chrono::Utc::now().checked_sub_signed(age))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    timestamp_text(at)
}

/// Deletes in bounded batches: calls `delete(limit)` until a batch deletes
/// fewer than `limit` rows or `stop` is cancelled, yielding between batches
/// so other writers (and, on SQLite, the one write turn) get in. Returns
/// how many rows were deleted.
///
/// # Errors
/// The first error of `delete`; rows deleted until then stay deleted.
pub async fn delete_in_batches<F, Fut, E>(
    limit: u32,
    stop: &tokio_util::sync::CancellationToken,
    mut delete: F,
) -> Result<u64, E>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
{
    let mut deleted = 0;
    loop {
        let batch = delete(limit).await?;
        deleted += batch;
        if batch < u64::from(limit) || stop.is_cancelled() {
            return Ok(deleted);
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_longer_than_time_cuts_off_at_the_earliest_time() {
        assert_eq!(
            timestamp_text_ago(Duration::MAX),
            timestamp_text(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        );
        assert!(timestamp_text_ago(Duration::from_secs(3_600)) < now_text());
    }

    #[tokio::test]
    async fn deletes_run_in_batches_until_one_comes_back_short_or_a_stop() {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut left = 5_u64;
        let mut batches = Vec::new();
        let deleted = delete_in_batches(2, &stop, |limit| {
            let batch = left.min(u64::from(limit));
            left -= batch;
            batches.push(batch);
            async move { Ok::<_, ()>(batch) }
        })
        .await;
        assert_eq!(deleted, Ok(5));
        assert_eq!(batches, [2, 2, 1]);

        stop.cancel();
        let deleted = delete_in_batches(
            2,
            &stop,
            |limit| async move { Ok::<_, ()>(u64::from(limit)) },
        )
        .await;
        assert_eq!(
            deleted,
            Ok(2),
            "a stop ends the purge after the batch in progress"
        );
    }

    #[test]
    fn placeholders_number_every_value_once() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 1), "$1");
        assert_eq!(placeholders(1, 0), "");
        assert_eq!(placeholder_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholder_rows(1, 1), "($1)");
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}/nested/a.db", dir.path().display());
        let prepared = prepare_sqlite(&url).expect("prepared");
        assert!(prepared.ends_with("?mode=rwc"));
        assert!(dir.path().join("nested").is_dir());
        assert_eq!(
            prepare_sqlite("sqlite::memory:?mode=memory").expect("memory"),
            "sqlite::memory:?mode=memory"
        );
    }

    #[test]
    fn other_schemes_are_rejected() {
        assert!(matches!(
            backend_of("mysql://x"),
            Err(DbError::UnsupportedUrl)
        ));
        assert_eq!(backend_of("postgresql://x").ok(), Some(Backend::Postgres));
    }

    #[test]
    fn timestamps_sort_as_text() {
        let early = chrono::DateTime::from_timestamp(1_000, 0).expect("valid");
        let late = chrono::DateTime::from_timestamp(1_000_000_000, 5_000_000).expect("valid");
        assert!(timestamp_text(early) < timestamp_text(late));
        assert_eq!(timestamp_text(late), "2001-09-09T01:46:40.005Z");
    }
}
