//! Figures for monitoring: open and overdue requests, resolution time, queue depth, backups.
//! Read-only, across all customers (they are operator metrics, not user-facing data).

use super::{Db, Q, db_ts, requests::overdue_sql};
use crate::domain::request::{self, RequestType, Status};
use crate::domain::time::from_db;
use crate::error::Result;
use chrono::{DateTime, Duration, Utc};

/// What the business gauges show at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Requests not yet closed or cancelled, by type and status.
    pub open: Vec<(RequestType, Status, i64)>,
    /// Overdue requests by type.
    pub overdue: Vec<(RequestType, i64)>,
    /// Mean seconds from report to completion of requests completed in the last 30 days.
    pub resolution_seconds_30d: Option<f64>,
    /// Events and messages waiting in the outbox.
    pub outbox_depth: i64,
    /// Seconds the oldest of them has waited (0 when none waits).
    pub outbox_oldest_seconds: i64,
    /// Events and messages given up on after their last attempt.
    pub outbox_dead: i64,
    /// When the last backup succeeded.
    pub last_backup: Option<DateTime<Utc>>,
}

/// The settings row in which a successful backup records its time.
pub const LAST_BACKUP_SETTING: &str = "backup_last_success_at";

pub async fn snapshot(db: &Db, now: DateTime<Utc>) -> Result<Snapshot> {
    let counted: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT type, status, COUNT(*) FROM service_requests \
         WHERE status IN ('open', 'in_progress', 'completed') GROUP BY type, status",
    )
    .fetch_all(db.pool())
    .await?;
    let mut open = Vec::new();
    for t in RequestType::ALL {
        for s in [Status::Open, Status::InProgress, Status::Completed] {
            let n = counted
                .iter()
                .find(|(ct, cs, _)| ct == t.as_str() && cs == s.as_str())
                .map_or(0, |c| c.2);
            open.push((*t, s, n));
        }
    }

    let mut q = Q::new("SELECT r.type, COUNT(*) FROM service_requests r WHERE 1 = 1");
    overdue_sql(&mut q, now, true);
    q.push(" GROUP BY r.type");
    let late: Vec<(String, i64)> = q.fetch_all(db.pool()).await?;
    let overdue = RequestType::ALL
        .iter()
        .map(|t| {
            let n = late
                .iter()
                .find(|(c, _)| c == t.as_str())
                .map_or(0, |c| c.1);
            (*t, n)
        })
        .collect();

    let mut q = Q::new(
        "SELECT reported_at, created_at, completed_at FROM service_requests \
         WHERE completed_at IS NOT NULL AND completed_at >= ",
    );
    q.bind(db_ts(now - Duration::days(30)));
    let rows: Vec<(Option<String>, String, String)> = q.fetch_all(db.pool()).await?;
    let mut spans = Vec::with_capacity(rows.len());
    for (reported, created, completed) in rows {
        let start = from_db(reported.as_deref().unwrap_or(&created))?;
        spans.push((start, from_db(&completed)?));
    }

    let (outbox_depth, outbox_oldest_seconds, outbox_dead) = super::outbox::depth(db, now).await?;
    let mut q = Q::new("SELECT value FROM settings WHERE name = ");
    q.bind(LAST_BACKUP_SETTING);
    let last_backup = match q.fetch_optional::<(String,), _>(db.pool()).await? {
        Some((v,)) => Some(from_db(&v)?),
        None => None,
    };
    Ok(Snapshot {
        open,
        overdue,
        resolution_seconds_30d: request::mean_resolution_seconds(&spans),
        outbox_depth,
        outbox_oldest_seconds,
        outbox_dead,
        last_backup,
    })
}
