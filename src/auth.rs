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

/// The shipped list of common passwords (those of 12 characters or more; shorter ones fail
/// the length rule anyway), lower-cased.
fn common_passwords() -> &'static std::collections::HashSet<&'static str> {
    static LIST: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../assets/common-passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Rules for a new password: 12 to 256 characters, not the account's e-mail (or its local
/// part), not a common password, not one character repeated.
pub fn check_new_password(password: &str, email: &str) -> Result<(), crate::error::FieldError> {
    use crate::error::FieldError;
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(FieldError::new(
            "password",
            "too_short",
            "use at least 12 characters",
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(FieldError::new(
            "password",
            "too_long",
            "use at most 256 characters",
        ));
    }
    let lower = password.trim().to_lowercase();
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || (!local.is_empty() && lower == local) {
        return Err(FieldError::new(
            "password",
            "same_as_email",
            "the password must not be your e-mail",
        ));
    }
    let first = lower.chars().next();
    if common_passwords().contains(lower.as_str()) || lower.chars().all(|c| Some(c) == first) {
        return Err(FieldError::new(
            "password",
            "too_common",
            "this password is too common; choose another",
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
const MFA_AUDIENCE: &str = "ferum-mfa";
const WEB_AUDIENCE: &str = "ferum-web";
const PRE_AUDIENCE: &str = "ferum-pre";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// The session family (access tokens) or the purpose (second-factor tokens).
    sid: String,
}

/// What a second-factor token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPurpose {
    /// Password was right; a TOTP or recovery code completes sign-in.
    Verify,
    /// Password was right but the role needs a second factor not yet set up: only
    /// `2fa/setup` and `2fa/confirm` are allowed.
    Enroll,
}

impl MfaPurpose {
    fn as_str(self) -> &'static str {
        match self {
            MfaPurpose::Verify => "verify",
            MfaPurpose::Enroll => "enroll",
        }
    }
}

/// Issues and checks tokens with one server-side key and a fixed algorithm (HS256); tokens
/// with any other algorithm, including `none`, are refused.
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

    fn sign(
        &self,
        user: UserId,
        aud: &str,
        sid: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: user.0.to_string(),
            iss: ISSUER.into(),
            aud: aud.into(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            sid: sid.into(),
        };
        jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .context("signing a token")
    }

    fn check(&self, token: &str, aud: &str, now: DateTime<Utc>) -> Option<(UserId, String)> {
        let mut v = Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[aud]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against our clock below, so tests can move time.
        v.validate_exp = false;
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok()?;
        if data.claims.exp <= now.timestamp() {
            return None;
        }
        Some((UserId(data.claims.sub.parse().ok()?), data.claims.sid))
    }

    /// An access token for a session family.
    pub fn issue(&self, user: UserId, family: &str, now: DateTime<Utc>) -> anyhow::Result<String> {
        self.sign(user, AUDIENCE, family, now, self.ttl)
    }

    /// The user and session family of a valid access token; `None` for anything expired,
    /// forged, malformed or meant for another audience.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<(UserId, String)> {
        self.check(token, AUDIENCE, now)
    }

    /// A browser session's cookie value: the session family, for as long as it may live.
    pub fn issue_web(
        &self,
        user: UserId,
        family: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> anyhow::Result<String> {
        self.sign(user, WEB_AUDIENCE, family, now, ttl)
    }

    /// The user and session family of a valid session cookie.
    pub fn verify_web(&self, token: &str, now: DateTime<Utc>) -> Option<(UserId, String)> {
        self.check(token, WEB_AUDIENCE, now)
    }

    /// The sign-in forms' double-submit value (before there is a session): a random nonce
    /// signed by the server, valid for a day.
    pub fn issue_pre(&self, now: DateTime<Utc>) -> anyhow::Result<String> {
        self.sign(
            UserId(0),
            PRE_AUDIENCE,
            &random_token(),
            now,
            chrono::Duration::days(1),
        )
    }

    /// Whether `token` is a pre-session value this server issued and that has not expired.
    pub fn verify_pre(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.check(token, PRE_AUDIENCE, now).is_some()
    }

    /// A five-minute token for the second-factor step.
    pub fn issue_mfa(
        &self,
        user: UserId,
        purpose: MfaPurpose,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        self.sign(
            user,
            MFA_AUDIENCE,
            purpose.as_str(),
            now,
            chrono::Duration::minutes(5),
        )
    }

    pub fn verify_mfa(&self, token: &str, now: DateTime<Utc>) -> Option<(UserId, MfaPurpose)> {
        let (user, purpose) = self.check(token, MFA_AUDIENCE, now)?;
        let purpose = match purpose.as_str() {
            "verify" => MfaPurpose::Verify,
            "enroll" => MfaPurpose::Enroll,
            _ => return None,
        };
        Some((user, purpose))
    }
}

/// A random opaque token (refresh tokens, recovery codes' entropy): 32 bytes, base64url.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 hex of a high-entropy secret (refresh tokens, recovery codes): stored instead of
/// the secret itself.
pub fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    fn password_rules() {
        let code = |p: &str| {
            check_new_password(p, "ivan.petrov@example.ru")
                .err()
                .map(|e| e.code)
        };
        assert_eq!(code("short"), Some("too_short"));
        assert_eq!(code(&"x".repeat(257)), Some("too_long"));
        assert_eq!(code(&"ab".repeat(64)), None, "128 characters are fine");
        assert_eq!(code("Ivan.Petrov@Example.ru"), Some("same_as_email"));
        assert_eq!(code("ivan.petrov@example.ru"), Some("same_as_email"));
        assert_eq!(code("QWERTY123456"), Some("too_common"));
        assert_eq!(code("пароль123456"), Some("too_common"));
        assert_eq!(code("zzzzzzzzzzzzzzzz"), Some("too_common"));
        assert_eq!(code("correct horse battery staple"), None);
        assert!(common_passwords().len() > 100);
    }

    #[test]
    fn tokens_expire_and_resist_forgery() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let keys = TokenKeys::new(
            b"0123456789abcdef0123456789abcdef",
            chrono::Duration::minutes(15),
        );
        let t = keys.issue(UserId(5), "fam", now).unwrap();
        assert_eq!(keys.verify(&t, now), Some((UserId(5), "fam".to_owned())));
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
