//! The durable outbox: events written in the same transaction as their cause, and the
//! messages the worker makes of them, each claimed, delivered and retried on its own, so a
//! failing integration never loses one and never blocks the write that caused it.
//!
//! A row moves `pending` → `delivered`, or → `dead` after its last attempt (an administrator
//! may send it back to `pending`). A worker claims due rows for a lease; the attempt is
//! counted at the claim, so a worker killed mid-delivery leaves a row that another (or the
//! same, restarted) worker claims again when the lease ends — delivery is at least once.

use super::{Db, Page, Q, Tx, db_ts, ts, ts_opt};
use crate::domain::access::Role;
use crate::domain::event::Event;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Kinds of rows that are messages, not events.
pub const EMAIL: &str = "email";
pub const TELEGRAM: &str = "telegram";

/// One message to one recipient on one channel, made from an event by the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The event row it was made from.
    pub event_id: i64,
    /// An e-mail address or a Telegram chat id.
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The record the message is about, on the site.
    pub link: Option<String>,
}

/// Queues an event in the caller's transaction; an event already queued under the same
/// de-duplication key is not queued again. Says whether it was queued.
pub async fn push(tx: &mut Tx, event: &Event, now: DateTime<Utc>) -> Result<bool> {
    let payload = serde_json::to_string(event).map_err(anyhow::Error::from)?;
    insert(tx, event.kind(), &payload, &event.dedup_key(), now).await
}

/// Queues a message made from an event (its key keeps a re-made one from being sent twice).
pub async fn push_delivery(
    tx: &mut Tx,
    channel: &str,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<bool> {
    let payload = serde_json::to_string(delivery).map_err(anyhow::Error::from)?;
    let key = format!("{}:{channel}:{}", delivery.event_id, delivery.to);
    insert(tx, channel, &payload, &key, now).await
}

async fn insert(
    tx: &mut Tx,
    kind: &str,
    payload: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut q = Q::new(
        "INSERT INTO outbox (kind, payload, dedup_key, status, created_at, next_attempt_at) VALUES (",
    );
    q.bind(kind.to_owned())
        .push(", ")
        .bind(payload.to_owned())
        .push(", ")
        .bind(key.to_owned())
        .push(", 'pending', ")
        .bind(db_ts(now))
        .push(", ")
        .bind(db_ts(now))
        .push(") ON CONFLICT (dedup_key) DO NOTHING");
    Ok(q.execute(&mut **tx).await? == 1)
}

/// A row a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
}

impl Claimed {
    /// The event of an event row (rows of older versions, `security_alert`, read as the
    /// login alert they were).
    pub fn event(&self) -> Result<Event> {
        if self.kind == "security_alert" {
            let v: serde_json::Value =
                serde_json::from_str(&self.payload).map_err(anyhow::Error::from)?;
            return Ok(Event::LoginAlert {
                account: v["account"].as_str().unwrap_or_default().to_owned(),
                failures: v["failures_today"].as_u64().unwrap_or_default(),
                day: self.created_at.format("%Y-%m-%d").to_string(),
            });
        }
        Ok(serde_json::from_str(&self.payload).map_err(anyhow::Error::from)?)
    }

    /// The message of a delivery row.
    pub fn delivery(&self) -> Result<Delivery> {
        Ok(serde_json::from_str(&self.payload).map_err(anyhow::Error::from)?)
    }
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: i64,
    kind: String,
    payload: String,
    attempts: i64,
    created_at: String,
}

/// Claims up to `limit` due rows for `worker` until `now + lease`, counting an attempt on
/// each. On PostgreSQL rows another worker holds are skipped (`SKIP LOCKED`), so any number
/// of workers share the queue; on SQLite the write lock makes one claim at a time.
pub async fn claim(
    db: &Db,
    worker: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<Claimed>> {
    let mut tx = db.begin().await?;
    let mut q = Q::new("UPDATE outbox SET claimed_by = ");
    q.bind(worker.to_owned())
        .push(", claimed_until = ")
        .bind(db_ts(now + lease))
        .push(
            ", attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox \
             WHERE status = 'pending' AND next_attempt_at <= ",
        )
        .bind(db_ts(now))
        .push(" AND (claimed_until IS NULL OR claimed_until < ")
        .bind(db_ts(now))
        .push(") ORDER BY id LIMIT ")
        .bind(limit)
        .push(db.backend().skip_locked())
        .push(") RETURNING id, kind, payload, attempts, created_at");
    let rows: Vec<ClaimRow> = q.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let mut claimed = rows
        .into_iter()
        .map(|r| {
            Ok(Claimed {
                id: r.id,
                kind: r.kind,
                payload: r.payload,
                attempts: r.attempts,
                created_at: ts(&r.created_at)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// Marks a held row delivered, in the caller's transaction; false when the worker no longer
/// holds it (its lease ended and another worker took it).
pub async fn complete(tx: &mut Tx, id: i64, worker: &str, now: DateTime<Utc>) -> Result<bool> {
    let mut q = Q::new("UPDATE outbox SET status = 'delivered', delivered_at = ");
    q.bind(db_ts(now))
        .push(", claimed_by = NULL, claimed_until = NULL, last_error = NULL WHERE id = ")
        .bind(id)
        .push(" AND claimed_by = ")
        .bind(worker.to_owned());
    Ok(q.execute(&mut **tx).await? == 1)
}

/// What a failed attempt means for its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// No more attempts: the row is dead until an administrator retries it.
    Dead,
}

/// Records a failed attempt of a held row: the error, and a later retry or its death.
pub async fn fail(db: &Db, id: i64, worker: &str, error: &str, failure: Failure) -> Result<()> {
    let error: String = error.chars().take(1000).collect();
    let mut tx = db.begin().await?;
    let mut q = Q::new("UPDATE outbox SET last_error = ");
    q.bind(error)
        .push(", claimed_by = NULL, claimed_until = NULL, ");
    match failure {
        Failure::RetryAt(at) => q.push("next_attempt_at = ").bind(db_ts(at)),
        Failure::Dead => q.push("status = 'dead'"),
    };
    q.push(" WHERE id = ")
        .bind(id)
        .push(" AND claimed_by = ")
        .bind(worker.to_owned());
    q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives back what a stopping worker holds without having tried it: not counted as attempts.
pub async fn release(db: &Db, worker: &str, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for id in ids {
        let mut q = Q::new(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts - 1 WHERE id = ",
        );
        q.bind(*id)
            .push(" AND claimed_by = ")
            .bind(worker.to_owned());
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An outbox row as administrators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = OutboxEntry)]
pub struct Entry {
    pub id: i64,
    /// An event kind (`request_opened`, …) or a channel (`email`, `telegram`).
    pub kind: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Held by this worker until `claimed_until`.
    pub claimed_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    kind: String,
    status: String,
    attempts: i64,
    created_at: String,
    next_attempt_at: String,
    delivered_at: Option<String>,
    last_error: Option<String>,
    claimed_by: Option<String>,
}

impl EntryRow {
    fn entry(self) -> Result<Entry> {
        Ok(Entry {
            id: self.id,
            kind: self.kind,
            status: self.status,
            attempts: self.attempts,
            created_at: ts(&self.created_at)?,
            next_attempt_at: ts(&self.next_attempt_at)?,
            delivered_at: ts_opt(&self.delivered_at)?,
            last_error: self.last_error,
            claimed_by: self.claimed_by,
        })
    }
}

const ENTRY_COLUMNS: &str = "id, kind, status, attempts, created_at, next_attempt_at, \
                             delivered_at, last_error, claimed_by";

/// Rows of one status (all when `None`), newest first.
pub async fn list(
    db: &Db,
    ctx: &super::Ctx,
    status: Option<&str>,
    page: Page,
) -> Result<(Vec<Entry>, Option<String>)> {
    if !ctx.actor.has(Role::Admin) {
        return Err(Error::NotFound);
    }
    let mut q = Q::new(&format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE 1 = 1"));
    if let Some(s) = status {
        q.push(" AND status = ").bind(s.to_owned());
    }
    page.apply(&mut q, "id");
    let rows: Vec<EntryRow> = q.fetch_all(db.pool()).await?;
    let (rows, next) = page.finish(rows, |r| r.id);
    Ok((
        rows.into_iter()
            .map(EntryRow::entry)
            .collect::<Result<_>>()?,
        next,
    ))
}

/// Sends a pending or dead row to be tried at once, with its attempts counted afresh; a
/// delivered row stays as it is (409). Audited by the caller's context.
pub async fn retry_now(db: &Db, ctx: &super::Ctx, id: i64) -> Result<Entry> {
    let mut tx = db.begin().await?;
    let lock = db.backend().for_update();
    // Only administrators see the outbox: to anyone else it does not exist.
    if !ctx.actor.has(Role::Admin) {
        return Err(Error::NotFound);
    }
    let mut q = Q::new(&format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE id = "));
    q.bind(id).push(lock);
    let before: EntryRow = q.fetch_optional(&mut *tx).await?.ok_or(Error::NotFound)?;
    if before.status == "delivered" {
        return Err(Error::conflict(
            "already_delivered",
            "this entry was delivered; there is nothing to retry",
        ));
    }
    let mut q = Q::new(
        "UPDATE outbox SET status = 'pending', attempts = 0, claimed_by = NULL, claimed_until = NULL, next_attempt_at = ",
    );
    q.bind(db_ts(ctx.now)).push(" WHERE id = ").bind(id);
    q.execute(&mut *tx).await?;
    let mut q = Q::new(&format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE id = "));
    q.bind(id);
    let after: EntryRow = q.fetch_optional(&mut *tx).await?.ok_or(Error::NotFound)?;
    let (before, after) = (before.entry()?, after.entry()?);
    super::audit::record(
        &mut tx,
        ctx,
        "retry",
        "outbox",
        Some(id),
        Some(&super::audit::snapshot(&before)),
        Some(&super::audit::snapshot(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Pending rows and the age of the oldest in seconds, for the queue gauges.
pub async fn depth(db: &Db, now: DateTime<Utc>) -> Result<(i64, i64, i64)> {
    let (pending, oldest): (i64, Option<String>) =
        sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'")
            .fetch_one(db.pool())
            .await?;
    let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
        .fetch_one(db.pool())
        .await?;
    let age = match oldest {
        Some(t) => (now - ts(&t)?).num_seconds().max(0),
        None => 0,
    };
    Ok((pending, age, dead))
}
