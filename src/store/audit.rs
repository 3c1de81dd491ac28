//! The append-only audit log: who did what, when, from where, before and after.
//! There is deliberately no function here that deletes an entry, and none that updates one
//! outside the named data patches ([`chain_unhashed`], [`scrub_personal_data`]), which
//! re-chain what they touch and are recorded in `data_patches`.
//!
//! Personal data (contact e-mails and phones, see [`super::pii::AUDITED`]) never enters the
//! log in clear: snapshots carry a keyed fingerprint instead ([`private_snapshot`]), and
//! [`insert`] refuses an entry that would hold one.
//!
//! Who acted: `user_id` names the signed-in user. Without one, `ip` says where the change
//! came from: [`SOURCE_CLI`] for the `ferum` command line (`user add`, the first
//! administrator of `serve` and `site init`), [`SOURCE_SYSTEM`] for the service itself (data
//! patches), otherwise the client's address (e.g. a failed sign-in of an unknown e-mail).

use super::{Ctx, Db, Page, Q, Tx, db_ts};
use crate::domain::access::{AuditScope, FINANCIAL_ENTITIES, OPERATIONAL_ENTITIES};
use crate::domain::audit::{Break, EntryContent, check, entry_hash};
use crate::domain::ids::UserId;
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// The `ip` of entries made on the `ferum` command line (with no user).
pub const SOURCE_CLI: &str = "cli";
/// The `ip` of entries made by the service itself (with no user), e.g. data patches.
pub const SOURCE_SYSTEM: &str = "system";

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
    for v in [before, after].into_iter().flatten() {
        let clear = super::pii::in_clear(entity, v);
        if !clear.is_empty() {
            return Err(crate::error::Error::Internal(anyhow::anyhow!(
                "refusing to write personal data ({}) of a {entity} in clear into the audit log",
                clear.join(", ")
            )));
        }
    }
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

impl ChainRow {
    /// What the entry's hash covers.
    fn content(&self) -> EntryContent<'_> {
        EntryContent {
            at: &self.at,
            user_id: self.user_id,
            ip: &self.ip,
            action: &self.action,
            entity: &self.entity,
            entity_id: self.entity_id,
            before_json: self.before_json.as_deref(),
            after_json: self.after_json.as_deref(),
        }
    }
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
            rows.iter()
                .map(|r| (r.id, r.prev_hash.as_str(), r.hash.as_str(), r.content())),
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

/// Serialises a record for the log. Records with personal data use [`private_snapshot`].
pub fn snapshot<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Serialises a record of `entity` for the log with each personal field replaced by its
/// keyed fingerprint (see [`super::pii::scrub`]).
pub fn private_snapshot<T: Serialize>(
    keys: &crate::crypto::DataKeys,
    entity: &str,
    v: &T,
) -> Value {
    let mut v = snapshot(v);
    super::pii::scrub(keys, entity, &mut v);
    v
}

/// What [`scrub_personal_data`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rechained {
    /// The first rewritten entry: it and every later one got new hashes.
    pub from_id: i64,
    /// How many entries were re-chained (from `from_id` to the last one before the patch).
    pub entries: i64,
    /// How many of them had personal data replaced.
    pub rewritten: i64,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    id: i64,
    entity: String,
    before_json: Option<String>,
    after_json: Option<String>,
}

/// The snapshot texts with personal fields replaced by fingerprints, or `None` when nothing
/// needs replacing.
fn scrubbed(
    keys: &crate::crypto::DataKeys,
    entity: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> Option<(Option<String>, Option<String>)> {
    let mut changed = false;
    let mut one = |text: Option<&str>| -> Option<String> {
        let text = text?;
        if let Ok(mut v) = serde_json::from_str::<Value>(text)
            && super::pii::scrub(keys, entity, &mut v)
        {
            changed = true;
            return Some(v.to_string());
        }
        Some(text.to_owned())
    };
    let (b, a) = (one(before), one(after));
    changed.then_some((b, a))
}

/// Data patch: replaces personal data in entries written before snapshots were scrubbed by
/// keyed fingerprints, then re-chains the log from the first rewritten entry (its hash and
/// every later one's are recomputed) and appends an `audit.rechain` entry by the system that
/// says what was done and why. The old chain from that entry on must be intact: a break is
/// never re-chained over (that would hide tampering), the patch fails instead. A second run
/// finds nothing to rewrite and changes nothing.
pub async fn scrub_personal_data(
    tx: &mut Tx,
    keys: &crate::crypto::DataKeys,
    now: DateTime<Utc>,
    patch: &str,
) -> Result<Option<Rechained>> {
    let fail = |why: String| crate::error::Error::Internal(anyhow::anyhow!(why));
    // Writers wait for the head until this transaction ends.
    let lock = super::tx_backend(tx).for_update();
    let head: Option<(String,)> = Q::new(&format!(
        "SELECT last_hash FROM audit_head WHERE id = 1{lock}"
    ))
    .fetch_optional(&mut **tx)
    .await?;
    let (head_hash,) = head.ok_or_else(|| fail("the audit head row is missing".into()))?;
    // The first entry that holds personal data in clear.
    let entities: Vec<&str> = {
        let mut e: Vec<&str> = super::pii::AUDITED.iter().map(|a| a.0).collect();
        e.dedup();
        e
    };
    let mut first = None;
    let mut last_id = 0_i64;
    'find: loop {
        let mut q = Q::new("SELECT id, entity, before_json, after_json FROM audit_log WHERE id > ");
        q.bind(last_id).push(" AND entity IN (");
        for (n, e) in entities.iter().enumerate() {
            if n > 0 {
                q.push(", ");
            }
            q.bind((*e).to_owned());
        }
        q.push(") ORDER BY id LIMIT 1000");
        let rows: Vec<SnapshotRow> = q.fetch_all(&mut **tx).await?;
        let Some(last) = rows.last() else { break };
        last_id = last.id;
        for r in &rows {
            if scrubbed(
                keys,
                &r.entity,
                r.before_json.as_deref(),
                r.after_json.as_deref(),
            )
            .is_some()
            {
                first = Some(r.id);
                break 'find;
            }
        }
    }
    let Some(from_id) = first else {
        return Ok(None);
    };
    // Walk from there: check the old links, rewrite, recompute the new ones.
    let mut q = Q::new("SELECT hash FROM audit_log WHERE id < ");
    q.bind(from_id).push(" ORDER BY id DESC LIMIT 1");
    let start: String = q
        .fetch_optional::<(String,), _>(&mut **tx)
        .await?
        .map(|r| r.0)
        .unwrap_or_default();
    let (mut old_prev, mut new_prev) = (start.clone(), start);
    let (mut entries, mut rewritten, mut after_id) = (0_i64, 0_i64, from_id - 1);
    loop {
        let mut q = Q::new(
            "SELECT id, at, user_id, ip, action, entity, entity_id, before_json, after_json, prev_hash, hash \
             FROM audit_log WHERE id > ",
        );
        q.bind(after_id).push(" ORDER BY id LIMIT 1000");
        let rows: Vec<ChainRow> = q.fetch_all(&mut **tx).await?;
        let Some(last) = rows.last() else { break };
        after_id = last.id;
        for r in rows {
            let old = r.content();
            if r.prev_hash != old_prev || entry_hash(&old_prev, &old) != r.hash {
                return Err(fail(format!(
                    "the audit chain is broken at entry {} (see `ferum audit verify`); personal \
                     data in the log is not rewritten over a broken chain",
                    r.id
                )));
            }
            old_prev = r.hash.clone();
            let new = scrubbed(
                keys,
                &r.entity,
                r.before_json.as_deref(),
                r.after_json.as_deref(),
            );
            let (before, after) = match &new {
                Some((b, a)) => (b.as_deref(), a.as_deref()),
                None => (r.before_json.as_deref(), r.after_json.as_deref()),
            };
            let hash = entry_hash(
                &new_prev,
                &EntryContent {
                    before_json: before,
                    after_json: after,
                    ..old
                },
            );
            let mut q = Q::new("UPDATE audit_log SET prev_hash = ");
            q.bind(new_prev.clone())
                .push(", hash = ")
                .bind(hash.clone());
            if new.is_some() {
                q.push(", before_json = ")
                    .bind(before.map(str::to_owned))
                    .push(", after_json = ")
                    .bind(after.map(str::to_owned));
                rewritten += 1;
            }
            q.push(" WHERE id = ").bind(r.id);
            q.execute(&mut **tx).await?;
            new_prev = hash;
            entries += 1;
        }
    }
    // As `verify` checks it: the head names the last entry's hash.
    if old_prev != head_hash {
        return Err(fail(format!(
            "the audit chain is broken after entry {after_id} (see `ferum audit verify`); personal \
             data in the log is not rewritten over a broken chain"
        )));
    }
    let mut q = Q::new("UPDATE audit_head SET last_hash = ");
    q.bind(new_prev).push(" WHERE id = 1");
    q.execute(&mut **tx).await?;
    let done = Rechained {
        from_id,
        entries,
        rewritten,
    };
    let details = serde_json::json!({
        "patch": patch,
        "reason": "personal data (contact e-mails and phones) in clear in earlier entries was replaced by keyed fingerprints, so their hashes and those of every later entry were recomputed",
        "from_id": from_id,
        "to_id": after_id,
        "entries": entries,
        "rewritten": rewritten,
        "previous_head_hash": head_hash,
    });
    insert(
        tx,
        now,
        None,
        SOURCE_SYSTEM,
        "audit.rechain",
        "audit",
        None,
        None,
        Some(&details),
    )
    .await?;
    Ok(Some(done))
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
    /// Who did it; `null` for the command line and the system (see `ip`).
    pub user_id: Option<i64>,
    /// The client's address; `cli` for the `ferum` command line (adding users, the first
    /// administrator), `system` for the service itself (data patches).
    pub ip: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    /// The record before the change, if any. Personal fields (customers' `contact_email` and
    /// `contact_phone`, users' `phone`) hold only a keyed fingerprint (`pii:` and 16 hex
    /// digits; equal values, equal fingerprints), never the value.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The record after the change, or details of the event; personal fields as in `before`.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// The personal fields whose (hidden) value differs between `before` and `after`.
    pub personal_changed: Vec<String>,
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
            let (before, after) = (parse(r.before_json), parse(r.after_json));
            Ok(Entry {
                id: r.id,
                at: super::ts(&r.at)?,
                user_id: r.user_id,
                ip: r.ip,
                action: r.action,
                personal_changed: super::pii::changed(&r.entity, before.as_ref(), after.as_ref()),
                entity: r.entity,
                entity_id: r.entity_id,
                before,
                after,
            })
        })
        .collect::<Result<_>>()?;
    Ok((entries, next))
}
