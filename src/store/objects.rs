//! Service objects: client sites and installations.

use super::{Ctx, Db, Expected, Page, Q, ScopeSql, Tx, UniqueExt, audit, db_ts, ts};
use crate::domain::access::{self, Action, Resource};
use crate::domain::ids::{CustomerId, ObjectId, UserId};
use crate::domain::project::{self, ObjectKind};
use crate::domain::values;
use crate::error::{Error, Problems, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const COLS: &str = "o.id, o.customer_id, o.name, o.address, o.kind, o.serial_number, o.notes, o.archived, \
                    o.created_at, o.updated_at, o.created_by, o.version";

pub const SCOPE: ScopeSql = ScopeSql {
    assigned: "EXISTS (SELECT 1 FROM service_requests x WHERE x.object_id = o.id AND x.assigned_to = {u}) \
               OR EXISTS (SELECT 1 FROM object_engineers e WHERE e.object_id = o.id AND e.user_id = {u})",
    customer: "o.customer_id = {c}",
};

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    customer_id: i64,
    name: String,
    address: String,
    kind: String,
    serial_number: Option<String>,
    notes: String,
    archived: i64,
    created_at: String,
    updated_at: String,
    created_by: Option<i64>,
    version: i64,
}

impl Row {
    fn view(self, engineers: Vec<UserId>) -> Result<ServiceObject> {
        Ok(ServiceObject {
            id: ObjectId(self.id),
            customer_id: CustomerId(self.customer_id),
            name: self.name,
            address: self.address,
            kind: ObjectKind::parse(&self.kind)
                .ok_or_else(|| anyhow::anyhow!("bad kind {}", self.kind))?,
            serial_number: self.serial_number,
            notes: self.notes,
            archived: self.archived != 0,
            engineers,
            created_at: ts(&self.created_at)?,
            updated_at: ts(&self.updated_at)?,
            created_by: self.created_by.map(UserId),
            version: self.version,
        })
    }
}

/// A client site or installation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceObject {
    pub id: ObjectId,
    pub customer_id: CustomerId,
    pub name: String,
    pub address: String,
    pub kind: ObjectKind,
    /// Unique across all objects when set.
    pub serial_number: Option<String>,
    pub notes: String,
    /// Archived objects stay for history but take no new requests.
    pub archived: bool,
    /// Engineers assigned to the object (user ids).
    pub engineers: Vec<UserId>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewObject {
    pub customer_id: CustomerId,
    pub name: String,
    #[serde(default)]
    pub address: String,
    pub kind: ObjectKind,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub engineers: Vec<UserId>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectPatch {
    pub version: Option<i64>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub kind: Option<ObjectKind>,
    /// `null` removes the serial number.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub serial_number: Option<Option<String>>,
    pub notes: Option<String>,
    pub archived: Option<bool>,
    pub engineers: Option<Vec<UserId>>,
}

struct Fields {
    name: String,
    address: String,
    serial: Option<String>,
    notes: String,
}

fn check(
    name: &str,
    address: &str,
    serial: Option<&str>,
    notes: &str,
    engineers: &[UserId],
) -> Result<Fields> {
    let mut p = Problems::new();
    let name = p.check(values::required_line("name", name, 300));
    let address = p.check(values::optional_line("address", address, 500));
    let serial = p.check(project::serial_number(serial));
    let notes = p.check(values::multiline("notes", notes, 5000));
    if engineers.len() > 50 {
        p.push(crate::error::FieldError::new(
            "engineers",
            "too_many",
            "at most 50 engineers",
        ));
    }
    p.finish()?;
    Ok(Fields {
        name: name.expect("checked"),
        address: address.expect("checked"),
        serial: serial.expect("checked"),
        notes: notes.expect("checked"),
    })
}

fn search(f: &Fields) -> String {
    values::search_key(&[&f.name, &f.address, f.serial.as_deref().unwrap_or("")])
}

fn select() -> Q {
    Q::new(&format!("SELECT {COLS} FROM service_objects o WHERE 1 = 1"))
}

async fn engineers_of(tx: &mut Tx, ids: &[i64]) -> Result<Vec<(i64, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Q::new("SELECT object_id, user_id FROM object_engineers WHERE object_id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind(*id);
    }
    q.push(") ORDER BY user_id");
    q.fetch_all(&mut **tx).await
}

async fn views(tx: &mut Tx, rows: Vec<Row>) -> Result<Vec<ServiceObject>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let links = engineers_of(tx, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let engs = links
                .iter()
                .filter(|(o, _)| *o == r.id)
                .map(|(_, u)| UserId(*u))
                .collect();
            r.view(engs)
        })
        .collect()
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: ObjectId, lock: &str) -> Result<Row> {
    let mut q = select();
    q.push(" AND o.id = ").bind(id.0);
    q.scope(access::scope(&ctx.actor, Resource::Objects), SCOPE);
    q.push(lock);
    q.fetch_optional(&mut **tx).await?.ok_or(Error::NotFound)
}

async fn load_view(tx: &mut Tx, ctx: &Ctx, id: ObjectId) -> Result<ServiceObject> {
    let row = load(tx, ctx, id, "").await?;
    Ok(views(tx, vec![row]).await?.remove(0))
}

fn require(ctx: &Ctx, action: Action) -> Result<()> {
    if access::can(&ctx.actor, Resource::Objects, action) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "your role may not change service objects".into(),
        ))
    }
}

async fn set_engineers(tx: &mut Tx, id: ObjectId, engineers: &[UserId]) -> Result<()> {
    let mut q = Q::new("DELETE FROM object_engineers WHERE object_id = ");
    q.bind(id.0);
    q.execute(&mut **tx).await?;
    let mut seen = Vec::new();
    for (i, e) in engineers.iter().enumerate() {
        if seen.contains(e) {
            continue;
        }
        seen.push(*e);
        super::users::ensure_engineer(tx, &format!("engineers[{i}]"), *e).await?;
        let mut q = Q::new("INSERT INTO object_engineers (object_id, user_id) VALUES (");
        q.bind(id.0).push(", ").bind(e.0).push(")");
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
pub struct Filter {
    /// Free-text search in name, address and serial number.
    pub q: Option<String>,
    pub customer: Option<i64>,
    pub kind: Option<String>,
    pub archived: Option<bool>,
    /// Only the objects of this project.
    pub project: Option<i64>,
}

pub async fn list(
    db: &Db,
    ctx: &Ctx,
    f: &Filter,
    page: Page,
) -> Result<(Vec<ServiceObject>, Option<String>)> {
    let mut q = select();
    q.scope(access::scope(&ctx.actor, Resource::Objects), SCOPE);
    q.search("o.search", f.q.as_deref());
    if let Some(c) = f.customer {
        q.push(" AND o.customer_id = ").bind(c);
    }
    if let Some(k) = &f.kind {
        let kind = ObjectKind::parse(k)
            .ok_or_else(|| Error::field("kind", "unknown_value", "unknown object kind"))?;
        q.push(" AND o.kind = ").bind(kind.as_str().to_owned());
    }
    if let Some(a) = f.archived {
        q.push(" AND o.archived = ").bind(i64::from(a));
    }
    if let Some(p) = f.project {
        q.push(" AND o.id IN (SELECT object_id FROM project_objects WHERE project_id = ")
            .bind(p)
            .push(")");
    }
    page.apply(&mut q, "o.id");
    let mut tx = db.pool().begin().await?;
    let rows: Vec<Row> = q.fetch_all(&mut *tx).await?;
    let (rows, next) = page.finish(rows, |r| r.id);
    let v = views(&mut tx, rows).await?;
    tx.commit().await?;
    Ok((v, next))
}

pub async fn get(db: &Db, ctx: &Ctx, id: ObjectId) -> Result<ServiceObject> {
    let mut tx = db.pool().begin().await?;
    let v = load_view(&mut tx, ctx, id).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn create(db: &Db, ctx: &Ctx, input: NewObject) -> Result<ServiceObject> {
    require(ctx, Action::Create)?;
    let f = check(
        &input.name,
        &input.address,
        input.serial_number.as_deref(),
        &input.notes,
        &input.engineers,
    )?;
    let mut tx = db.begin().await?;
    if super::count_where(&mut tx, "customers", "id", input.customer_id.0).await? == 0 {
        return Err(Error::field("customer_id", "not_found", "no such customer"));
    }
    let mut q = Q::new(
        "INSERT INTO service_objects (customer_id, name, address, kind, serial_number, notes, search, created_at, updated_at, created_by) VALUES (",
    );
    q.bind(input.customer_id.0)
        .push(", ")
        .bind(f.name.clone())
        .push(", ")
        .bind(f.address.clone())
        .push(", ")
        .bind(input.kind.as_str().to_owned())
        .push(", ")
        .bind(f.serial.clone())
        .push(", ")
        .bind(f.notes.clone())
        .push(", ")
        .bind(search(&f))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(ctx.actor.user_id.0)
        .push(") RETURNING id");
    let id: i64 = q
        .scalar(&mut *tx)
        .await
        .unique("serial_number", "another object has this serial number")?;
    set_engineers(&mut tx, ObjectId(id), &input.engineers).await?;
    let view = load_view(&mut tx, ctx, ObjectId(id)).await?;
    audit::record(
        &mut tx,
        ctx,
        "create",
        "object",
        Some(id),
        None,
        Some(&audit::snapshot(&view)),
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn update(
    db: &Db,
    ctx: &Ctx,
    id: ObjectId,
    expected: Expected,
    patch: ObjectPatch,
) -> Result<ServiceObject> {
    let mut tx = db.begin().await?;
    load(&mut tx, ctx, id, db.backend().for_update()).await?;
    let before = load_view(&mut tx, ctx, id).await?;
    require(ctx, Action::Update)?;
    super::check_version(expected, before.version)?;
    let serial = patch
        .serial_number
        .clone()
        .unwrap_or(before.serial_number.clone());
    let engineers = patch.engineers.clone().unwrap_or(before.engineers.clone());
    let f = check(
        patch.name.as_deref().unwrap_or(&before.name),
        patch.address.as_deref().unwrap_or(&before.address),
        serial.as_deref(),
        patch.notes.as_deref().unwrap_or(&before.notes),
        &engineers,
    )?;
    let mut q = Q::new("UPDATE service_objects SET name = ");
    q.bind(f.name.clone())
        .push(", address = ")
        .bind(f.address.clone())
        .push(", kind = ")
        .bind(patch.kind.unwrap_or(before.kind).as_str().to_owned())
        .push(", serial_number = ")
        .bind(f.serial.clone())
        .push(", notes = ")
        .bind(f.notes.clone())
        .push(", archived = ")
        .bind(i64::from(patch.archived.unwrap_or(before.archived)))
        .push(", search = ")
        .bind(search(&f))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut *tx)
        .await
        .unique("serial_number", "another object has this serial number")?;
    if patch.engineers.is_some() {
        set_engineers(&mut tx, id, &engineers).await?;
    }
    let after = load_view(&mut tx, ctx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        "update",
        "object",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        Some(&audit::snapshot(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn delete(db: &Db, ctx: &Ctx, id: ObjectId) -> Result<()> {
    let mut tx = db.begin().await?;
    load(&mut tx, ctx, id, db.backend().for_update()).await?;
    let before = load_view(&mut tx, ctx, id).await?;
    require(ctx, Action::Delete)?;
    if super::count_where(&mut tx, "service_requests", "object_id", id.0).await? > 0 {
        return Err(Error::conflict(
            "in_use",
            "service requests refer to this object; archive it instead of deleting",
        ));
    }
    let targets = [
        ("project_objects", "object_id"),
        ("object_engineers", "object_id"),
        ("service_objects", "id"),
    ];
    super::delete_where(&mut tx, &targets, id.0).await?;
    audit::record(
        &mut tx,
        ctx,
        "delete",
        "object",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a request needs to know about an object, read without the user's scope (the caller
/// has already checked what the user may choose).
pub async fn facts(
    tx: &mut Tx,
    id: ObjectId,
) -> Result<Option<crate::domain::request::ObjectFacts>> {
    let mut q = Q::new("SELECT customer_id, archived FROM service_objects WHERE id = ");
    q.bind(id.0);
    let Some((customer_id, archived)) = q.fetch_optional::<(i64, i64), _>(&mut **tx).await? else {
        return Ok(None);
    };
    let mut q = Q::new(
        "SELECT p.id, p.status FROM project_objects po JOIN projects p ON p.id = po.project_id WHERE po.object_id = ",
    );
    q.bind(id.0).push(" ORDER BY p.id");
    let projects: Vec<(i64, String)> = q.fetch_all(&mut **tx).await?;
    Ok(Some(crate::domain::request::ObjectFacts {
        customer_id: CustomerId(customer_id),
        archived: archived != 0,
        active_projects: projects
            .iter()
            .filter(|(_, s)| s == "active")
            .map(|(p, _)| crate::domain::ids::ProjectId(*p))
            .collect(),
        projects: projects
            .iter()
            .map(|(p, _)| crate::domain::ids::ProjectId(*p))
            .collect(),
    }))
}

pub async fn refresh_search_keys(tx: &mut Tx, only_empty: bool) -> Result<()> {
    let sql = format!(
        "SELECT {COLS} FROM service_objects o{}",
        if only_empty {
            " WHERE o.search = ''"
        } else {
            ""
        }
    );
    let rows: Vec<Row> = Q::new(&sql).fetch_all(&mut **tx).await?;
    for r in rows {
        let key = values::search_key(&[
            &r.name,
            &r.address,
            r.serial_number.as_deref().unwrap_or(""),
        ]);
        let mut q = Q::new("UPDATE service_objects SET search = ");
        q.bind(key).push(" WHERE id = ").bind(r.id);
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
