//! The durable outbox: events written in the same transaction as their cause, for the worker
//! to deliver (and retry) later, so a failing integration never loses one.

use super::{Q, Tx, db_ts};
use crate::error::Result;
use chrono::{DateTime, Utc};

/// Queues an event.
pub async fn push(
    tx: &mut Tx,
    kind: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut q = Q::new("INSERT INTO outbox (kind, payload, created_at, next_attempt_at) VALUES (");
    q.bind(kind.to_owned())
        .push(", ")
        .bind(payload.to_string())
        .push(", ")
        .bind(db_ts(now))
        .push(", ")
        .bind(db_ts(now))
        .push(")");
    q.execute(&mut **tx).await?;
    Ok(())
}
