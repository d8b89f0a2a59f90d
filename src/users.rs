//! Console users: sign-in by email and password (seed 000). The store keeps each user under the
//! lower-cased email with an argon2id PHC string (default parameters, a fresh random salt).
//! Hashing and verifying cost tens of milliseconds of CPU and ~19 MiB each, so they run on the
//! blocking pool, a few at a time. Passwords and hashes are never logged, shown or returned.

use crate::store::{Store, StoreError, User};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde_json::{Value, json};
use std::ops::RangeInclusive;
use tokio::sync::Semaphore;

/// The longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Allowed password lengths, in characters.
pub const PASSWORD_CHARS: RangeInclusive<usize> = 8..=1024;

/// Verified instead when the email is unknown, so that answer takes as long as a wrong
/// password (argon2id with the default parameters, of a password nobody knows).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3dpdGNoeWFyZC1kdW1teQ$VxL8cfYxvHqW8IbqUBJs6XuCgMLrJzc+dRi6/WZxXpk";

/// At most this many hashes at once: a burst of sign-ins must not take all memory or every
/// blocking thread.
static HASHING: Semaphore = Semaphore::const_new(4);

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Bad input; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("no user with email {0}")]
    NotFound(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// `StoreError::Conflict` when the email is taken.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl UserError {
    /// The HTTP status and error type, the same on the admin API and in the Console.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            UserError::Invalid(_) => (400, "invalid_request_error"),
            UserError::NotFound(_) => (404, "not_found_error"),
            UserError::Hashing(_) => (500, "api_error"),
            UserError::Store(StoreError::Conflict(_)) => (409, "invalid_request_error"),
            UserError::Store(
                StoreError::Timeout { .. } | StoreError::Backend { .. } | StoreError::Invalid(_),
            ) => (503, "api_error"),
        }
    }
}

/// The trimmed, lower-cased email if it looks like one: one '@' with text on both sides, no
/// spaces or control characters, at most 254 characters.
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    let bad = |why: &str| Err(UserError::Invalid(format!("email: {why}")));
    if email.chars().count() > MAX_EMAIL_LEN {
        return bad("at most 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("no spaces or control characters");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => bad("an address like name@example.com"),
    }
}

pub fn check_password(password: &str) -> Result<(), UserError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(UserError::Invalid(format!(
            "password: {} to {} characters",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )))
    }
}

/// Runs CPU-heavy hashing on the blocking pool, within the `HASHING` bound.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UserError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| UserError::Hashing(e.to_string()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UserError::Hashing(e.to_string()))
}

fn hash_password(password: &str) -> Result<String, UserError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hashing(e.to_string()))
}

/// A stored hash that does not parse matches nothing.
fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Validates, hashes and stores a new user.
pub async fn create(store: &Store, email: &str, password: &str) -> Result<User, UserError> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let password = password.to_string();
    let hash = blocking(move || hash_password(&password)).await??;
    Ok(store.create_user(&email, &hash).await?)
}

/// The user whose email and password these are, else `None`: the same answer, after the same
/// work, whether the email is unknown or the password wrong.
pub async fn verify(store: &Store, email: &str, password: &str) -> Result<Option<User>, UserError> {
    let known = match normalize_email(email) {
        Ok(email) => store.user_credential(&email).await?,
        Err(_) => None,
    };
    let phc = known
        .as_ref()
        .map_or(DUMMY_HASH.to_string(), |c| c.hash.clone());
    let password = password.to_string();
    let matches = blocking(move || password_matches(&password, &phc)).await?;
    Ok(known.filter(|_| matches).map(|c| c.user))
}

/// Removes a user; returns the (lower-cased) email deleted.
pub async fn delete(store: &Store, email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    if store.delete_user(&email).await? {
        Ok(email)
    } else {
        Err(UserError::NotFound(email))
    }
}

/// `create` from a JSON body `{email, password}` (admin API and Console API).
pub async fn create_from_json(store: &Store, body: &Value) -> Result<User, UserError> {
    let field = |f: &str| {
        body.get(f)
            .and_then(Value::as_str)
            .ok_or_else(|| UserError::Invalid(format!("{f}: required, a string")))
    };
    create(store, field("email")?, field("password")?).await
}

/// A user as the APIs show it (never the hash).
pub fn to_json(u: &User) -> Value {
    json!({ "email": u.email, "created": crate::record::rfc3339_ms(u.created_ms) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_validated_and_lower_cased() {
        let ok = |e: &str| normalize_email(e).expect(e);
        assert_eq!(ok(" Ada@Example.COM "), "ada@example.com");
        assert_eq!(ok("a@b"), "a@b");
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 12));
        assert_eq!(ok(&long).len(), MAX_EMAIL_LEN);
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "a da@example.com",
            "ada@exa\u{7}mple.com",
            &format!("a{long}"),
        ] {
            let e = normalize_email(bad).expect_err(bad);
            assert!(e.to_string().starts_with("email:"), "{bad}: {e}");
            assert_eq!(e.status().0, 400);
        }
    }

    #[test]
    fn passwords_are_8_to_1024_characters() {
        assert!(check_password("12345678").is_ok());
        assert!(
            check_password(&"é".repeat(1024)).is_ok(),
            "characters, not bytes"
        );
        for bad in ["", "1234567", &"x".repeat(1025)] {
            let e = check_password(bad).expect_err("refused");
            assert!(e.to_string().starts_with("password:"));
        }
    }

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let a = hash_password("correct horse").expect("hash");
        let b = hash_password("correct horse").expect("hash");
        assert!(
            a.starts_with("$argon2id$v=19$") && a != b,
            "a fresh salt each time"
        );
        assert!(password_matches("correct horse", &a));
        assert!(!password_matches("correct horsE", &a));
        assert!(!password_matches("correct horse", "not a phc string"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let real = PasswordHash::new(&hash_password("x").expect("hash"))
            .expect("parse")
            .params
            .to_string();
        let dummy = PasswordHash::new(DUMMY_HASH).expect("parse");
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        assert_eq!(
            dummy.params.to_string(),
            real,
            "same memory, time and lanes"
        );
    }

    #[test]
    fn errors_map_to_statuses() {
        let conflict = UserError::Store(StoreError::Conflict("taken".into()));
        assert_eq!(conflict.status(), (409, "invalid_request_error"));
        assert_eq!(UserError::NotFound("x".into()).status().0, 404);
        assert_eq!(
            UserError::Store(StoreError::Invalid("x".into())).status().0,
            503
        );
    }

    #[tokio::test]
    async fn verify_answers_alike_for_unknown_emails_and_wrong_passwords() {
        let store = Store::memory();
        let u = create(&store, "Ada@example.com", "s3cret-pass")
            .await
            .expect("create");
        let got = verify(&store, "ADA@example.com", "s3cret-pass").await;
        assert_eq!(got.expect("verify"), Some(u));
        for (email, pw) in [
            ("ada@example.com", "wrong-pass"),
            ("nobody@example.com", "s3cret-pass"),
            ("not an email", "s3cret-pass"),
        ] {
            assert_eq!(verify(&store, email, pw).await.expect("verify"), None);
        }
        let dup = create(&store, "ada@EXAMPLE.com", "another-pass").await;
        assert_eq!(dup.expect_err("taken").status().0, 409);
        delete(&store, "ada@example.com").await.expect("delete");
        assert_eq!(
            verify(&store, "ada@example.com", "s3cret-pass")
                .await
                .expect("verify"),
            None
        );
        let gone = delete(&store, "ada@example.com").await;
        assert_eq!(gone.expect_err("gone").status().0, 404);
    }
}
