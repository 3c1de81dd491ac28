//! The SLA sweep: warns when a request has used most of the time before a deadline and
//! raises a breach when it passes one, each once per deadline, through the outbox (the heads
//! of service and administrators hear of it), and each project manager's daily list of overdue
//! requests. Runs under a lease, so with several instances each sweep happens once.

use crate::domain::event::{Event, sla_events};
use crate::error::Result;
use crate::store::{Db, leases, outbox, requests};
use chrono::{DateTime, Utc};

/// The lease's name.
pub const JOB: &str = "sla_sweep";

/// The hour of the company's day from which project managers get the day's list of their
/// overdue requests.
pub const DIGEST_HOUR: u32 = 9;

/// One sweep at `now` by `holder`, if it gets the lease for `every`; returns how many new
/// events it queued (`None` when another instance holds the lease). From [`DIGEST_HOUR`] of
/// the company's day (`tz`) it also queues each project manager's overdue digest, once a day.
pub async fn sweep(
    db: &Db,
    holder: &str,
    now: DateTime<Utc>,
    every: chrono::Duration,
    warn_percent: u8,
    tz: chrono_tz::Tz,
) -> Result<Option<usize>> {
    use chrono::Timelike;
    if !leases::take(db, JOB, holder, now, now + every).await? {
        return Ok(None);
    }
    let mut due: Vec<_> = requests::sla_running(db)
        .await?
        .iter()
        .flat_map(|f| sla_events(f, now, warn_percent))
        .collect();
    let local = now.with_timezone(&tz);
    if local.hour() >= DIGEST_HOUR {
        let day = local.format("%Y-%m-%d").to_string();
        for manager in requests::managers_with_overdue(db, now).await? {
            due.push(Event::OverdueDigest {
                manager,
                day: day.clone(),
            });
        }
    }
    if due.is_empty() {
        return Ok(Some(0));
    }
    let mut queued = 0;
    let mut tx = db.begin().await?;
    for e in &due {
        if outbox::push(&mut tx, e, now).await? {
            queued += 1;
        }
    }
    tx.commit().await?;
    Ok(Some(queued))
}
