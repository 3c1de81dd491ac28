//! Revocable sessions: opaque refresh tokens stored hashed, rotated on every use, and
//! grouped in families so that the reuse of a rotated token ends the whole family.

use super::{Db, Q, Tx, db_ts};
use crate::auth::{random_token, secret_hash};
use crate::domain::ids::UserId;
use crate::error::Result;
use chrono::{DateTime, Utc};

/// A new session: its family (carried by access tokens) and its refresh token (shown once).
pub struct NewSession {
    pub family: String,
    pub refresh_token: String,
}

async fn insert(
    tx: &mut Tx,
    user: UserId,
    family: &str,
    ip: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<(i64, String)> {
    let refresh = random_token();
    let mut q = Q::new(
        "INSERT INTO sessions (user_id, family, refresh_hash, created_at, expires_at, ip) VALUES (",
    );
    q.bind(user.0)
        .push(", ")
        .bind(family.to_owned())
        .push(", ")
        .bind(secret_hash(&refresh))
        .push(", ")
        .bind(db_ts(now))
        .push(", ")
        .bind(db_ts(now + ttl))
        .push(", ")
        .bind(ip.to_owned())
        .push(") RETURNING id");
    let id: i64 = q.scalar(&mut **tx).await?;
    Ok((id, refresh))
}

/// Starts a session family for a user who has just signed in.
pub async fn start(
    tx: &mut Tx,
    user: UserId,
    ip: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<NewSession> {
    let family = random_token();
    let (_, refresh_token) = insert(tx, user, &family, ip, now, ttl).await?;
    Ok(NewSession {
        family,
        refresh_token,
    })
}

/// The outcome of presenting a refresh token.
pub enum Refresh {
    /// Rotated: a new refresh token in the same family.
    Rotated { user: UserId, session: NewSession },
    /// A token that was already rotated came back: the family is revoked.
    Reused { user: UserId },
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: i64,
    user_id: i64,
    family: String,
    expires_at: String,
    revoked_at: Option<String>,
    replaced_by: Option<i64>,
}

/// Exchanges a refresh token for a new one. Reuse of an already rotated token revokes every
/// session of its family.
pub async fn refresh(
    db: &Db,
    token: &str,
    ip: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<Refresh> {
    let mut tx = db.begin().await?;
    let mut q = Q::new(
        "SELECT id, user_id, family, expires_at, revoked_at, replaced_by FROM sessions WHERE refresh_hash = ",
    );
    q.bind(secret_hash(token)).push(db.backend().for_update());
    let row: Option<SessionRow> = q.fetch_optional(&mut *tx).await?;
    let Some(SessionRow {
        id,
        user_id: user,
        family,
        expires_at,
        revoked_at,
        replaced_by,
    }) = row
    else {
        return Ok(Refresh::Invalid);
    };
    let user = UserId(user);
    if revoked_at.is_some() {
        if replaced_by.is_some() {
            revoke_family_in(&mut tx, &family, now).await?;
            tx.commit().await?;
            return Ok(Refresh::Reused { user });
        }
        return Ok(Refresh::Invalid);
    }
    if expires_at <= db_ts(now) {
        return Ok(Refresh::Invalid);
    }
    let (new_id, refresh_token) = insert(&mut tx, user, &family, ip, now, ttl).await?;
    let mut q = Q::new("UPDATE sessions SET revoked_at = ");
    q.bind(Some(db_ts(now)))
        .push(", replaced_by = ")
        .bind(Some(new_id))
        .push(" WHERE id = ")
        .bind(id);
    q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Refresh::Rotated {
        user,
        session: NewSession {
            family,
            refresh_token,
        },
    })
}

async fn revoke_family_in(tx: &mut Tx, family: &str, now: DateTime<Utc>) -> Result<()> {
    let mut q = Q::new("UPDATE sessions SET revoked_at = ");
    q.bind(Some(db_ts(now)))
        .push(" WHERE revoked_at IS NULL AND family = ")
        .bind(family.to_owned());
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Signs a session family out.
pub async fn revoke_family(tx: &mut Tx, family: &str, now: DateTime<Utc>) -> Result<()> {
    revoke_family_in(tx, family, now).await
}

/// Ends every session of a user (disabled, new password, new roles).
pub async fn revoke_user(tx: &mut Tx, user: UserId, now: DateTime<Utc>) -> Result<()> {
    revoke_user_except(tx, user, None, now).await
}

/// Ends every session of a user but `keep` (the one changing its own password).
pub async fn revoke_user_except(
    tx: &mut Tx,
    user: UserId,
    keep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut q = Q::new("UPDATE sessions SET revoked_at = ");
    q.bind(Some(db_ts(now)))
        .push(" WHERE revoked_at IS NULL AND user_id = ")
        .bind(user.0);
    if let Some(family) = keep {
        q.push(" AND family <> ").bind(family.to_owned());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// The signed-in user of an access token, if the user is enabled and the session family is
/// still live: the revocation check run on every request.
pub async fn active_user(
    db: &Db,
    user: UserId,
    family: &str,
    now: DateTime<Utc>,
) -> Result<Option<super::users::UserRow>> {
    let mut q = Q::new(&format!(
        "SELECT {} FROM users u WHERE u.enabled = 1 AND u.id = ",
        super::users::COLS_U
    ));
    q.bind(user.0)
        .push(" AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.family = ")
        .bind(family.to_owned())
        .push(" AND s.expires_at > ")
        .bind(db_ts(now))
        .push(")");
    q.fetch_optional(db.pool()).await
}
