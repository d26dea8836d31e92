//! Console passwords: argon2id hashes (PHC strings), made and checked on blocking threads (a
//! hash costs tens of milliseconds on purpose).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 10;

/// Why a password is not accepted.
pub fn weakness(password: &str) -> Option<String> {
    if password.chars().count() < MIN_LENGTH {
        Some(format!("A password needs at least {MIN_LENGTH} characters"))
    } else if password.chars().count() > 1024 {
        Some("A password can have at most 1024 characters".into())
    } else if password.trim().is_empty() {
        Some("A password can't be only spaces".into())
    } else {
        None
    }
}

/// The argon2id hash of a password, as a PHC string.
pub async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
    })
    .await?
}

/// Whether `password` matches `stored` (a PHC string). A missing hash never matches, but is
/// checked against a dummy hash so that unknown users take as long as known ones.
pub async fn verify(password: &str, stored: Option<String>) -> bool {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$WwD2/wGGTuw7u4BW8sLM0Q/GvzoSb6o1lUOm8tJbJCE";
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| DUMMY.to_string());
    let password = password.to_string();
    let matched = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    known && matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let one = hash("correct horse battery").await.expect("hash");
        let two = hash("correct horse battery").await.expect("hash");
        assert_ne!(one, two, "salted");
        assert!(one.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(one.clone())).await);
        assert!(!verify("wrong horse battery", Some(one)).await);
        assert!(!verify("anything at all", None).await);
        assert!(weakness("short").is_some());
        assert!(weakness("long enough!").is_none());
    }
}
