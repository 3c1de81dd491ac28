//! Service requests (tickets): creation with derived links and SLA, updates, the workflow,
//! comments and status history.

use super::{Ctx, Db, Expected, Page, Q, ScopeSql, Tx, audit, db_ts, ts, ts_opt};
use crate::domain::access::{self, Action, Resource, Role, Scope};
use crate::domain::event::{self, Event};
use crate::domain::ids::{CommentId, CustomerId, ObjectId, ProjectId, ReportId, RequestId, UserId};
use crate::domain::request::{self, RequestType, SlaPolicy, Source, Status, TransitionFacts};
use crate::domain::{time, values};
use crate::error::{Error, FieldError, Problems, Result};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

const COLS: &str = "r.id, r.number, r.type, r.subject, r.description, r.customer_id, r.project_id, r.object_id, \
    r.assigned_to, r.source, r.status, r.reported_at, r.planned_start, r.planned_end, r.actual_start, \
    r.actual_end, r.completed_at, r.assign_by, r.close_by, r.created_at, r.updated_at, r.created_by, r.version, \
    (SELECT rp.id FROM service_reports rp WHERE rp.request_id = r.id) AS report_id";

pub const SCOPE: ScopeSql = ScopeSql {
    assigned: "r.assigned_to = {u}",
    customer: "r.customer_id = {c}",
};

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    number: String,
    #[sqlx(rename = "type")]
    kind: String,
    subject: String,
    description: String,
    customer_id: i64,
    project_id: Option<i64>,
    object_id: Option<i64>,
    assigned_to: Option<i64>,
    source: String,
    status: String,
    reported_at: Option<String>,
    planned_start: Option<String>,
    planned_end: Option<String>,
    actual_start: Option<String>,
    actual_end: Option<String>,
    completed_at: Option<String>,
    assign_by: String,
    close_by: String,
    created_at: String,
    updated_at: String,
    created_by: Option<i64>,
    version: i64,
    report_id: Option<i64>,
}

impl Row {
    fn view(self, now: DateTime<Utc>) -> Result<ServiceRequest> {
        let status = Status::parse(&self.status)
            .ok_or_else(|| anyhow::anyhow!("bad status {}", self.status))?;
        let assign_by = ts(&self.assign_by)?;
        let close_by = ts(&self.close_by)?;
        let actual_start = ts_opt(&self.actual_start)?;
        let actual_end = ts_opt(&self.actual_end)?;
        Ok(ServiceRequest {
            id: RequestId(self.id),
            number: self.number,
            r#type: RequestType::parse(&self.kind).ok_or_else(|| anyhow::anyhow!("bad type"))?,
            subject: self.subject,
            description: self.description,
            customer_id: CustomerId(self.customer_id),
            project_id: self.project_id.map(ProjectId),
            object_id: self.object_id.map(ObjectId),
            assigned_to: self.assigned_to.map(UserId),
            source: Source::parse(&self.source).ok_or_else(|| anyhow::anyhow!("bad source"))?,
            status,
            status_label: status.label_ru().to_owned(),
            reported_at: ts_opt(&self.reported_at)?,
            planned_start: ts_opt(&self.planned_start)?,
            planned_end: ts_opt(&self.planned_end)?,
            actual_start,
            actual_end,
            completed_at: ts_opt(&self.completed_at)?,
            duration_hours: request::duration_hours(actual_start, actual_end),
            assign_by,
            close_by,
            overdue: request::is_overdue(
                status,
                self.assigned_to.is_some(),
                assign_by,
                close_by,
                now,
            ),
            report_id: self.report_id.map(ReportId),
            created_at: ts(&self.created_at)?,
            updated_at: ts(&self.updated_at)?,
            created_by: self.created_by.map(UserId),
            version: self.version,
        })
    }
}

/// A service request (ticket).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceRequest {
    pub id: RequestId,
    /// Human number, `SR-YYYY-NNNNN`.
    #[schema(example = "SR-2026-00042")]
    pub number: String,
    pub r#type: RequestType,
    pub subject: String,
    pub description: String,
    pub customer_id: CustomerId,
    pub project_id: Option<ProjectId>,
    pub object_id: Option<ObjectId>,
    /// The assigned engineer (a user id).
    pub assigned_to: Option<UserId>,
    pub source: Source,
    pub status: Status,
    /// The status in Russian, as users see it.
    pub status_label: String,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub reported_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub planned_start: Option<DateTime<Utc>>,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub planned_end: Option<DateTime<Utc>>,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub actual_start: Option<DateTime<Utc>>,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub actual_end: Option<DateTime<Utc>>,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub completed_at: Option<DateTime<Utc>>,
    /// `actual_end − actual_start` in hours, when both are set.
    #[schema(example = "1.50")]
    pub duration_hours: Option<String>,
    /// SLA: assign an engineer by then.
    #[serde(with = "crate::domain::time::rfc3339")]
    pub assign_by: DateTime<Utc>,
    /// SLA: complete by then.
    #[serde(with = "crate::domain::time::rfc3339")]
    pub close_by: DateTime<Utc>,
    /// Past an SLA deadline and still being worked.
    pub overdue: bool,
    /// The linked service report, if any.
    pub report_id: Option<ReportId>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub r#type: RequestType,
    pub subject: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    #[serde(default)]
    pub object_id: Option<ObjectId>,
    /// Staff only.
    #[serde(default)]
    pub assigned_to: Option<UserId>,
    /// Staff only; clients' requests come from the portal.
    #[serde(default)]
    pub source: Option<Source>,
    /// RFC 3339; its UTC day from 2000-01-01 to 2199-12-31.
    #[serde(default)]
    pub reported_at: Option<DateTime<Utc>>,
    /// Staff only. RFC 3339; its UTC day from 2000-01-01 to 2199-12-31.
    #[serde(default)]
    pub planned_start: Option<DateTime<Utc>>,
    /// Staff only. RFC 3339; its UTC day from 2000-01-01 to 2199-12-31.
    #[serde(default)]
    pub planned_end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestPatch {
    pub version: Option<i64>,
    pub r#type: Option<RequestType>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub customer_id: Option<CustomerId>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<i64>)]
    pub project_id: Option<Option<ProjectId>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<i64>)]
    pub object_id: Option<Option<ObjectId>>,
    /// `null` unassigns (only while the request is open).
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<i64>)]
    pub assigned_to: Option<Option<UserId>>,
    /// RFC 3339; its UTC day from 2000-01-01 to 2199-12-31.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub reported_at: Option<Option<DateTime<Utc>>>,
    /// RFC 3339; its UTC day from 2000-01-01 to 2199-12-31.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub planned_start: Option<Option<DateTime<Utc>>>,
    /// RFC 3339; its UTC day from 2000-01-01 to 2199-12-31.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub planned_end: Option<Option<DateTime<Utc>>>,
}

/// A status change.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: Status,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub body: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Comment {
    pub id: CommentId,
    pub request_id: RequestId,
    pub author_id: UserId,
    pub body: String,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// One status change in a request's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub id: i64,
    pub request_id: RequestId,
    pub user_id: UserId,
    pub from_status: Option<Status>,
    pub to_status: Status,
    pub comment: String,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
pub struct Filter {
    /// One status or several separated by commas.
    pub status: Option<String>,
    pub r#type: Option<String>,
    pub project: Option<i64>,
    pub customer: Option<i64>,
    pub object: Option<i64>,
    pub assigned_to: Option<i64>,
    /// Only requests without (`true`) or with (`false`) an engineer.
    pub unassigned: Option<bool>,
    pub overdue: Option<bool>,
    /// Free-text search in number, subject and description.
    pub q: Option<String>,
}

fn select() -> Q {
    Q::new(&format!(
        "SELECT {COLS} FROM service_requests r WHERE 1 = 1"
    ))
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: RequestId, lock: &str) -> Result<Row> {
    let mut q = select();
    q.push(" AND r.id = ").bind(id.0);
    q.scope(access::scope(&ctx.actor, Resource::Requests), SCOPE);
    q.push(lock);
    q.fetch_optional(&mut **tx).await?.ok_or(Error::NotFound)
}

/// Loads a request the actor may see, for other areas (reports) that build on it.
pub(crate) async fn visible(
    tx: &mut Tx,
    ctx: &Ctx,
    id: RequestId,
    lock: &str,
) -> Result<ServiceRequest> {
    load(tx, ctx, id, lock).await?.view(ctx.now)
}

fn search(number: &str, subject: &str, description: &str) -> String {
    values::search_key(&[number, subject, description])
}

pub(crate) fn overdue_sql(q: &mut Q, now: DateTime<Utc>, want: bool) {
    q.push(if want { " AND " } else { " AND NOT " });
    q.push("(r.status IN ('open', 'in_progress') AND (r.close_by < ")
        .bind(db_ts(now))
        .push(" OR (r.assigned_to IS NULL AND r.assign_by < ")
        .bind(db_ts(now))
        .push(")))");
}

/// Opening and completion times of the requests this user may see that were opened or
/// completed since `since`.
pub async fn activity_since(
    db: &Db,
    ctx: &Ctx,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>> {
    let mut q = Q::new(
        "SELECT r.created_at, r.completed_at FROM service_requests r WHERE (r.created_at >= ",
    );
    q.bind(db_ts(since))
        .push(" OR r.completed_at >= ")
        .bind(db_ts(since))
        .push(")");
    q.scope(access::scope(&ctx.actor, Resource::Requests), SCOPE);
    let rows: Vec<(String, Option<String>)> = q.fetch_all(db.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (created, completed) in rows {
        out.push((
            crate::domain::time::from_db(&created)?,
            completed
                .as_deref()
                .map(crate::domain::time::from_db)
                .transpose()?,
        ));
    }
    Ok(out)
}

/// How many requests this user may see in each status.
pub async fn count_by_status(db: &Db, ctx: &Ctx) -> Result<Vec<(Status, i64)>> {
    let mut q = Q::new("SELECT r.status, COUNT(*) FROM service_requests r WHERE 1 = 1");
    q.scope(access::scope(&ctx.actor, Resource::Requests), SCOPE);
    q.push(" GROUP BY r.status");
    let rows: Vec<(String, i64)> = q.fetch_all(db.pool()).await?;
    Ok(Status::ALL
        .iter()
        .map(|st| {
            let n = rows
                .iter()
                .find(|(c, _)| c == st.as_str())
                .map_or(0, |r| r.1);
            (*st, n)
        })
        .collect())
}

pub async fn list(
    db: &Db,
    ctx: &Ctx,
    f: &Filter,
    page: Page,
) -> Result<(Vec<ServiceRequest>, Option<String>)> {
    let mut q = select();
    q.scope(access::scope(&ctx.actor, Resource::Requests), SCOPE);
    if let Some(s) = f.status.as_deref().filter(|s| !s.is_empty()) {
        let mut statuses = Vec::new();
        for part in s.split(',') {
            statuses.push(Status::parse(part.trim()).ok_or_else(|| {
                Error::field(
                    "status",
                    "unknown_value",
                    format!("unknown status {part:?}"),
                )
            })?);
        }
        q.push(" AND r.status IN (");
        for (i, st) in statuses.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(st.as_str().to_owned());
        }
        q.push(")");
    }
    if let Some(t) = &f.r#type {
        let t = RequestType::parse(t)
            .ok_or_else(|| Error::field("type", "unknown_value", "unknown request type"))?;
        q.push(" AND r.type = ").bind(t.as_str().to_owned());
    }
    for (col, v) in [
        ("r.project_id", f.project),
        ("r.customer_id", f.customer),
        ("r.object_id", f.object),
        ("r.assigned_to", f.assigned_to),
    ] {
        if let Some(v) = v {
            q.push(&format!(" AND {col} = ")).bind(v);
        }
    }
    match f.unassigned {
        Some(true) => {
            q.push(" AND r.assigned_to IS NULL");
        }
        Some(false) => {
            q.push(" AND r.assigned_to IS NOT NULL");
        }
        None => {}
    }
    if let Some(o) = f.overdue {
        overdue_sql(&mut q, ctx.now, o);
    }
    q.search("r.search", f.q.as_deref());
    page.apply(&mut q, "r.id");
    let rows: Vec<Row> = q.fetch_all(db.pool()).await?;
    let (rows, next) = page.finish(rows, |r| r.id);
    Ok((
        rows.into_iter()
            .map(|r| r.view(ctx.now))
            .collect::<Result<_>>()?,
        next,
    ))
}

pub async fn get(db: &Db, ctx: &Ctx, id: RequestId) -> Result<ServiceRequest> {
    let mut q = select();
    q.push(" AND r.id = ").bind(id.0);
    q.scope(access::scope(&ctx.actor, Resource::Requests), SCOPE);
    q.fetch_optional::<Row, _>(db.pool())
        .await?
        .ok_or(Error::NotFound)?
        .view(ctx.now)
}

/// Resolves the customer/project/object triple, refusing what the actor may not choose.
async fn links(
    tx: &mut Tx,
    ctx: &Ctx,
    customer: Option<CustomerId>,
    project: Option<ProjectId>,
    object: Option<ObjectId>,
) -> Result<(CustomerId, Option<ProjectId>)> {
    let own = ctx.actor.client_customer();
    let not_found = |f: &str, what: &str| Error::field(f, "not_found", format!("no such {what}"));
    if let (Some(own), Some(c)) = (own, customer)
        && c != own
    {
        return Err(not_found("customer_id", "customer"));
    }
    let customer = own.or(customer);
    if let Some(c) = customer
        && super::count_where(tx, "customers", "id", c.0).await? == 0
    {
        return Err(not_found("customer_id", "customer"));
    }
    let project = match project {
        Some(p) => match super::projects::customer_of(tx, p).await? {
            Some(c) if own.is_none_or(|o| o == c) => Some((p, c)),
            _ => return Err(not_found("project_id", "project")),
        },
        None => None,
    };
    let facts = match object {
        Some(o) => match super::objects::facts(tx, o).await? {
            Some(f) if own.is_none_or(|c| c == f.customer_id) => Some(f),
            _ => return Err(not_found("object_id", "object")),
        },
        None => None,
    };
    request::resolve_links(customer, project, facts.as_ref())
}

struct Texts {
    subject: String,
    description: String,
}

fn texts(subject: &str, description: &str) -> Result<Texts> {
    let mut p = Problems::new();
    let subject = p.check(values::required_line("subject", subject, 200));
    let description = p.check(values::multiline("description", description, 10_000));
    p.finish()?;
    Ok(Texts {
        subject: subject.expect("checked"),
        description: description.expect("checked"),
    })
}

/// Moments given from outside, each refused unless within the sane range of
/// [`time::check_moment`]; every offending field is named at once.
fn check_moments(moments: &[(&str, Option<DateTime<Utc>>)]) -> Result<()> {
    let mut p = Problems::new();
    for (field, t) in moments {
        if let Some(t) = t {
            p.check(time::check_moment(field, *t));
        }
    }
    p.finish()
}

fn check_planned(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Result<()> {
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        return Err(Error::field(
            "planned_end",
            "before_start",
            "planned end is before planned start",
        ));
    }
    Ok(())
}

pub async fn create(
    db: &Db,
    ctx: &Ctx,
    sla: &SlaPolicy,
    input: NewRequest,
) -> Result<ServiceRequest> {
    if !access::can(&ctx.actor, Resource::Requests, Action::Create) {
        return Err(Error::Forbidden(
            "your role may not open service requests".into(),
        ));
    }
    let client = ctx.actor.has(Role::Client);
    if client {
        let mut p = Problems::new();
        for (field, set) in [
            ("assigned_to", input.assigned_to.is_some()),
            ("source", input.source.is_some()),
            ("planned_start", input.planned_start.is_some()),
            ("planned_end", input.planned_end.is_some()),
        ] {
            if set {
                p.push(FieldError::new(
                    field,
                    "not_allowed",
                    "clients cannot set this field",
                ));
            }
        }
        p.finish()?;
    }
    let t = texts(&input.subject, &input.description)?;
    check_moments(&[
        ("reported_at", input.reported_at),
        ("planned_start", input.planned_start),
        ("planned_end", input.planned_end),
    ])?;
    check_planned(input.planned_start, input.planned_end)?;
    let source = input
        .source
        .unwrap_or(if client { Source::Portal } else { Source::Api });
    let mut tx = db.begin().await?;
    let (customer, project) = links(
        &mut tx,
        ctx,
        input.customer_id,
        input.project_id,
        input.object_id,
    )
    .await?;
    if let Some(e) = input.assigned_to {
        super::users::ensure_engineer(&mut tx, "assigned_to", e).await?;
    }
    let seq = super::next_number(&mut tx, "SR", ctx.now.year()).await?;
    let number = request::request_number(ctx.now.year(), seq);
    let (assign_by, close_by) = sla.deadlines(input.r#type, ctx.now);
    let mut q = Q::new(
        "INSERT INTO service_requests (number, type, subject, description, customer_id, project_id, object_id, \
         assigned_to, source, status, reported_at, planned_start, planned_end, assign_by, close_by, search, \
         created_at, updated_at, created_by) VALUES (",
    );
    q.bind(number.clone())
        .push(", ")
        .bind(input.r#type.as_str().to_owned())
        .push(", ")
        .bind(t.subject.clone())
        .push(", ")
        .bind(t.description.clone())
        .push(", ")
        .bind(customer.0)
        .push(", ")
        .bind(project.map(|p| p.0))
        .push(", ")
        .bind(input.object_id.map(|o| o.0))
        .push(", ")
        .bind(input.assigned_to.map(|u| u.0))
        .push(", ")
        .bind(source.as_str().to_owned())
        .push(", 'open', ")
        .bind(Some(db_ts(input.reported_at.unwrap_or(ctx.now))))
        .push(", ")
        .bind(input.planned_start.map(db_ts))
        .push(", ")
        .bind(input.planned_end.map(db_ts))
        .push(", ")
        .bind(db_ts(assign_by))
        .push(", ")
        .bind(db_ts(close_by))
        .push(", ")
        .bind(search(&number, &t.subject, &t.description))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(ctx.actor.user_id.0)
        .push(") RETURNING id");
    let id = RequestId(q.scalar(&mut *tx).await?);
    history(&mut tx, ctx, id, None, Status::Open, "").await?;
    let view = load(&mut tx, ctx, id, "").await?.view(ctx.now)?;
    audit::record(
        &mut tx,
        ctx,
        "create",
        "request",
        Some(id.0),
        None,
        Some(&audit::snapshot(&view)),
    )
    .await?;
    let emergency = input.r#type == RequestType::Emergency;
    for e in event::request_opened(id, emergency, input.assigned_to) {
        super::outbox::push(&mut tx, &e, ctx.now).await?;
    }
    tx.commit().await?;
    Ok(view)
}

async fn history(
    tx: &mut Tx,
    ctx: &Ctx,
    id: RequestId,
    from: Option<Status>,
    to: Status,
    comment: &str,
) -> Result<i64> {
    let mut q = Q::new(
        "INSERT INTO request_history (request_id, user_id, from_status, to_status, comment, created_at) VALUES (",
    );
    q.bind(id.0)
        .push(", ")
        .bind(ctx.actor.user_id.0)
        .push(", ")
        .bind(from.map(|s| s.as_str().to_owned()))
        .push(", ")
        .bind(to.as_str().to_owned())
        .push(", ")
        .bind(comment.to_owned())
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(") RETURNING id");
    q.scalar(&mut **tx).await
}

/// Fields an engineer may change on their own request.
const ENGINEER_FIELDS: &[&str] = &["description", "planned_start", "planned_end"];

pub async fn update(
    db: &Db,
    ctx: &Ctx,
    sla: &SlaPolicy,
    id: RequestId,
    expected: Expected,
    patch: RequestPatch,
) -> Result<ServiceRequest> {
    let mut tx = db.begin().await?;
    let before = load(&mut tx, ctx, id, db.backend().for_update())
        .await?
        .view(ctx.now)?;
    if !access::can(&ctx.actor, Resource::Requests, Action::Update) {
        return Err(Error::Forbidden(
            "your role may not change service requests".into(),
        ));
    }
    super::check_version(expected, before.version)?;
    if matches!(before.status, Status::Closed | Status::Cancelled) {
        return Err(Error::conflict(
            "request_closed",
            "a closed or cancelled request cannot be changed",
        ));
    }
    let set: Vec<&str> = [
        ("type", patch.r#type.is_some()),
        ("subject", patch.subject.is_some()),
        ("description", patch.description.is_some()),
        ("customer_id", patch.customer_id.is_some()),
        ("project_id", patch.project_id.is_some()),
        ("object_id", patch.object_id.is_some()),
        ("assigned_to", patch.assigned_to.is_some()),
        ("reported_at", patch.reported_at.is_some()),
        ("planned_start", patch.planned_start.is_some()),
        ("planned_end", patch.planned_end.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, s)| s.then_some(f))
    .collect();
    if access::scope(&ctx.actor, Resource::Requests) != Scope::All {
        let refused: Vec<FieldError> = set
            .iter()
            .filter(|f| !ENGINEER_FIELDS.contains(f))
            .map(|f| {
                FieldError::new(
                    *f,
                    "not_allowed",
                    "engineers may change only the description and planned times",
                )
            })
            .collect();
        if !refused.is_empty() {
            return Err(Error::Validation(refused));
        }
    }
    let t = texts(
        patch.subject.as_deref().unwrap_or(&before.subject),
        patch.description.as_deref().unwrap_or(&before.description),
    )?;
    // Only what the patch sets: times stored before the range was enforced stay editable.
    check_moments(&[
        ("reported_at", patch.reported_at.flatten()),
        ("planned_start", patch.planned_start.flatten()),
        ("planned_end", patch.planned_end.flatten()),
    ])?;
    let planned_start = patch.planned_start.unwrap_or(before.planned_start);
    let planned_end = patch.planned_end.unwrap_or(before.planned_end);
    check_planned(planned_start, planned_end)?;
    let kind = patch.r#type.unwrap_or(before.r#type);
    let (assign_by, close_by) = if kind == before.r#type {
        (before.assign_by, before.close_by)
    } else {
        sla.deadlines(kind, before.created_at)
    };
    let links_changed =
        patch.customer_id.is_some() || patch.project_id.is_some() || patch.object_id.is_some();
    let (customer, project, object) = if links_changed {
        let object = patch.object_id.unwrap_or(before.object_id);
        // A new object re-derives the project unless the client named one.
        let project = match (patch.project_id, patch.object_id) {
            (Some(p), _) => p,
            (None, Some(_)) => None,
            (None, None) => before.project_id,
        };
        let customer =
            patch
                .customer_id
                .or(if patch.object_id.is_some() || patch.project_id.is_some() {
                    None
                } else {
                    Some(before.customer_id)
                });
        let (c, p) = links(&mut tx, ctx, customer, project, object).await?;
        (c, p, object)
    } else {
        (before.customer_id, before.project_id, before.object_id)
    };
    let assigned = patch.assigned_to.unwrap_or(before.assigned_to);
    if let Some(Some(e)) = patch.assigned_to {
        super::users::ensure_engineer(&mut tx, "assigned_to", e).await?;
    }
    if assigned.is_none() && before.status != Status::Open {
        return Err(Error::conflict_on(
            "engineer_required",
            "assigned_to",
            "a request in work must keep an engineer; assign another one instead",
        ));
    }
    let mut q = Q::new("UPDATE service_requests SET type = ");
    q.bind(kind.as_str().to_owned())
        .push(", subject = ")
        .bind(t.subject.clone())
        .push(", description = ")
        .bind(t.description.clone())
        .push(", customer_id = ")
        .bind(customer.0)
        .push(", project_id = ")
        .bind(project.map(|p| p.0))
        .push(", object_id = ")
        .bind(object.map(|o| o.0))
        .push(", assigned_to = ")
        .bind(assigned.map(|u| u.0))
        .push(", reported_at = ")
        .bind(patch.reported_at.unwrap_or(before.reported_at).map(db_ts))
        .push(", planned_start = ")
        .bind(planned_start.map(db_ts))
        .push(", planned_end = ")
        .bind(planned_end.map(db_ts))
        .push(", assign_by = ")
        .bind(db_ts(assign_by))
        .push(", close_by = ")
        .bind(db_ts(close_by))
        .push(", search = ")
        .bind(search(&before.number, &t.subject, &t.description))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut *tx).await?;
    let after = load_unscoped(&mut tx, id, ctx.now).await?;
    audit::record(
        &mut tx,
        ctx,
        "update",
        "request",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        Some(&audit::snapshot(&after)),
    )
    .await?;
    if let Some(e) = event::assignment_changed(id, before.assigned_to, after.assigned_to) {
        super::outbox::push(&mut tx, &e, ctx.now).await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// Re-reads a request after a change the actor was allowed to make, without the scope: the
/// change itself may have moved it out of the actor's view (a cancelled reassignment, say).
async fn load_unscoped(tx: &mut Tx, id: RequestId, now: DateTime<Utc>) -> Result<ServiceRequest> {
    let mut q = select();
    q.push(" AND r.id = ").bind(id.0);
    q.fetch_optional::<Row, _>(&mut **tx)
        .await?
        .ok_or(Error::NotFound)?
        .view(now)
}

pub async fn delete(db: &Db, ctx: &Ctx, id: RequestId) -> Result<()> {
    let mut tx = db.begin().await?;
    let before = load(&mut tx, ctx, id, db.backend().for_update())
        .await?
        .view(ctx.now)?;
    if !access::can(&ctx.actor, Resource::Requests, Action::Delete) {
        return Err(Error::Forbidden(
            "only administrators delete service requests".into(),
        ));
    }
    if before.report_id.is_some() {
        return Err(Error::conflict(
            "in_use",
            "a service report refers to this request; it cannot be deleted",
        ));
    }
    let targets = [
        ("request_comments", "request_id"),
        ("request_history", "request_id"),
        ("service_requests", "id"),
    ];
    super::delete_where(&mut tx, &targets, id.0).await?;
    audit::record(
        &mut tx,
        ctx,
        "delete",
        "request",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_status(
    db: &Db,
    ctx: &Ctx,
    id: RequestId,
    change: StatusChange,
) -> Result<ServiceRequest> {
    let comment = values::multiline("comment", &change.comment, 2000)
        .map_err(|e| Error::Validation(vec![e]))?;
    let mut tx = db.begin().await?;
    let before = load(&mut tx, ctx, id, db.backend().for_update())
        .await?
        .view(ctx.now)?;
    let after = transition_in(&mut tx, ctx, before, change.status, &comment).await?;
    tx.commit().await?;
    Ok(after)
}

/// Makes a status change inside the caller's transaction (also used when a report is submitted).
pub(crate) async fn transition_in(
    tx: &mut Tx,
    ctx: &Ctx,
    before: ServiceRequest,
    to: Status,
    comment: &str,
) -> Result<ServiceRequest> {
    if !access::can(&ctx.actor, Resource::Requests, Action::Transition) {
        return Err(Error::Forbidden(
            "your role may not change the status of requests".into(),
        ));
    }
    let mut q = Q::new(
        "SELECT COUNT(*) FROM service_reports WHERE status IN ('submitted', 'approved') AND request_id = ",
    );
    q.bind(before.id.0);
    let has_submitted_report = q.scalar::<i64, _>(&mut **tx).await? > 0;
    let fx = request::transition(
        &ctx.actor,
        TransitionFacts {
            from: before.status,
            to,
            is_assignee: before.assigned_to == Some(ctx.actor.user_id),
            has_engineer: before.assigned_to.is_some(),
            has_submitted_report,
        },
    )?;
    let now = Some(ctx.now);
    let (mut start, mut end, mut completed) =
        (before.actual_start, before.actual_end, before.completed_at);
    if fx.set_actual_start && start.is_none() {
        start = now;
    }
    if fx.set_actual_end && end.is_none() {
        end = now;
    }
    if fx.set_completed_at && completed.is_none() {
        completed = now;
    }
    if fx.clear_completion {
        end = None;
        completed = None;
    }
    let mut q = Q::new("UPDATE service_requests SET status = ");
    q.bind(to.as_str().to_owned())
        .push(", actual_start = ")
        .bind(start.map(db_ts))
        .push(", actual_end = ")
        .bind(end.map(db_ts))
        .push(", completed_at = ")
        .bind(completed.map(db_ts))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(before.id.0);
    q.execute(&mut **tx).await?;
    let seq = history(tx, ctx, before.id, Some(before.status), to, comment).await?;
    let after = load_unscoped(tx, before.id, ctx.now).await?;
    let moved = Event::StatusChanged {
        request: before.id,
        from: before.status,
        to,
        seq,
    };
    super::outbox::push(tx, &moved, ctx.now).await?;
    audit::record(
        tx,
        ctx,
        "transition",
        "request",
        Some(before.id.0),
        Some(&serde_json::json!({"status": before.status})),
        Some(&serde_json::json!({"status": to, "comment": comment})),
    )
    .await?;
    Ok(after)
}

pub async fn comments(db: &Db, ctx: &Ctx, id: RequestId) -> Result<Vec<Comment>> {
    let mut tx = db.pool().begin().await?;
    load(&mut tx, ctx, id, "").await?;
    let mut q = Q::new(
        "SELECT id, request_id, author_id, body, created_at FROM request_comments WHERE request_id = ",
    );
    q.bind(id.0).push(" ORDER BY id LIMIT 1000");
    let rows: Vec<(i64, i64, i64, String, String)> = q.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.into_iter()
        .map(|(id, request_id, author_id, body, created_at)| {
            Ok(Comment {
                id: CommentId(id),
                request_id: RequestId(request_id),
                author_id: UserId(author_id),
                body,
                created_at: ts(&created_at)?,
            })
        })
        .collect()
}

pub async fn add_comment(db: &Db, ctx: &Ctx, id: RequestId, input: NewComment) -> Result<Comment> {
    let body =
        values::multiline("body", &input.body, 5000).map_err(|e| Error::Validation(vec![e]))?;
    if body.is_empty() {
        return Err(Error::field("body", "required", "must not be blank"));
    }
    let mut tx = db.begin().await?;
    load(&mut tx, ctx, id, "").await?;
    let mut q =
        Q::new("INSERT INTO request_comments (request_id, author_id, body, created_at) VALUES (");
    q.bind(id.0)
        .push(", ")
        .bind(ctx.actor.user_id.0)
        .push(", ")
        .bind(body.clone())
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(") RETURNING id");
    let cid: i64 = q.scalar(&mut *tx).await?;
    let c = Comment {
        id: CommentId(cid),
        request_id: id,
        author_id: ctx.actor.user_id,
        body,
        created_at: ctx.now,
    };
    audit::record(
        &mut tx,
        ctx,
        "comment",
        "request",
        Some(id.0),
        None,
        Some(&audit::snapshot(&c)),
    )
    .await?;
    tx.commit().await?;
    Ok(c)
}

pub async fn history_of(db: &Db, ctx: &Ctx, id: RequestId) -> Result<Vec<HistoryEntry>> {
    let mut tx = db.pool().begin().await?;
    load(&mut tx, ctx, id, "").await?;
    let mut q = Q::new(
        "SELECT id, request_id, user_id, from_status, to_status, comment, created_at FROM request_history WHERE request_id = ",
    );
    q.bind(id.0).push(" ORDER BY id");
    let rows: Vec<HistoryRow> = q.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.into_iter()
        .map(|h| {
            Ok(HistoryEntry {
                id: h.id,
                request_id: RequestId(h.request_id),
                user_id: UserId(h.user_id),
                from_status: h.from_status.as_deref().and_then(Status::parse),
                to_status: Status::parse(&h.to_status)
                    .ok_or_else(|| anyhow::anyhow!("bad status"))?,
                comment: h.comment,
                created_at: ts(&h.created_at)?,
            })
        })
        .collect()
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    id: i64,
    request_id: i64,
    user_id: i64,
    from_status: Option<String>,
    to_status: String,
    comment: String,
    created_at: String,
}

pub async fn refresh_search_keys(tx: &mut Tx, only_empty: bool) -> Result<()> {
    let sql = format!(
        "SELECT id, number, subject, description FROM service_requests{}",
        if only_empty { " WHERE search = ''" } else { "" }
    );
    let rows: Vec<(i64, String, String, String)> = Q::new(&sql).fetch_all(&mut **tx).await?;
    for (id, number, subject, description) in rows {
        let mut q = Q::new("UPDATE service_requests SET search = ");
        q.bind(search(&number, &subject, &description))
            .push(" WHERE id = ")
            .bind(id);
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// What the SLA sweep needs of every request whose deadlines still run (open or in
/// progress), across all customers: the sweep acts for the system.
pub async fn sla_running(db: &Db) -> Result<Vec<event::SlaFacts>> {
    let rows: Vec<(i64, String, Option<i64>, String, String, String)> = sqlx::query_as(
        "SELECT id, status, assigned_to, created_at, assign_by, close_by FROM service_requests \
         WHERE status IN ('open', 'in_progress') ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|(id, status, assigned, since, assign_by, close_by)| {
            Ok(event::SlaFacts {
                request: RequestId(id),
                status: Status::parse(&status).unwrap_or(Status::Open),
                assigned: assigned.is_some(),
                since: ts(&since)?,
                assign_by: ts(&assign_by)?,
                close_by: ts(&close_by)?,
            })
        })
        .collect()
}

/// Project managers with overdue requests in their projects at `now`.
pub async fn managers_with_overdue(db: &Db, now: DateTime<Utc>) -> Result<Vec<UserId>> {
    let mut q = Q::new(
        "SELECT DISTINCT p.manager_id FROM service_requests r JOIN projects p ON p.id = r.project_id \
         WHERE p.manager_id IS NOT NULL",
    );
    overdue_sql(&mut q, now, true);
    let rows: Vec<(i64,)> = q.fetch_all(db.pool()).await?;
    Ok(rows.into_iter().map(|r| UserId(r.0)).collect())
}

/// The overdue requests (number, subject) of a manager's projects, oldest deadline first.
pub async fn overdue_of_manager(
    db: &Db,
    manager: UserId,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>> {
    let mut q = Q::new(
        "SELECT r.number, r.subject FROM service_requests r JOIN projects p ON p.id = r.project_id \
         WHERE p.manager_id = ",
    );
    q.bind(manager.0);
    overdue_sql(&mut q, now, true);
    q.push(" ORDER BY r.close_by, r.id");
    q.fetch_all(db.pool()).await
}
