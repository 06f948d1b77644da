//! Password hashing with argon2id (PHC strings, default parameters: 19 MiB, 2 passes). Both
//! hashing and verifying are slow by design, so they run on tokio's blocking pool and only on
//! user writes and `POST /v3/auth/tokens`, never on the networking request path.

use std::sync::OnceLock;

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};

use crate::error::ApiError;

/// The longest password accepted (Keystone's default `max_password_length`).
pub const MAX_PASSWORD_LEN: usize = 4096;

/// Hashes `password` into a PHC string with a fresh random salt.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|err| ApiError::Internal(format!("password hashing task: {err}")))?
}

fn hash_blocking(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| ApiError::Internal(format!("password hashing: {err}")))
}

/// True when `password` matches the PHC string `hash`. An empty or unreadable `hash` (a user
/// without a password, or no such user) is checked against a dummy hash so a miss costs as
/// long as a wrong password, and never matches.
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        if hash.is_empty() {
            // The result is discarded: this only spends the time a real check would.
            let _ = Argon2::default().verify_password(password.as_bytes(), dummy_hash());
            return false;
        }
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("weft-dummy-password").unwrap_or_default())
}

/// A random password for the bootstrap admin: 24 characters from an unambiguous alphabet
/// (about 139 bits).
pub fn generate() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|err| ApiError::Internal(format!("no randomness for a password: {err}")))?;
    // 256 is not a multiple of the alphabet's 56 letters: the first 32 come up 5/256 of the
    // time instead of 4/256, which costs under 0.01 bit per character.
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let phc = hash("s3cret".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("s3cret".into(), phc.clone()).await);
        assert!(!verify("secret".into(), phc).await);
        assert!(!verify("".into(), String::new()).await);
        assert!(!verify("x".into(), "not a phc string".into()).await);
    }

    #[test]
    fn generated_passwords_differ() {
        let a = generate().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, generate().unwrap());
    }
}
