//! `shop_common::db` against real SQLite and PostgreSQL: connect, migrate,
//! one query path, unique violations, readiness.

use shop_common::config::DatabaseSettings;
use shop_common::db::{Backend, Db, DbError, parse_column, unique_violation};
use shop_common::health::{Readiness, ReadinessCheck};
use shop_testkit::{Engine, databases};
use sqlx::Row;
use sqlx::migrate::Migrator;

static MIGRATOR: Migrator = sqlx::migrate!("tests/migrations");

#[tokio::test]
async fn the_same_queries_run_on_both_engines() {
    for test_db in databases().await {
        let db = Db::connect(&DatabaseSettings::new(&test_db.url))
            .await
            .expect("connect");
        assert_eq!(
            db.backend(),
            match test_db.engine {
                Engine::Sqlite => Backend::Sqlite,
                Engine::Postgres => Backend::Postgres,
            }
        );
        db.migrate(&MIGRATOR).await.expect("migrate");
        db.migrate(&MIGRATOR)
            .await
            .expect("migrating twice is a no-op");

        sqlx::query("INSERT INTO items (id, name) VALUES ($1, $2)")
            .bind("1")
            .bind("o'brien; DROP TABLE items; --")
            .execute(db.pool())
            .await
            .expect("insert");
        let name: String = sqlx::query("SELECT name FROM items WHERE id = $1")
            .bind("1")
            .fetch_one(db.pool())
            .await
            .expect("select")
            .try_get("name")
            .expect("column");
        assert_eq!(name, "o'brien; DROP TABLE items; --", "{}", test_db.engine);

        let duplicate = sqlx::query("INSERT INTO items (id, name) VALUES ($1, $2)")
            .bind("2")
            .bind("o'brien; DROP TABLE items; --")
            .execute(db.pool())
            .await
            .expect_err("unique index");
        let violated = unique_violation(&duplicate).expect("recognised as a unique violation");
        assert!(violated.contains("name"), "{}: {violated}", test_db.engine);

        let other = sqlx::query("SELECT nope FROM items")
            .execute(db.pool())
            .await
            .expect_err("bad column");
        assert_eq!(unique_violation(&other), None);

        db.ping().await.expect("ping");
        assert_eq!(db.check().await, Ok(()));
        let report = Readiness::new().with_check(db.clone()).report().await;
        assert_eq!(report.status, "ready");
        db.close().await;
        assert!(
            db.check().await.is_err(),
            "{}: a closed pool is not ready",
            test_db.engine
        );
    }
}

#[tokio::test]
async fn sqlite_files_and_directories_are_created_with_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a/b/shop.db");
    let db = Db::connect(&DatabaseSettings::new(format!("sqlite:{}", path.display())))
        .await
        .expect("connect");
    assert!(path.is_file());
    for (pragma, want) in [("journal_mode", "wal"), ("foreign_keys", "1")] {
        let row = sqlx::query(&format!("PRAGMA {pragma}"))
            .fetch_one(db.pool())
            .await
            .expect("pragma");
        let value: String = match row.try_get::<i64, _>(0) {
            Ok(number) => number.to_string(),
            Err(_) => row.try_get(0).expect("column"),
        };
        assert_eq!(value.to_lowercase(), want, "PRAGMA {pragma}");
    }
}

#[tokio::test]
async fn unreachable_and_unsupported_databases_fail_clearly() {
    let mut settings = DatabaseSettings::new("postgres://nobody@127.0.0.1:1/none");
    settings.acquire_timeout_secs = 1;
    let err = Db::connect(&settings)
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(err, DbError::Connect(Backend::Postgres, _)),
        "{err}"
    );

    let err = Db::connect(&DatabaseSettings::new("mysql://x/y"))
        .await
        .expect_err("unsupported");
    assert!(err.to_string().contains("database.url"), "{err}");
}

#[tokio::test]
async fn replicas_migrating_one_fresh_database_at_once_all_start() {
    for test_db in databases().await {
        let connects = (0..8).map(|_| async {
            let db = Db::connect(&DatabaseSettings::new(&test_db.url))
                .await
                .expect("connect");
            db.migrate(&MIGRATOR).await.map(|()| db)
        });
        let results = futures::future::join_all(connects).await;
        for result in results {
            let db = result.unwrap_or_else(|err| panic!("{}: {err}", test_db.engine));
            db.close().await;
        }
    }
}

#[tokio::test]
async fn a_postgres_statement_past_its_timeout_is_cancelled_but_migrations_are_not() {
    let Some(test_db) = shop_testkit::TestDatabase::postgres().await else {
        eprintln!(
            "note: SHOP_TEST_POSTGRES_URL not set; skipping the PostgreSQL statement timeout test"
        );
        return;
    };
    let mut settings = DatabaseSettings::new(&test_db.url);
    settings.statement_timeout_ms = 200;
    let db = Db::connect(&settings).await.expect("connect");
    // Migrations run untimed on their own connection, which is then closed.
    db.migrate(&MIGRATOR).await.expect("migrate");

    let err = sqlx::query("SELECT pg_sleep(3)")
        .execute(db.pool())
        .await
        .expect_err("a 3 s statement outlives a 200 ms timeout");
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {err}");
    // Every pooled connection carries the bound, and a short one still runs.
    for _ in 0..3 {
        let row = sqlx::query("SELECT current_setting('statement_timeout') AS t")
            .fetch_one(db.pool())
            .await
            .expect("setting");
        assert_eq!(row.get::<String, _>("t"), "200ms");
    }
    db.close().await;
}

#[tokio::test]
async fn the_oldest_rows_go_first_in_bounded_deletes_and_counts_and_ids_read_back() {
    for test_db in databases().await {
        let engine = test_db.engine;
        let db = Db::connect(&DatabaseSettings::new(&test_db.url))
            .await
            .expect("connect");
        db.migrate(&MIGRATOR).await.expect("migrate");
        // `name` plays the timestamp: text order is time order.
        for (id, stamp) in [("3", "2003"), ("1", "2001"), ("2", "2002"), ("4", "2004")] {
            sqlx::query("INSERT INTO items (id, name) VALUES ($1, $2)")
                .bind(id)
                .bind(stamp)
                .execute(db.pool())
                .await
                .expect("insert");
        }
        let ids = async || -> Vec<u32> {
            let rows = sqlx::query("SELECT id FROM items ORDER BY id")
                .fetch_all(db.pool())
                .await
                .expect("select");
            rows.iter()
                .map(|row| parse_column(row, "id").expect("a number"))
                .collect()
        };

        let delete = |limit| db.delete_oldest("items", "id", "name", "2004", limit);
        assert_eq!(delete(1).await.expect("delete"), 1, "{engine}");
        assert_eq!(ids().await, [2, 3, 4], "{engine}: the oldest went first");
        assert_eq!(delete(5).await.expect("delete"), 2, "{engine}");
        assert_eq!(ids().await, [4], "{engine}: a row at the cut-off stays");
        assert_eq!(delete(5).await.expect("delete"), 0, "{engine}");

        let count = "SELECT COUNT(*) FROM items";
        assert_eq!(db.count(count).await.expect("count"), 1, "{engine}");
        let row = sqlx::query("SELECT name FROM items")
            .fetch_one(db.pool())
            .await
            .expect("select");
        assert_eq!(parse_column::<u32>(&row, "name").expect("parses"), 2004);
        assert!(
            matches!(
                parse_column::<uuid::Uuid>(&row, "name"),
                Err(sqlx::Error::Decode(_))
            ),
            "{engine}: text that does not parse is a decode error"
        );
        assert!(matches!(
            parse_column::<u32>(&row, "nope"),
            Err(sqlx::Error::ColumnNotFound(_))
        ));
    }
}

/// A TCP proxy in front of the test PostgreSQL that can be cut (the
/// database gone: every connection dropped, new ones refused) and started
/// again on the same port.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: tokio_util::sync::CancellationToken,
}

#[allow(clippy::expect_used)] // a test helper: a failed setup should fail the test
impl Proxy {
    async fn start(listen: std::net::SocketAddr, upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = tokio_util::sync::CancellationToken::new();
        let token = cut.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let (token, upstream) = (token.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }
}

/// The database's readiness check keeps a connection of its own: with every
/// pooled connection held by requests it still reports ready; with the
/// database gone it reports not ready, and ready again once it is back.
#[tokio::test]
async fn readiness_does_not_wait_for_the_pool_and_follows_the_database() {
    for test_db in databases().await {
        let engine = test_db.engine;
        let (url, proxy) = match engine {
            Engine::Sqlite => (test_db.url.clone(), None),
            Engine::Postgres => {
                let mut url = reqwest::Url::parse(&test_db.url).expect("a URL");
                let upstream = format!(
                    "{}:{}",
                    url.host_str().expect("a host"),
                    url.port().unwrap_or(5432)
                );
                let proxy =
                    Proxy::start("127.0.0.1:0".parse().expect("addr"), upstream.clone()).await;
                url.set_port(Some(proxy.addr.port())).expect("a port");
                (url.to_string(), Some((proxy, upstream)))
            }
        };
        let mut settings = DatabaseSettings::new(&url);
        settings.max_connections = 2;
        settings.acquire_timeout_secs = 1;
        let db = Db::connect(&settings).await.expect("connect");
        let readiness = Readiness::new().with_check(db.clone());

        // Requests hold the whole pool: another acquire times out…
        let held = [
            db.pool().acquire().await.expect("first"),
            db.pool().acquire().await.expect("second"),
        ];
        assert!(
            db.pool().acquire().await.is_err(),
            "{engine}: the pool is exhausted"
        );
        // …yet the instance is ready, more than once (the connection is kept).
        for _ in 0..2 {
            let report = readiness.report().await;
            assert_eq!(report.status, "ready", "{engine}: {:?}", report.checks);
        }
        drop(held);

        let Some((proxy, upstream)) = proxy else {
            db.close().await;
            assert!(db.check().await.is_err(), "{engine}: closed is not ready");
            continue;
        };
        // The database gone: its connections cut, new ones refused.
        proxy.cut.cancel();
        let report = readiness.report().await;
        assert_eq!(report.status, "not ready", "{engine}: {:?}", report.checks);
        assert_ne!(report.checks["database"], "ok");
        let report = readiness.report().await;
        assert_eq!(report.status, "not ready", "{engine}: still gone");

        // Back on the same address: the check reconnects.
        let _back = Proxy::start(proxy.addr, upstream).await;
        let report = readiness.report().await;
        assert_eq!(report.status, "ready", "{engine}: {:?}", report.checks);
        db.close().await;
    }
}
