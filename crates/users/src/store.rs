//! The `users` table. One set of portable queries serves SQLite and
//! PostgreSQL; uniqueness is enforced by the database's unique indexes, never
//! by a check-then-insert.

use shop_api::UserId;
use shop_common::db::{self, Db};
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::domain::{Email, User, Username};

/// The users service's migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/users");

/// Why a user could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another user has this username (case-insensitive).
    #[error("username taken")]
    UsernameTaken,
    /// Another user has this email (case-insensitive).
    #[error("email taken")]
    EmailTaken,
    /// The database failed.
    #[error("users database error")]
    Database(#[from] sqlx::Error),
}

/// A user with the stored password hash, for login.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// The Argon2id PHC string.
    pub password_hash: String,
}

/// Access to the `users` table.
#[derive(Debug, Clone)]
pub struct UserStore {
    db: Db,
}

impl UserStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a new user.
    ///
    /// # Errors
    /// [`StoreError::UsernameTaken`] / [`StoreError::EmailTaken`] when the
    /// database's unique index rejects the row; [`StoreError::Database`] otherwise.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.kind = "client",
        db.system = shop_common::trace::db_system(self.db.backend()),
        db.operation = "insert_user",
    ))]
    pub async fn insert(
        &self,
        username: &Username,
        email: &Email,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let user = User {
            id: UserId::from_uuid(Uuid::now_v7()),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            created_at: db::now_text(),
        };
        let _turn = self.db.write_turn().await;
        let result = sqlx::query(
            "INSERT INTO users (id, username, email, email_key, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.email)
        .bind(email.key())
        .bind(password_hash)
        .bind(&user.created_at)
        .execute(self.db.pool())
        .await;
        match result {
            Ok(_) => Ok(user),
            Err(err) => Err(match db::unique_violation(&err) {
                Some(constraint) if constraint.contains("email") => StoreError::EmailTaken,
                Some(_) => StoreError::UsernameTaken,
                None => StoreError::Database(err),
            }),
        }
    }

    /// Finds a user by username or email, case-insensitively.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query fails.
    pub async fn find_by_login(&self, login: &str) -> Result<Option<Credentials>, StoreError> {
        // Usernames cannot contain '@' and emails must, so one folded value
        // matches at most one column.
        let key = login.to_lowercase();
        let row = sqlx::query(
            "SELECT id, username, email, created_at, password_hash FROM users \
             WHERE username = $1 OR email_key = $1",
        )
        .bind(key)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            let password_hash = row.try_get("password_hash")?;
            Ok(Credentials {
                user: user_from_row(&row)?,
                password_hash,
            })
        })
        .transpose()
    }

    /// Finds a user by id.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query fails.
    pub async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, username, email, created_at FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Counts users; for tests and diagnostics.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query fails.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(self.db.count("SELECT COUNT(*) FROM users").await?)
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: db::parse_column(row, "id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
    })
}
