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
