//! The append-only audit log: who did what, when, from where, before and after.
//! There is deliberately no function here that updates or deletes an entry.

use super::{Ctx, Db, Page, Q, Tx, db_ts};
use crate::domain::access::{AuditScope, FINANCIAL_ENTITIES, OPERATIONAL_ENTITIES};
use crate::domain::audit::{Break, EntryContent, check, entry_hash};
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
    let at = db_ts(at);
    let before = before.map(Value::to_string);
    let after = after.map(Value::to_string);
    let content = EntryContent {
        at: &at,
        user_id: user.map(|u| u.0),
        ip,
        action,
        entity,
        entity_id,
        before_json: before.as_deref(),
        after_json: after.as_deref(),
    };
    // The head row is locked until the transaction ends, so entries chain one after another
    // even when transactions run concurrently.
    let lock = super::tx_backend(tx).for_update();
    let prev: String = Q::new(&format!(
        "SELECT last_hash FROM audit_head WHERE id = 1{lock}"
    ))
    .scalar(&mut **tx)
    .await?;
    let hash = entry_hash(&prev, &content);
    let mut q = Q::new(
        "INSERT INTO audit_log (at, user_id, ip, action, entity, entity_id, before_json, after_json, prev_hash, hash) VALUES (",
    );
    q.bind(at.clone())
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
        .bind(before.clone())
        .push(", ")
        .bind(after.clone())
        .push(", ")
        .bind(prev)
        .push(", ")
        .bind(hash.clone())
        .push(") RETURNING id");
    let id: i64 = q.scalar(&mut **tx).await?;
    let mut q = Q::new("UPDATE audit_head SET last_id = ");
    q.bind(id)
        .push(", last_hash = ")
        .bind(hash)
        .push(" WHERE id = 1");
    q.execute(&mut **tx).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ChainRow {
    id: i64,
    at: String,
    user_id: Option<i64>,
    ip: String,
    action: String,
    entity: String,
    entity_id: Option<i64>,
    before_json: Option<String>,
    after_json: Option<String>,
    prev_hash: String,
    hash: String,
}

/// Walks the whole chain in id order. `Ok(n)` is the number of intact entries; `Err` names
/// the first broken one.
pub async fn verify(db: &Db) -> Result<std::result::Result<i64, Break>> {
    let mut prev = String::new();
    let mut last_id = 0_i64;
    let mut count = 0_i64;
    loop {
        let mut q = Q::new(
            "SELECT id, at, user_id, ip, action, entity, entity_id, before_json, after_json, prev_hash, hash \
             FROM audit_log WHERE id > ",
        );
        q.bind(last_id).push(" ORDER BY id LIMIT 1000");
        let rows: Vec<ChainRow> = q.fetch_all(db.pool()).await?;
        if rows.is_empty() {
            break;
        }
        let walked = check(
            &prev,
            rows.iter().map(|r| {
                (
                    r.id,
                    r.prev_hash.as_str(),
                    r.hash.as_str(),
                    EntryContent {
                        at: &r.at,
                        user_id: r.user_id,
                        ip: &r.ip,
                        action: &r.action,
                        entity: &r.entity,
                        entity_id: r.entity_id,
                        before_json: r.before_json.as_deref(),
                        after_json: r.after_json.as_deref(),
                    },
                )
            }),
        );
        match walked {
            Ok(h) => prev = h,
            Err(b) => return Ok(Err(b)),
        }
        count += rows.len() as i64;
        last_id = rows.last().map_or(last_id, |r| r.id);
    }
    let head: String = Q::new("SELECT last_hash FROM audit_head WHERE id = 1")
        .scalar(db.pool())
        .await?;
    if head != prev {
        return Ok(Err(Break::Tail { last_id }));
    }
    Ok(Ok(count))
}

/// Data patch: chains entries written before the chain existed (those with no hash yet).
pub async fn chain_unhashed(tx: &mut Tx) -> Result<()> {
    let rows: Vec<ChainRow> = Q::new(
        "SELECT id, at, user_id, ip, action, entity, entity_id, before_json, after_json, prev_hash, hash \
         FROM audit_log WHERE hash = '' ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut prev: String = Q::new("SELECT last_hash FROM audit_head WHERE id = 1")
        .scalar(&mut **tx)
        .await?;
    for r in &rows {
        let hash = entry_hash(
            &prev,
            &EntryContent {
                at: &r.at,
                user_id: r.user_id,
                ip: &r.ip,
                action: &r.action,
                entity: &r.entity,
                entity_id: r.entity_id,
                before_json: r.before_json.as_deref(),
                after_json: r.after_json.as_deref(),
            },
        );
        let mut q = Q::new("UPDATE audit_log SET prev_hash = ");
        q.bind(prev.clone())
            .push(", hash = ")
            .bind(hash.clone())
            .push(" WHERE id = ")
            .bind(r.id);
        q.execute(&mut **tx).await?;
        prev = hash;
    }
    let mut q = Q::new("UPDATE audit_head SET last_id = ");
    q.bind(rows.last().map_or(0, |r| r.id))
        .push(", last_hash = ")
        .bind(prev)
        .push(" WHERE id = 1");
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Serialises a record for the log.
pub fn snapshot<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    at: String,
    user_id: Option<i64>,
    ip: String,
    action: String,
    entity: String,
    entity_id: Option<i64>,
    before_json: Option<String>,
    after_json: Option<String>,
}

/// One audit entry as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: i64,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub at: DateTime<Utc>,
    pub user_id: Option<i64>,
    pub ip: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    /// The record before the change, if any.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The record after the change, or details of the event.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

/// Which entries to list, within the reader's part of the log.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Entries about this kind of record (`request`, `user`…).
    pub entity: Option<String>,
    /// Entries about the record with this id.
    pub entity_id: Option<i64>,
    /// Entries of what this user did.
    pub user_id: Option<i64>,
    /// Entries at or after this moment.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this moment.
    pub to: Option<DateTime<Utc>>,
}

/// Lists the entries this reader may see (see [`AuditScope`]) newest first, filtered. The
/// reader's part is chosen in the query.
pub async fn list(
    db: &Db,
    scope: AuditScope,
    f: &Filter,
    page: Page,
) -> Result<(Vec<Entry>, Option<String>)> {
    let mut q = Q::new(
        "SELECT id, at, user_id, ip, action, entity, entity_id, before_json, after_json FROM audit_log WHERE 1 = 1",
    );
    match scope {
        AuditScope::All => {}
        AuditScope::Nothing => {
            q.push(" AND 1 = 0");
        }
        AuditScope::Parts {
            operational,
            financial,
            projects_of,
        } => {
            q.push(" AND (1 = 0");
            let mut entities: Vec<&str> = Vec::new();
            if operational {
                entities.extend(OPERATIONAL_ENTITIES);
            }
            if financial {
                entities.extend(FINANCIAL_ENTITIES);
            }
            for e in entities {
                q.push(" OR entity = ").bind(e.to_owned());
            }
            if let Some(manager) = projects_of {
                q.push(" OR (entity = 'project' AND entity_id IN (SELECT id FROM projects WHERE manager_id = ")
                    .bind(manager.0)
                    .push("))")
                    .push(
                        " OR (entity = 'request' AND entity_id IN (SELECT r.id FROM service_requests r \
                         JOIN projects p ON p.id = r.project_id WHERE p.manager_id = ",
                    )
                    .bind(manager.0)
                    .push("))")
                    .push(
                        " OR (entity = 'report' AND entity_id IN (SELECT a.id FROM service_reports a \
                         JOIN service_requests r ON r.id = a.request_id \
                         JOIN projects p ON p.id = r.project_id WHERE p.manager_id = ",
                    )
                    .bind(manager.0)
                    .push("))");
            }
            q.push(")");
        }
    }
    if let Some(e) = &f.entity {
        q.push(" AND entity = ").bind(e.clone());
    }
    if let Some(id) = f.entity_id {
        q.push(" AND entity_id = ").bind(id);
    }
    if let Some(u) = f.user_id {
        q.push(" AND user_id = ").bind(u);
    }
    if let Some(from) = f.from {
        q.push(" AND at >= ").bind(db_ts(from));
    }
    if let Some(to) = f.to {
        q.push(" AND at < ").bind(db_ts(to));
    }
    page.apply(&mut q, "id");
    let rows: Vec<EntryRow> = q.fetch_all(db.pool()).await?;
    let (rows, next) = page.finish(rows, |e| e.id);
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let entries = rows
        .into_iter()
        .map(|r| {
            Ok(Entry {
                id: r.id,
                at: super::ts(&r.at)?,
                user_id: r.user_id,
                ip: r.ip,
                action: r.action,
                entity: r.entity,
                entity_id: r.entity_id,
                before: parse(r.before_json),
                after: parse(r.after_json),
            })
        })
        .collect::<Result<_>>()?;
    Ok((entries, next))
}
