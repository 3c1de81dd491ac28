//! Service projects (contracts) and their objects.

use super::{Ctx, Db, Expected, Page, Q, ScopeSql, Tx, UniqueExt, audit, db_ts, ts};
use crate::domain::access::{self, Action, Resource, Role};
use crate::domain::ids::{CustomerId, ObjectId, ProjectId, UserId};
use crate::domain::project::{self, ProjectStatus};
use crate::domain::time::{self, date_from_db, date_to_db};
use crate::domain::values::{self, Money};
use crate::error::{Error, Problems, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

const COLS: &str = "p.id, p.customer_id, p.name, p.start_date, p.end_date, p.manager_id, p.contract_value, \
                    p.status, p.created_at, p.updated_at, p.created_by, p.version";

pub const SCOPE: ScopeSql = ScopeSql {
    assigned: "EXISTS (SELECT 1 FROM service_requests x WHERE x.project_id = p.id AND x.assigned_to = {u})",
    customer: "p.customer_id = {c}",
};

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    customer_id: i64,
    name: String,
    start_date: String,
    end_date: Option<String>,
    manager_id: Option<i64>,
    contract_value: i64,
    status: String,
    created_at: String,
    updated_at: String,
    created_by: Option<i64>,
    version: i64,
}

impl Row {
    fn view(self, objects: Vec<ProjectObject>) -> Result<Project> {
        Ok(Project {
            id: ProjectId(self.id),
            customer_id: CustomerId(self.customer_id),
            name: self.name,
            start_date: date_from_db(&self.start_date)?,
            end_date: self.end_date.as_deref().map(date_from_db).transpose()?,
            manager_id: self.manager_id.map(UserId),
            contract_value: Money(self.contract_value).to_string(),
            status: ProjectStatus::parse(&self.status)
                .ok_or_else(|| anyhow::anyhow!("bad status"))?,
            objects,
            created_at: ts(&self.created_at)?,
            updated_at: ts(&self.updated_at)?,
            created_by: self.created_by.map(UserId),
            version: self.version,
        })
    }
}

/// An object within a project, with an optional scope note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectObject {
    pub object_id: ObjectId,
    #[serde(default)]
    pub scope: String,
}

#[derive(Debug, sqlx::FromRow)]
struct LinkRow {
    project_id: i64,
    object_id: i64,
    scope: String,
}

/// A service contract with a customer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub customer_id: CustomerId,
    pub name: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub manager_id: Option<UserId>,
    /// Roubles, as a decimal string.
    #[schema(example = "1250000.00")]
    pub contract_value: String,
    pub status: ProjectStatus,
    pub objects: Vec<ProjectObject>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub customer_id: CustomerId,
    pub name: String,
    /// From 2000-01-01 to 2199-12-31.
    pub start_date: NaiveDate,
    /// From 2000-01-01 to 2199-12-31, not before the start.
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    #[serde(default)]
    pub manager_id: Option<UserId>,
    /// Roubles, as a decimal string, up to two decimals; at most 1000000000.00.
    #[serde(default)]
    pub contract_value: Option<String>,
    #[serde(default)]
    pub status: Option<ProjectStatus>,
    #[serde(default)]
    pub objects: Vec<ProjectObject>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    pub version: Option<i64>,
    pub name: Option<String>,
    /// From 2000-01-01 to 2199-12-31.
    pub start_date: Option<NaiveDate>,
    /// From 2000-01-01 to 2199-12-31, not before the start.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub end_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<i64>)]
    pub manager_id: Option<Option<UserId>>,
    /// Roubles, as a decimal string, up to two decimals; at most 1000000000.00.
    pub contract_value: Option<String>,
    pub status: Option<ProjectStatus>,
}

fn select() -> Q {
    Q::new(&format!("SELECT {COLS} FROM projects p WHERE 1 = 1"))
}

async fn links(tx: &mut Tx, ids: &[i64]) -> Result<Vec<LinkRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q =
        Q::new("SELECT project_id, object_id, scope FROM project_objects WHERE project_id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind(*id);
    }
    q.push(") ORDER BY object_id");
    q.fetch_all(&mut **tx).await
}

async fn views(tx: &mut Tx, rows: Vec<Row>) -> Result<Vec<Project>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let all = links(tx, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let objs = all
                .iter()
                .filter(|l| l.project_id == r.id)
                .map(|l| ProjectObject {
                    object_id: ObjectId(l.object_id),
                    scope: l.scope.clone(),
                })
                .collect();
            r.view(objs)
        })
        .collect()
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: ProjectId, lock: &str) -> Result<Row> {
    let mut q = select();
    q.push(" AND p.id = ").bind(id.0);
    q.scope(access::scope(&ctx.actor, Resource::Projects), SCOPE);
    q.push(lock);
    q.fetch_optional(&mut **tx).await?.ok_or(Error::NotFound)
}

async fn load_view(tx: &mut Tx, ctx: &Ctx, id: ProjectId) -> Result<Project> {
    let row = load(tx, ctx, id, "").await?;
    Ok(views(tx, vec![row]).await?.remove(0))
}

fn require(ctx: &Ctx, action: Action) -> Result<()> {
    if access::can(&ctx.actor, Resource::Projects, action) {
        Ok(())
    } else {
        Err(Error::Forbidden("your role may not change projects".into()))
    }
}

struct Fields {
    name: String,
    value: Money,
}

/// Checks a project's fields; `given` are the dates the client sent, held to the sane range
/// of [`time::check_date`] (dates stored before the range was enforced stay as they are).
fn check(
    name: &str,
    start: NaiveDate,
    end: Option<NaiveDate>,
    given: [(&str, Option<NaiveDate>); 2],
    value: Option<&str>,
) -> Result<Fields> {
    let mut p = Problems::new();
    let name = p.check(values::required_line("name", name, 300));
    let mut in_range = true;
    for (field, d) in given {
        if let Some(d) = d {
            in_range &= p.check(time::check_date(field, d)).is_some();
        }
    }
    if in_range {
        p.check(project::check_dates(start, end));
    }
    let value = match value {
        Some(v) => p.check(Money::parse("contract_value", v)),
        None => Some(Money(0)),
    };
    p.finish()?;
    Ok(Fields {
        name: name.expect("checked"),
        value: value.expect("checked"),
    })
}

/// Adds an object to a project: same customer, at most once.
async fn add_object(
    tx: &mut Tx,
    project: ProjectId,
    customer: CustomerId,
    link: &ProjectObject,
    field: &str,
) -> Result<()> {
    let scope = values::optional_line(&format!("{field}.scope"), &link.scope, 1000)
        .map_err(|e| Error::Validation(vec![e]))?;
    let mut q = Q::new("SELECT customer_id FROM service_objects WHERE id = ");
    q.bind(link.object_id.0);
    match q.fetch_optional::<(i64,), _>(&mut **tx).await? {
        None => {
            return Err(Error::field(
                format!("{field}.object_id"),
                "not_found",
                "no such object",
            ));
        }
        Some((c,)) if c != customer.0 => {
            return Err(Error::field(
                format!("{field}.object_id"),
                "customer_mismatch",
                "the object belongs to another customer",
            ));
        }
        Some(_) => {}
    }
    let mut q = Q::new("INSERT INTO project_objects (project_id, object_id, scope) VALUES (");
    q.bind(project.0)
        .push(", ")
        .bind(link.object_id.0)
        .push(", ")
        .bind(scope)
        .push(")");
    q.execute(&mut **tx).await.unique(
        &format!("{field}.object_id"),
        "the object is already in this project",
    )?;
    Ok(())
}

async fn ensure_customer(tx: &mut Tx, id: CustomerId) -> Result<()> {
    if super::count_where(tx, "customers", "id", id.0).await? == 0 {
        return Err(Error::field("customer_id", "not_found", "no such customer"));
    }
    Ok(())
}

const MANAGER_ROLES: &[Role] = &[
    Role::ProjectManager,
    Role::Admin,
    Role::DepartmentHead,
    Role::Director,
];

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
pub struct Filter {
    /// Free-text search in the name.
    pub q: Option<String>,
    pub customer: Option<i64>,
    pub status: Option<String>,
    pub object: Option<i64>,
}

pub async fn list(
    db: &Db,
    ctx: &Ctx,
    f: &Filter,
    page: Page,
) -> Result<(Vec<Project>, Option<String>)> {
    let mut q = select();
    q.scope(access::scope(&ctx.actor, Resource::Projects), SCOPE);
    q.search("p.search", f.q.as_deref());
    if let Some(c) = f.customer {
        q.push(" AND p.customer_id = ").bind(c);
    }
    if let Some(s) = &f.status {
        let st = ProjectStatus::parse(s)
            .ok_or_else(|| Error::field("status", "unknown_value", "unknown project status"))?;
        q.push(" AND p.status = ").bind(st.as_str().to_owned());
    }
    if let Some(o) = f.object {
        q.push(" AND EXISTS (SELECT 1 FROM project_objects po WHERE po.project_id = p.id AND po.object_id = ")
            .bind(o)
            .push(")");
    }
    page.apply(&mut q, "p.id");
    let mut tx = db.pool().begin().await?;
    let rows: Vec<Row> = q.fetch_all(&mut *tx).await?;
    let (rows, next) = page.finish(rows, |r| r.id);
    let v = views(&mut tx, rows).await?;
    tx.commit().await?;
    Ok((v, next))
}

pub async fn get(db: &Db, ctx: &Ctx, id: ProjectId) -> Result<Project> {
    let mut tx = db.pool().begin().await?;
    let v = load_view(&mut tx, ctx, id).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn create(db: &Db, ctx: &Ctx, input: NewProject) -> Result<Project> {
    require(ctx, Action::Create)?;
    let f = check(
        &input.name,
        input.start_date,
        input.end_date,
        [
            ("start_date", Some(input.start_date)),
            ("end_date", input.end_date),
        ],
        input.contract_value.as_deref(),
    )?;
    let mut tx = db.begin().await?;
    ensure_customer(&mut tx, input.customer_id).await?;
    if let Some(m) = input.manager_id {
        super::users::ensure_role(&mut tx, "manager_id", m, MANAGER_ROLES, "project manager")
            .await?;
    }
    let status = input.status.unwrap_or(ProjectStatus::Planned);
    let mut q = Q::new(
        "INSERT INTO projects (customer_id, name, start_date, end_date, manager_id, contract_value, status, search, created_at, updated_at, created_by) VALUES (",
    );
    q.bind(input.customer_id.0)
        .push(", ")
        .bind(f.name.clone())
        .push(", ")
        .bind(date_to_db(input.start_date))
        .push(", ")
        .bind(input.end_date.map(date_to_db))
        .push(", ")
        .bind(input.manager_id.map(|m| m.0))
        .push(", ")
        .bind(f.value.0)
        .push(", ")
        .bind(status.as_str().to_owned())
        .push(", ")
        .bind(values::search_key(&[&f.name]))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(ctx.actor.user_id.0)
        .push(") RETURNING id");
    let id = ProjectId(q.scalar(&mut *tx).await?);
    for (i, link) in input.objects.iter().enumerate() {
        add_object(
            &mut tx,
            id,
            input.customer_id,
            link,
            &format!("objects[{i}]"),
        )
        .await?;
    }
    let view = load_view(&mut tx, ctx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        "create",
        "project",
        Some(id.0),
        None,
        Some(&audit::snapshot(&view)),
    )
    .await?;
    if let Some(e) = crate::domain::event::project_status_changed(id, "", status.as_str()) {
        super::outbox::push(&mut tx, &e, ctx.now).await?;
    }
    tx.commit().await?;
    Ok(view)
}

pub async fn update(
    db: &Db,
    ctx: &Ctx,
    id: ProjectId,
    expected: Expected,
    patch: ProjectPatch,
) -> Result<Project> {
    let mut tx = db.begin().await?;
    load(&mut tx, ctx, id, db.backend().for_update()).await?;
    let before = load_view(&mut tx, ctx, id).await?;
    require(ctx, Action::Update)?;
    super::check_version(expected, before.version)?;
    let start = patch.start_date.unwrap_or(before.start_date);
    let end = patch.end_date.unwrap_or(before.end_date);
    let value = patch
        .contract_value
        .clone()
        .unwrap_or(before.contract_value.clone());
    let f = check(
        patch.name.as_deref().unwrap_or(&before.name),
        start,
        end,
        [
            ("start_date", patch.start_date),
            ("end_date", patch.end_date.flatten()),
        ],
        Some(&value),
    )?;
    let manager = patch.manager_id.unwrap_or(before.manager_id);
    if let (Some(Some(m)), Some(_)) = (patch.manager_id, manager) {
        super::users::ensure_role(&mut tx, "manager_id", m, MANAGER_ROLES, "project manager")
            .await?;
    }
    let mut q = Q::new("UPDATE projects SET name = ");
    q.bind(f.name.clone())
        .push(", start_date = ")
        .bind(date_to_db(start))
        .push(", end_date = ")
        .bind(end.map(date_to_db))
        .push(", manager_id = ")
        .bind(manager.map(|m| m.0))
        .push(", contract_value = ")
        .bind(f.value.0)
        .push(", status = ")
        .bind(patch.status.unwrap_or(before.status).as_str().to_owned())
        .push(", search = ")
        .bind(values::search_key(&[&f.name]))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut *tx).await?;
    let after = load_view(&mut tx, ctx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        "update",
        "project",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        Some(&audit::snapshot(&after)),
    )
    .await?;
    if let Some(e) = crate::domain::event::project_status_changed(
        id,
        before.status.as_str(),
        after.status.as_str(),
    ) {
        super::outbox::push(&mut tx, &e, ctx.now).await?;
    }
    tx.commit().await?;
    Ok(after)
}

pub async fn delete(db: &Db, ctx: &Ctx, id: ProjectId) -> Result<()> {
    let mut tx = db.begin().await?;
    load(&mut tx, ctx, id, db.backend().for_update()).await?;
    let before = load_view(&mut tx, ctx, id).await?;
    require(ctx, Action::Delete)?;
    if super::count_where(&mut tx, "service_requests", "project_id", id.0).await? > 0 {
        return Err(Error::conflict(
            "in_use",
            "service requests refer to this project; cancel or complete it instead",
        ));
    }
    super::delete_where(
        &mut tx,
        &[("project_objects", "project_id"), ("projects", "id")],
        id.0,
    )
    .await?;
    audit::record(
        &mut tx,
        ctx,
        "delete",
        "project",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn objects(db: &Db, ctx: &Ctx, id: ProjectId) -> Result<Vec<ProjectObject>> {
    Ok(get(db, ctx, id).await?.objects)
}

pub async fn add(db: &Db, ctx: &Ctx, id: ProjectId, link: ProjectObject) -> Result<Project> {
    let mut tx = db.begin().await?;
    let row = load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Update)?;
    let customer = CustomerId(row.customer_id);
    add_object(&mut tx, id, customer, &link, "objects")
        .await
        .map_err(|e| match e {
            Error::Validation(mut v) => {
                for f in &mut v {
                    f.field = f.field.trim_start_matches("objects.").to_owned();
                }
                Error::Validation(v)
            }
            Error::Conflict { code, message, .. } => Error::Conflict {
                code,
                message,
                fields: vec!["object_id".into()],
                allowed: None,
            },
            other => other,
        })?;
    touch(&mut tx, ctx, id).await?;
    let after = load_view(&mut tx, ctx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        "add_object",
        "project",
        Some(id.0),
        None,
        Some(&audit::snapshot(&link)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn remove(db: &Db, ctx: &Ctx, id: ProjectId, object: ObjectId) -> Result<Project> {
    let mut tx = db.begin().await?;
    load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Update)?;
    let mut q = Q::new("SELECT COUNT(*) FROM service_requests WHERE project_id = ");
    q.bind(id.0).push(" AND object_id = ").bind(object.0);
    if q.scalar::<i64, _>(&mut *tx).await? > 0 {
        return Err(Error::conflict_on(
            "in_use",
            "object_id",
            "service requests of this project refer to the object",
        ));
    }
    let mut q = Q::new("DELETE FROM project_objects WHERE project_id = ");
    q.bind(id.0).push(" AND object_id = ").bind(object.0);
    if q.execute(&mut *tx).await? == 0 {
        return Err(Error::NotFound);
    }
    touch(&mut tx, ctx, id).await?;
    let after = load_view(&mut tx, ctx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        "remove_object",
        "project",
        Some(id.0),
        Some(&serde_json::json!({"object_id": object})),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

async fn touch(tx: &mut Tx, ctx: &Ctx, id: ProjectId) -> Result<()> {
    let mut q = Q::new("UPDATE projects SET updated_at = ");
    q.bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut **tx).await?;
    Ok(())
}

/// A project's customer, read without scope (callers check visibility themselves).
pub async fn customer_of(tx: &mut Tx, id: ProjectId) -> Result<Option<CustomerId>> {
    let mut q = Q::new("SELECT customer_id FROM projects WHERE id = ");
    q.bind(id.0);
    Ok(q.fetch_optional::<(i64,), _>(&mut **tx)
        .await?
        .map(|r| CustomerId(r.0)))
}

pub async fn refresh_search_keys(tx: &mut Tx, only_empty: bool) -> Result<()> {
    let sql = format!(
        "SELECT id, name FROM projects{}",
        if only_empty { " WHERE search = ''" } else { "" }
    );
    let rows: Vec<(i64, String)> = Q::new(&sql).fetch_all(&mut **tx).await?;
    for (id, name) in rows {
        let mut q = Q::new("UPDATE projects SET search = ");
        q.bind(values::search_key(&[&name]))
            .push(" WHERE id = ")
            .bind(id);
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
