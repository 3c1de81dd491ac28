//! The append-only audit log: who did what, when, from where, before and after.
//! There is deliberately no function here that updates or deletes an entry.

use super::{Ctx, Db, Page, Q, Tx, db_ts};
use crate::domain::ids::UserId;
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Appends an entry inside the caller's transaction, so it commits or rolls back with the change.
pub async fn record(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    entity: &str,
    entity_id: Option<i64>,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<()> {
    insert(
        tx,
        ctx.now,
        Some(ctx.actor.user_id),
        &ctx.ip,
        action,
        entity,
        entity_id,
        before,
        after,
    )
    .await
}

#[expect(clippy::too_many_arguments, reason = "one column each")]
pub async fn insert(
    tx: &mut Tx,
    at: DateTime<Utc>,
    user: Option<UserId>,
    ip: &str,
    action: &str,
    entity: &str,
    entity_id: Option<i64>,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<()> {
    let mut q = Q::new(
        "INSERT INTO audit_log (at, user_id, ip, action, entity, entity_id, before_json, after_json) VALUES (",
    );
    q.bind(db_ts(at))
        .push(", ")
        .bind(user.map(|u| u.0))
        .push(", ")
        .bind(ip.to_owned())
        .push(", ")
        .bind(action.to_owned())
        .push(", ")
        .bind(entity.to_owned())
        .push(", ")
        .bind(entity_id)
        .push(", ")
        .bind(before.map(Value::to_string))
        .push(", ")
        .bind(after.map(Value::to_string))
        .push(")");
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Serialises a record for the log.
pub fn snapshot<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Entry {
    pub id: i64,
    pub at: String,
    pub user_id: Option<i64>,
    pub ip: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub before_json: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub after_json: Option<String>,
}

/// Lists entries newest first, optionally for one entity.
pub async fn list(
    db: &Db,
    entity: Option<&str>,
    entity_id: Option<i64>,
    page: Page,
) -> Result<(Vec<Entry>, Option<String>)> {
    let mut q = Q::new(
        "SELECT id, at, user_id, ip, action, entity, entity_id, before_json, after_json FROM audit_log WHERE 1 = 1",
    );
    if let Some(e) = entity {
        q.push(" AND entity = ").bind(e.to_owned());
    }
    if let Some(id) = entity_id {
        q.push(" AND entity_id = ").bind(id);
    }
    page.apply(&mut q, "id");
    let rows = q.fetch_all(db.pool()).await?;
    Ok(page.finish(rows, |e: &Entry| e.id))
}
