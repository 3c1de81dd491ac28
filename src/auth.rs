//! Passwords (Argon2id) and signed access tokens (HS256 JWT).

use crate::domain::ids::UserId;
use anyhow::Context;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Argon2id with 19 MiB of memory, two passes (the OWASP baseline).
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid params"),
    )
}

/// Hashes a password with a fresh random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?
        .to_string())
}

/// Checks a password against a stored hash. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody knows, checked for unknown e-mails so that they take as long
/// to refuse as wrong passwords.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("not a real password, only for timing").expect("hashing works")
    })
}

/// Minimum rules for a new password.
pub fn check_new_password(password: &str) -> Result<(), crate::error::FieldError> {
    let n = password.chars().count();
    if n < 12 {
        return Err(crate::error::FieldError::new(
            "password",
            "too_short",
            "use at least 12 characters",
        ));
    }
    if n > 256 {
        return Err(crate::error::FieldError::new(
            "password",
            "too_long",
            "use at most 256 characters",
        ));
    }
    Ok(())
}

/// A random password for the first admin, printed once.
pub fn generate_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

const ISSUER: &str = "ferum";
const AUDIENCE: &str = "ferum-api";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Issues and checks access tokens with one server-side key and a fixed algorithm.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl: chrono::Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: chrono::Duration) -> TokenKeys {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    pub fn issue(&self, user: UserId, now: DateTime<Utc>) -> anyhow::Result<String> {
        let claims = Claims {
            sub: user.0.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
        };
        jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .context("signing a token")
    }

    /// The user a valid token names; `None` for anything expired, forged or malformed.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<UserId> {
        let mut v = Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against our clock below, so tests can move time.
        v.validate_exp = false;
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok()?;
        if data.claims.exp <= now.timestamp() {
            return None;
        }
        data.claims.sub.parse().ok().map(UserId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(h.contains("m=19456"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_expire_and_resist_forgery() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let keys = TokenKeys::new(
            b"0123456789abcdef0123456789abcdef",
            chrono::Duration::minutes(15),
        );
        let t = keys.issue(UserId(5), now).unwrap();
        assert_eq!(keys.verify(&t, now), Some(UserId(5)));
        assert_eq!(keys.verify(&t, now + chrono::Duration::minutes(16)), None);
        let other = TokenKeys::new(
            b"another key another key another!",
            chrono::Duration::minutes(15),
        );
        assert_eq!(other.verify(&t, now), None);
        // alg: none is refused.
        let parts: Vec<&str> = t.split('.').collect();
        use base64::Engine;
        let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            keys.verify(&format!("{none_header}.{}.", parts[1]), now),
            None
        );
    }
}
