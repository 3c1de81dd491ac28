//! Leases for periodic jobs: with several instances running, a job runs where its lease was
//! taken, once.

use super::{Db, Q, db_ts};
use crate::error::Result;
use chrono::{DateTime, Utc};

/// Takes (or renews) the lease on `job` for `holder` until `until`, unless another holder's
/// lease is still running at `now`. Says whether `holder` has it.
pub async fn take(
    db: &Db,
    job: &str,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    let mut q = Q::new("INSERT INTO job_leases (name, holder, until) VALUES (");
    q.bind(job.to_owned())
        .push(", ")
        .bind(holder.to_owned())
        .push(", ")
        .bind(db_ts(until))
        .push(
            ") ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE job_leases.until <= ",
        )
        .bind(db_ts(now))
        .push(" OR job_leases.holder = excluded.holder RETURNING name");
    let got: Option<(String,)> = q.fetch_optional(&mut *tx).await?;
    tx.commit().await?;
    Ok(got.is_some())
}
