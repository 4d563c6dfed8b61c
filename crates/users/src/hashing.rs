//! Password hashing with Argon2id at OWASP's recommended parameters
//! (19 MiB, 2 passes, 1 lane — the argon2 crate's defaults).
//!
//! Each hash takes tens of milliseconds of CPU and 19 MiB of memory, so it
//! runs on the blocking pool, never on the async workers, and a semaphore
//! bounds how many run at once: a burst of logins queues here instead of
//! stalling every other request or exhausting memory.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

/// Why hashing failed; never the client's fault.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verified against when the login is
    /// unknown, so unknown users cost the same as wrong passwords.
    dummy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher running at most one hash per CPU at a time.
    ///
    /// # Errors
    /// [`HashError`] if the dummy hash cannot be made (a broken build).
    pub async fn new() -> Result<Self, HashError> {
        let parallel = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let random: [u8; 16] = rand::random();
        let dummy = blocking(move || hash_now(&random)).await??;
        Ok(Self {
            permits: Arc::new(Semaphore::new(parallel)),
            dummy: dummy.into(),
        })
    }

    /// Hashes `password` into a PHC string with a fresh random salt.
    ///
    /// # Errors
    /// [`HashError`] if hashing fails.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|err| HashError(err.to_string()))?;
        let password = password.as_bytes().to_vec();
        blocking(move || hash_now(&password)).await?
    }

    /// Checks `password` against `hash`; with no hash (unknown user) it checks
    /// against the dummy hash and answers `false`, doing the same work.
    ///
    /// # Errors
    /// [`HashError`] if the stored hash is unreadable.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|err| HashError(err.to_string()))?;
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy.to_string(), str::to_owned);
        let password = password.as_bytes().to_vec();
        let matches = blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|err| HashError(err.to_string()))?;
            Ok::<_, HashError>(
                Argon2::default()
                    .verify_password(&password, &parsed)
                    .is_ok(),
            )
        })
        .await??;
        Ok(known && matches)
    }
}

fn hash_now(password: &[u8]) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError(err.to_string()))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| HashError(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_with_owasp_parameters() {
        let hasher = PasswordHasher::new().await.expect("hasher");
        let hash = hasher.hash("correct horse battery").await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse battery", Some(&hash))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("wrong horse battery", Some(&hash))
                .await
                .expect("verify")
        );
        assert_ne!(
            hash,
            hasher.hash("correct horse battery").await.expect("hash"),
            "salts differ"
        );
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let hasher = PasswordHasher::new().await.expect("hasher");
        assert!(
            !hasher
                .verify("anything at all", None)
                .await
                .expect("verify")
        );
    }
}
