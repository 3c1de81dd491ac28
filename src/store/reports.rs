//! Service reports (acts of completed work) and their work items.

use super::{Ctx, Db, Expected, Page, Q, ScopeSql, Tx, UniqueExt, audit, db_ts, ts, ts_opt};
use crate::domain::access::{self, Action, Resource, Scope};
use crate::domain::ids::{ReportId, RequestId, UserId};
use crate::domain::report::{self, Item, RawItem, ReportStatus};
use crate::domain::request::{self, Status};
use crate::domain::time::{self, date_from_db, date_to_db};
use crate::domain::values::{self, Money, Quantity};
use crate::error::{Error, Result};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

const COLS: &str = "rp.id, rp.number, rp.request_id, rp.work_date, rp.engineer_id, rp.status, rp.total, \
    rp.engineer_bonus, rp.notes, rp.submitted_at, rp.approved_at, rp.approved_by, rp.created_at, rp.updated_at, \
    rp.created_by, rp.version";

const FROM: &str =
    " FROM service_reports rp JOIN service_requests r ON r.id = rp.request_id WHERE 1 = 1";

/// Engineers see acts of their requests; clients see their customer's acts once submitted.
pub const SCOPE: ScopeSql = ScopeSql {
    assigned: "rp.engineer_id = {u} OR r.assigned_to = {u}",
    customer: "r.customer_id = {c} AND rp.status <> 'draft'",
};

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    number: String,
    request_id: i64,
    work_date: String,
    engineer_id: i64,
    status: String,
    total: i64,
    engineer_bonus: i64,
    notes: String,
    submitted_at: Option<String>,
    approved_at: Option<String>,
    approved_by: Option<i64>,
    created_at: String,
    updated_at: String,
    created_by: Option<i64>,
    version: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct ItemRow {
    report_id: i64,
    description: String,
    quantity: i64,
    unit: String,
    unit_price: i64,
    amount: i64,
}

/// One line of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WorkItem {
    pub description: String,
    /// Decimal string, up to three decimals; greater than 0 and at most 1000000.
    #[schema(example = "1.5")]
    pub quantity: String,
    pub unit: String,
    /// Roubles, decimal string, up to two decimals; at most 1000000000.00.
    #[schema(example = "1250.00")]
    pub unit_price: String,
    /// quantity × unit price, computed by the server, rounded half up to kopecks; at most
    /// 1000000000.00 (a line past it is refused as `items[i].amount`).
    #[schema(example = "1875.00")]
    pub amount: String,
}

/// A work item as a client sends it; the amount is always computed by the server.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkItem {
    pub description: String,
    /// Decimal string, up to three decimals; greater than 0 and at most 1000000.
    #[schema(example = "1.5")]
    pub quantity: String,
    #[serde(default)]
    pub unit: String,
    /// Roubles, decimal string, up to two decimals; from 0 to 1000000000.00. The line's
    /// amount (quantity × unit price) must not pass 1000000000.00 either (refused as
    /// `items[i].amount`).
    #[schema(example = "1250.00")]
    pub unit_price: String,
}

/// An act of completed work.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub id: ReportId,
    /// `ACT-YYYY-NNNNN`.
    #[schema(example = "ACT-2026-00017")]
    pub number: String,
    pub request_id: RequestId,
    pub work_date: NaiveDate,
    pub engineer_id: UserId,
    pub status: ReportStatus,
    pub items: Vec<WorkItem>,
    /// Sum of the amounts, computed by the server; at most 1000000000.00 (lines whose sum
    /// passes it are refused as `total`).
    #[schema(example = "1875.00")]
    pub total: String,
    /// Roubles, decimal string; at most 1000000000.00.
    #[schema(example = "500.00")]
    pub engineer_bonus: String,
    pub notes: String,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub submitted_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::domain::time::rfc3339::option")]
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<UserId>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub request_id: RequestId,
    /// From 2000-01-01 to 2199-12-31.
    pub work_date: NaiveDate,
    /// Defaults to the request's engineer; engineers always report as themselves.
    #[serde(default)]
    pub engineer_id: Option<UserId>,
    /// At most 500 lines; their amounts must sum to at most 1000000000.00.
    #[serde(default)]
    pub items: Vec<NewWorkItem>,
    /// Roubles, decimal string; at most 1000000000.00.
    #[serde(default)]
    pub engineer_bonus: Option<String>,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportPatch {
    pub version: Option<i64>,
    /// From 2000-01-01 to 2199-12-31.
    pub work_date: Option<NaiveDate>,
    /// Replaces every line (at most 500; their amounts must sum to at most 1000000000.00).
    pub items: Option<Vec<NewWorkItem>>,
    /// Roubles, decimal string; at most 1000000000.00.
    pub engineer_bonus: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
pub struct Filter {
    pub status: Option<String>,
    pub request: Option<i64>,
    pub engineer: Option<i64>,
    pub customer: Option<i64>,
    /// Search in the act number.
    pub q: Option<String>,
}

fn select() -> Q {
    Q::new(&format!("SELECT {COLS}{FROM}"))
}

fn item_view(i: &ItemRow) -> WorkItem {
    WorkItem {
        description: i.description.clone(),
        quantity: Quantity(i.quantity).to_string(),
        unit: i.unit.clone(),
        unit_price: Money(i.unit_price).to_string(),
        amount: Money(i.amount).to_string(),
    }
}

async fn views(tx: &mut Tx, rows: Vec<Row>) -> Result<Vec<Report>> {
    let mut items: Vec<ItemRow> = Vec::new();
    if !rows.is_empty() {
        let mut q = Q::new(
            "SELECT report_id, description, quantity, unit, unit_price, amount FROM report_items WHERE report_id IN (",
        );
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(r.id);
        }
        q.push(") ORDER BY report_id, position");
        items = q.fetch_all(&mut **tx).await?;
    }
    rows.into_iter()
        .map(|r| {
            Ok(Report {
                id: ReportId(r.id),
                number: r.number,
                request_id: RequestId(r.request_id),
                work_date: date_from_db(&r.work_date)?,
                engineer_id: UserId(r.engineer_id),
                status: ReportStatus::parse(&r.status)
                    .ok_or_else(|| anyhow::anyhow!("bad status"))?,
                items: items
                    .iter()
                    .filter(|i| i.report_id == r.id)
                    .map(item_view)
                    .collect(),
                total: Money(r.total).to_string(),
                engineer_bonus: Money(r.engineer_bonus).to_string(),
                notes: r.notes,
                submitted_at: ts_opt(&r.submitted_at)?,
                approved_at: ts_opt(&r.approved_at)?,
                approved_by: r.approved_by.map(UserId),
                created_at: ts(&r.created_at)?,
                updated_at: ts(&r.updated_at)?,
                created_by: r.created_by.map(UserId),
                version: r.version,
            })
        })
        .collect()
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: ReportId, lock: &str) -> Result<Report> {
    let mut q = select();
    q.push(" AND rp.id = ").bind(id.0);
    q.scope(access::scope(&ctx.actor, Resource::Reports), SCOPE);
    q.push(lock);
    let row: Row = q.fetch_optional(&mut **tx).await?.ok_or(Error::NotFound)?;
    Ok(views(tx, vec![row]).await?.remove(0))
}

fn require(ctx: &Ctx, action: Action) -> Result<()> {
    if access::can(&ctx.actor, Resource::Reports, action) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "your role may not do this to service reports".into(),
        ))
    }
}

fn parse_items(items: &[NewWorkItem]) -> Result<(Vec<Item>, Money)> {
    let raw: Vec<RawItem<'_>> = items
        .iter()
        .map(|i| RawItem {
            description: &i.description,
            quantity: &i.quantity,
            unit: &i.unit,
            unit_price: &i.unit_price,
        })
        .collect();
    report::parse_items(&raw)
}

fn parse_bonus(b: Option<&str>) -> Result<Money> {
    match b {
        Some(b) => Money::parse("engineer_bonus", b).map_err(|e| Error::Validation(vec![e])),
        None => Ok(Money(0)),
    }
}

async fn write_items(tx: &mut Tx, id: ReportId, items: &[Item]) -> Result<()> {
    let mut q = Q::new("DELETE FROM report_items WHERE report_id = ");
    q.bind(id.0);
    q.execute(&mut **tx).await?;
    for (pos, i) in items.iter().enumerate() {
        let mut q = Q::new(
            "INSERT INTO report_items (report_id, position, description, quantity, unit, unit_price, amount) VALUES (",
        );
        q.bind(id.0)
            .push(", ")
            .bind(pos as i64)
            .push(", ")
            .bind(i.description.clone())
            .push(", ")
            .bind(i.quantity.milli())
            .push(", ")
            .bind(i.unit.clone())
            .push(", ")
            .bind(i.unit_price.kopecks())
            .push(", ")
            .bind(i.amount.kopecks())
            .push(")");
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn list(
    db: &Db,
    ctx: &Ctx,
    f: &Filter,
    page: Page,
) -> Result<(Vec<Report>, Option<String>)> {
    let mut q = select();
    q.scope(access::scope(&ctx.actor, Resource::Reports), SCOPE);
    if let Some(s) = &f.status {
        let s = ReportStatus::parse(s)
            .ok_or_else(|| Error::field("status", "unknown_value", "unknown report status"))?;
        q.push(" AND rp.status = ").bind(s.as_str().to_owned());
    }
    for (col, v) in [
        ("rp.request_id", f.request),
        ("rp.engineer_id", f.engineer),
        ("r.customer_id", f.customer),
    ] {
        if let Some(v) = v {
            q.push(&format!(" AND {col} = ")).bind(v);
        }
    }
    // Act numbers are ASCII, so LOWER folds them alike on both backends.
    q.search("LOWER(rp.number)", f.q.as_deref());
    page.apply(&mut q, "rp.id");
    let mut tx = db.pool().begin().await?;
    let rows: Vec<Row> = q.fetch_all(&mut *tx).await?;
    let (rows, next) = page.finish(rows, |r| r.id);
    let v = views(&mut tx, rows).await?;
    tx.commit().await?;
    Ok((v, next))
}

pub async fn get(db: &Db, ctx: &Ctx, id: ReportId) -> Result<Report> {
    let mut tx = db.pool().begin().await?;
    let v = load(&mut tx, ctx, id, "").await?;
    tx.commit().await?;
    Ok(v)
}

fn check_work_date(d: NaiveDate) -> Result<NaiveDate> {
    time::check_date("work_date", d).map_err(|e| Error::Validation(vec![e]))
}

pub async fn create(db: &Db, ctx: &Ctx, input: NewReport) -> Result<Report> {
    require(ctx, Action::Create)?;
    let work_date = check_work_date(input.work_date)?;
    let (items, total) = parse_items(&input.items)?;
    let bonus = parse_bonus(input.engineer_bonus.as_deref())?;
    let notes =
        values::multiline("notes", &input.notes, 5000).map_err(|e| Error::Validation(vec![e]))?;
    let mut tx = db.begin().await?;
    let req =
        match super::requests::visible(&mut tx, ctx, input.request_id, db.backend().for_update())
            .await
        {
            Ok(r) => r,
            Err(Error::NotFound) => {
                return Err(Error::field("request_id", "not_found", "no such request"));
            }
            Err(e) => return Err(e),
        };
    if !matches!(req.status, Status::Open | Status::InProgress) {
        return Err(Error::conflict_on(
            "request_not_active",
            "request_id",
            "the request is no longer being worked",
        ));
    }
    let engineer = if access::scope(&ctx.actor, Resource::Reports) == Scope::All {
        input.engineer_id.or(req.assigned_to)
    } else {
        match input.engineer_id {
            Some(e) if e != ctx.actor.user_id => {
                return Err(Error::field(
                    "engineer_id",
                    "not_allowed",
                    "engineers report their own work",
                ));
            }
            _ => Some(ctx.actor.user_id),
        }
    };
    let engineer = engineer.ok_or_else(|| {
        Error::field(
            "engineer_id",
            "required",
            "choose the engineer who did the work",
        )
    })?;
    super::users::ensure_engineer(&mut tx, "engineer_id", engineer).await?;
    let seq = super::next_number(&mut tx, "ACT", ctx.now.year()).await?;
    let number = request::report_number(ctx.now.year(), seq);
    let mut q = Q::new(
        "INSERT INTO service_reports (number, request_id, work_date, engineer_id, status, total, engineer_bonus, notes, \
         created_at, updated_at, created_by) VALUES (",
    );
    q.bind(number)
        .push(", ")
        .bind(req.id.0)
        .push(", ")
        .bind(date_to_db(work_date))
        .push(", ")
        .bind(engineer.0)
        .push(", 'draft', ")
        .bind(total.kopecks())
        .push(", ")
        .bind(bonus.kopecks())
        .push(", ")
        .bind(notes)
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(ctx.actor.user_id.0)
        .push(") RETURNING id");
    let id = ReportId(
        q.scalar(&mut *tx)
            .await
            .unique("request_id", "this request already has a service report")?,
    );
    write_items(&mut tx, id, &items).await?;
    let view = load(&mut tx, ctx, id, "").await?;
    audit::record(
        &mut tx,
        ctx,
        "create",
        "report",
        Some(id.0),
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
    id: ReportId,
    expected: Expected,
    patch: ReportPatch,
) -> Result<Report> {
    let mut tx = db.begin().await?;
    let before = load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Update)?;
    super::check_version(expected, before.version)?;
    report::ensure_editable(before.status)?;
    let work_date = match patch.work_date {
        Some(d) => check_work_date(d)?,
        None => before.work_date,
    };
    let bonus = match &patch.engineer_bonus {
        Some(b) => parse_bonus(Some(b))?,
        None => parse_bonus(Some(&before.engineer_bonus))?,
    };
    let notes = match &patch.notes {
        Some(n) => values::multiline("notes", n, 5000).map_err(|e| Error::Validation(vec![e]))?,
        None => before.notes.clone(),
    };
    let mut q = Q::new("UPDATE service_reports SET work_date = ");
    q.bind(date_to_db(work_date))
        .push(", engineer_bonus = ")
        .bind(bonus.kopecks())
        .push(", notes = ")
        .bind(notes);
    if let Some(items) = &patch.items {
        let (items, total) = parse_items(items)?;
        write_items(&mut tx, id, &items).await?;
        q.push(", total = ").bind(total.kopecks());
    }
    q.push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut *tx).await?;
    let after = load(&mut tx, ctx, id, "").await?;
    audit::record(
        &mut tx,
        ctx,
        "update",
        "report",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        Some(&audit::snapshot(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Submits a draft: freezes its lines and completes its request, in one transaction.
pub async fn submit(db: &Db, ctx: &Ctx, id: ReportId) -> Result<Report> {
    let mut tx = db.begin().await?;
    let before = load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Update)?;
    report::ensure_submittable(before.status, before.items.len())?;
    let req = super::requests::visible(&mut tx, ctx, before.request_id, db.backend().for_update())
        .await?;
    if req.status != Status::InProgress {
        return Err(Error::conflict_on(
            "request_not_in_progress",
            "request_id",
            format!(
                "the request is {}; start work on it before submitting the act",
                req.status.as_str()
            ),
        ));
    }
    let mut q = Q::new("UPDATE service_reports SET status = 'submitted', submitted_at = ");
    q.bind(Some(db_ts(ctx.now)))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut *tx).await?;
    super::requests::transition_in(
        &mut tx,
        ctx,
        req,
        Status::Completed,
        &format!("act {} submitted", before.number),
    )
    .await?;
    let after = load(&mut tx, ctx, id, "").await?;
    audit::record(
        &mut tx,
        ctx,
        "submit",
        "report",
        Some(id.0),
        Some(&serde_json::json!({"status": before.status})),
        Some(&serde_json::json!({"status": after.status})),
    )
    .await?;
    let submitted = crate::domain::event::Event::ReportSubmitted {
        report: id,
        request: before.request_id,
    };
    super::outbox::push(&mut tx, &submitted, ctx.now).await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn approve(db: &Db, ctx: &Ctx, id: ReportId) -> Result<Report> {
    let mut tx = db.begin().await?;
    let before = load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Transition)?;
    report::ensure_approvable(before.status)?;
    let mut q = Q::new("UPDATE service_reports SET status = 'approved', approved_at = ");
    q.bind(Some(db_ts(ctx.now)))
        .push(", approved_by = ")
        .bind(Some(ctx.actor.user_id.0))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut *tx).await?;
    let after = load(&mut tx, ctx, id, "").await?;
    audit::record(
        &mut tx,
        ctx,
        "approve",
        "report",
        Some(id.0),
        Some(&serde_json::json!({"status": before.status})),
        Some(&serde_json::json!({"status": after.status})),
    )
    .await?;
    let approved = crate::domain::event::Event::ReportApproved {
        report: id,
        request: before.request_id,
    };
    super::outbox::push(&mut tx, &approved, ctx.now).await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn delete(db: &Db, ctx: &Ctx, id: ReportId) -> Result<()> {
    let mut tx = db.begin().await?;
    let before = load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Delete)?;
    if before.status != ReportStatus::Draft {
        return Err(Error::conflict(
            "report_frozen",
            "a submitted report cannot be deleted",
        ));
    }
    super::delete_where(
        &mut tx,
        &[("report_items", "report_id"), ("service_reports", "id")],
        id.0,
    )
    .await?;
    audit::record(
        &mut tx,
        ctx,
        "delete",
        "report",
        Some(id.0),
        Some(&audit::snapshot(&before)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
