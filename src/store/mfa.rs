//! Second-factor state of users: the TOTP secret, replay and lockout counters, and hashed
//! one-time recovery codes.

use super::{Db, Q, Tx, db_ts};
use crate::auth::secret_hash;
use crate::domain::ids::UserId;
use crate::domain::totp;
use crate::error::Result;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpState {
    pub totp_secret: Option<String>,
    pub totp_pending: Option<String>,
    pub totp_last_step: i64,
    pub totp_failures: i64,
    pub totp_locked_until: Option<String>,
}

impl TotpState {
    /// Decrypts the secrets read from the database.
    fn decrypted(mut self, keys: &crate::crypto::DataKeys) -> Result<TotpState> {
        if let Some(s) = &self.totp_secret {
            self.totp_secret = Some(super::pii::decrypt(keys, "users", "totp_secret", s)?);
        }
        if let Some(s) = &self.totp_pending {
            self.totp_pending = Some(super::pii::decrypt(keys, "users", "totp_pending", s)?);
        }
        Ok(self)
    }

    pub fn enabled(&self) -> bool {
        self.totp_secret.is_some()
    }

    /// Seconds until the lock ends, if locked.
    pub fn locked_for(&self, now: DateTime<Utc>) -> Option<i64> {
        let until = self
            .totp_locked_until
            .as_deref()
            .and_then(|s| super::ts(s).ok())?;
        (until > now).then(|| (until - now).num_seconds().max(1))
    }
}

pub async fn state(tx: &mut Tx, keys: &crate::crypto::DataKeys, user: UserId) -> Result<TotpState> {
    let mut q = Q::new(
        "SELECT totp_secret, totp_pending, totp_last_step, totp_failures, totp_locked_until FROM users WHERE id = ",
    );
    q.bind(user.0).push(super::tx_backend(tx).for_update());
    q.fetch_optional::<TotpState, _>(&mut **tx)
        .await?
        .ok_or(crate::error::Error::NotFound)?
        .decrypted(keys)
}

pub async fn state_of(db: &Db, user: UserId) -> Result<TotpState> {
    let mut q = Q::new(
        "SELECT totp_secret, totp_pending, totp_last_step, totp_failures, totp_locked_until FROM users WHERE id = ",
    );
    q.bind(user.0);
    q.fetch_optional::<TotpState, _>(db.pool())
        .await?
        .ok_or(crate::error::Error::NotFound)?
        .decrypted(db.keys()?)
}

pub async fn set_pending(
    tx: &mut Tx,
    keys: &crate::crypto::DataKeys,
    user: UserId,
    secret: &str,
) -> Result<()> {
    let mut q = Q::new("UPDATE users SET totp_pending = ");
    q.bind(Some(
        super::pii::encrypt(keys, "users", "totp_pending", secret).0,
    ))
    .push(" WHERE id = ")
    .bind(user.0);
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Makes the pending secret the active one (its first code was `step`) and replaces the
/// recovery codes with `codes` (stored hashed).
pub async fn activate(
    tx: &mut Tx,
    keys: &crate::crypto::DataKeys,
    user: UserId,
    secret: &str,
    step: i64,
    codes: &[String],
) -> Result<()> {
    let mut q = Q::new("UPDATE users SET totp_secret = ");
    q.bind(Some(
        super::pii::encrypt(keys, "users", "totp_secret", secret).0,
    ))
    .push(", totp_pending = NULL, totp_last_step = ")
    .bind(step)
    .push(", totp_failures = 0, totp_locked_until = NULL WHERE id = ")
    .bind(user.0);
    q.execute(&mut **tx).await?;
    let mut q = Q::new("DELETE FROM recovery_codes WHERE user_id = ");
    q.bind(user.0);
    q.execute(&mut **tx).await?;
    for c in codes {
        let mut q = Q::new("INSERT INTO recovery_codes (user_id, code_hash) VALUES (");
        q.bind(user.0)
            .push(", ")
            .bind(secret_hash(&totp::normalise_recovery_code(c)))
            .push(")");
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn disable(tx: &mut Tx, user: UserId) -> Result<()> {
    let mut q = Q::new(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_failures = 0, totp_locked_until = NULL WHERE id = ",
    );
    q.bind(user.0);
    q.execute(&mut **tx).await?;
    let mut q = Q::new("DELETE FROM recovery_codes WHERE user_id = ");
    q.bind(user.0);
    q.execute(&mut **tx).await?;
    Ok(())
}

pub async fn record_success(tx: &mut Tx, user: UserId, step: Option<i64>) -> Result<()> {
    let mut q = Q::new("UPDATE users SET totp_failures = 0, totp_locked_until = NULL");
    if let Some(s) = step {
        q.push(", totp_last_step = ").bind(s);
    }
    q.push(" WHERE id = ").bind(user.0);
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Counts a wrong code; the third in a row locks the second factor until the window ends.
/// Returns whether it is now locked.
pub async fn record_failure(
    tx: &mut Tx,
    user: UserId,
    failures: i64,
    now: DateTime<Utc>,
) -> Result<bool> {
    let (n, until) = totp::after_failure(failures, now.timestamp());
    let until = until.and_then(|u| DateTime::<Utc>::from_timestamp(u, 0));
    let mut q = Q::new("UPDATE users SET totp_failures = ");
    q.bind(n)
        .push(", totp_locked_until = ")
        .bind(until.map(db_ts))
        .push(" WHERE id = ")
        .bind(user.0);
    q.execute(&mut **tx).await?;
    Ok(until.is_some())
}

/// Uses up a recovery code if it is one of the user's unused codes.
pub async fn use_recovery_code(
    tx: &mut Tx,
    user: UserId,
    code: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let norm = totp::normalise_recovery_code(code);
    if norm.len() != 16 {
        return Ok(false);
    }
    let mut q = Q::new("UPDATE recovery_codes SET used_at = ");
    q.bind(Some(db_ts(now)))
        .push(" WHERE used_at IS NULL AND user_id = ")
        .bind(user.0)
        .push(" AND code_hash = ")
        .bind(secret_hash(&norm));
    Ok(q.execute(&mut **tx).await? == 1)
}
