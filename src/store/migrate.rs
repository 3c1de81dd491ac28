//! Versioned schema migrations embedded in the binary, plus named, idempotent data patches.
//! Both are recorded in the database.

use super::{Backend, Db, Q, Tx};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

/// A schema migration, with one SQL text per backend.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../../migrations/postgres/", $name, ".sql")),
        }
    };
}

/// Every migration, in order. Released ones are never edited.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_core"),
    migration!(2, "0002_audit_chain"),
    migration!(3, "0003_sessions"),
    migration!(4, "0004_outbox"),
    migration!(5, "0005_personal_data"),
    migration!(6, "0006_events"),
];

/// The schema version this binary expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A data patch: a named change to data that is safe to run more than once.
pub struct Patch {
    pub name: &'static str,
    pub description: &'static str,
}

/// Every data patch, in order.
pub const PATCHES: &[Patch] = &[
    Patch {
        name: "0001_fill_search_keys",
        description: "fill empty search keys of customers, objects, projects and requests",
    },
    Patch {
        name: "0002_chain_audit_entries",
        description: "chain audit entries written before the audit chain existed",
    },
];

/// Data patches that need the personal-data keys. [`run`] applies them when the database
/// was opened with its keys; otherwise they stay pending until the next start with the key
/// (`pii::startup` runs them through [`run_keyed_patches`]).
pub const KEYED_PATCHES: &[Patch] = &[Patch {
    name: "0003_audit_personal_data",
    description: "replace personal data in audit entries by keyed fingerprints and re-chain the \
                  log from the first changed entry (recorded as an audit.rechain entry)",
}];

/// What a run of the migrator did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub applied: Vec<String>,
    pub patched: Vec<String>,
}

impl Report {
    pub fn is_noop(&self) -> bool {
        self.applied.is_empty() && self.patched.is_empty()
    }
}

/// The database's schema state.
#[derive(Debug, PartialEq, Eq)]
pub struct Status {
    pub current: i64,
    pub pending: Vec<i64>,
}

/// The tables that record applied migrations and data patches.
const BOOKKEEPING: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS data_patches (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
];

async fn ensure_bookkeeping(db: &Db) -> anyhow::Result<()> {
    for sql in BOOKKEEPING {
        sqlx::query(sql).execute(db.pool()).await?;
    }
    Ok(())
}

/// Builds the schema of the given migration versions inside `tx` (bookkeeping tables
/// included) without recording them: a restore loads the archive's own records, then
/// [`run`] applies whatever is newer. Every version must be one this binary knows.
pub async fn build_schema(tx: &mut Tx, versions: &[i64]) -> anyhow::Result<()> {
    for sql in BOOKKEEPING {
        sqlx::query(sql).execute(&mut **tx).await?;
    }
    let backend = super::tx_backend(tx);
    for v in versions {
        let m = MIGRATIONS
            .iter()
            .find(|m| m.version == *v)
            .with_context(|| format!("migration {v} is unknown to this ferum"))?;
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql)
            .execute(&mut **tx)
            .await
            .with_context(|| format!("migration {} failed", m.name))?;
    }
    Ok(())
}

/// Reads which migrations are applied and which are pending.
pub async fn status(db: &Db) -> anyhow::Result<Status> {
    ensure_bookkeeping(db).await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(db.pool())
            .await?;
    let current = applied.iter().copied().max().unwrap_or(0);
    let pending = MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    Ok(Status { current, pending })
}

/// Whether the database can serve this binary, without changing anything: `None` when it can,
/// otherwise why not (pending migrations, or a newer schema). An unreachable database is an error.
pub async fn readiness(db: &Db) -> anyhow::Result<Option<String>> {
    let applied: Vec<i64> = match sqlx::query_scalar::<_, i64>(
        "SELECT version FROM schema_migrations ORDER BY version",
    )
    .fetch_all(db.pool())
    .await
    {
        Ok(v) => v,
        Err(sqlx::Error::Database(e)) => {
            // No bookkeeping table yet: nothing is migrated.
            tracing::debug!(error = %e, "reading schema_migrations");
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let current = applied.iter().copied().max().unwrap_or(0);
    if current > latest_version() {
        return Ok(Some(format!(
            "database schema {current} is newer than this ferum ({})",
            latest_version()
        )));
    }
    let pending = MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count();
    Ok((pending > 0).then(|| format!("{pending} schema migration(s) pending")))
}

/// Refuses a database whose schema is newer than this binary.
pub fn ensure_not_newer(status: &Status) -> anyhow::Result<()> {
    if status.current > latest_version() {
        bail!(
            "the database schema is version {}, newer than this ferum binary supports ({}); \
             run a newer ferum or restore a matching backup",
            status.current,
            latest_version()
        );
    }
    Ok(())
}

/// Applies pending migrations (each in its own transaction) and then pending data patches.
pub async fn run(db: &Db, now: DateTime<Utc>) -> anyhow::Result<Report> {
    let st = status(db).await?;
    ensure_not_newer(&st)?;
    let mut report = Report::default();
    for m in MIGRATIONS
        .iter()
        .filter(|m| st.pending.contains(&m.version))
    {
        let sql = match db.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let mut tx = db.begin().await?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("migration {} failed", m.name))?;
        let mut q = Q::new("INSERT INTO schema_migrations (version, name, applied_at) VALUES (");
        q.bind(m.version)
            .push(", ")
            .bind(m.name.to_owned())
            .push(", ")
            .bind(super::db_ts(now))
            .push(")");
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        report.applied.push(m.name.to_owned());
    }
    let done: Vec<String> = sqlx::query_scalar("SELECT name FROM data_patches")
        .fetch_all(db.pool())
        .await?;
    for p in PATCHES.iter().filter(|p| !done.iter().any(|d| d == p.name)) {
        let mut tx = db.begin().await?;
        apply_patch(p.name, &mut tx)
            .await
            .with_context(|| format!("data patch {} failed", p.name))?;
        record_patch(&mut tx, p.name, now).await?;
        tx.commit().await?;
        report.patched.push(p.name.to_owned());
    }
    if let Ok(keys) = db.keys() {
        report
            .patched
            .extend(run_keyed_patches(db, keys, now).await?);
    }
    Ok(report)
}

/// Marks a data patch applied, inside the transaction that applied it.
async fn record_patch(tx: &mut super::Tx, name: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut q = Q::new("INSERT INTO data_patches (name, applied_at) VALUES (");
    q.bind(name.to_owned())
        .push(", ")
        .bind(super::db_ts(now))
        .push(")");
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Applies the pending data patches that need the personal-data keys ([`KEYED_PATCHES`]),
/// each in its own transaction; returns their names.
pub async fn run_keyed_patches(
    db: &Db,
    keys: &crate::crypto::DataKeys,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    ensure_bookkeeping(db).await?;
    let done: Vec<String> = sqlx::query_scalar("SELECT name FROM data_patches")
        .fetch_all(db.pool())
        .await?;
    let mut patched = Vec::new();
    for p in KEYED_PATCHES
        .iter()
        .filter(|p| !done.iter().any(|d| d == p.name))
    {
        let mut tx = db.begin().await?;
        apply_keyed_patch(p.name, &mut tx, keys, now)
            .await
            .with_context(|| format!("data patch {} failed", p.name))?;
        record_patch(&mut tx, p.name, now).await?;
        tx.commit().await?;
        tracing::info!(patch = p.name, "applied data patch");
        patched.push(p.name.to_owned());
    }
    Ok(patched)
}

/// Runs one data patch that needs the personal-data keys. Each is written so a second run
/// changes nothing.
pub async fn apply_keyed_patch(
    name: &str,
    tx: &mut super::Tx,
    keys: &crate::crypto::DataKeys,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    match name {
        "0003_audit_personal_data" => {
            if let Some(done) = super::audit::scrub_personal_data(tx, keys, now, name).await? {
                tracing::info!(
                    from_id = done.from_id,
                    entries = done.entries,
                    rewritten = done.rewritten,
                    "replaced personal data in audit entries and re-chained the log"
                );
            }
            Ok(())
        }
        other => bail!("unknown data patch {other}"),
    }
}

/// Runs one data patch. Each is written so a second run changes nothing.
pub async fn apply_patch(name: &str, tx: &mut super::Tx) -> anyhow::Result<()> {
    match name {
        "0001_fill_search_keys" => {
            super::customers::refresh_search_keys(tx, true).await?;
            super::objects::refresh_search_keys(tx, true).await?;
            super::projects::refresh_search_keys(tx, true).await?;
            super::requests::refresh_search_keys(tx, true).await?;
            Ok(())
        }
        "0002_chain_audit_entries" => {
            super::audit::chain_unhashed(tx).await?;
            Ok(())
        }
        other => bail!("unknown data patch {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migrations_in_order() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "versions must increase");
            last = m.version;
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{} is misnamed",
                m.name
            );
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty());
        }
        let list = |dir: &str| {
            let mut v: Vec<String> =
                std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
            v.sort();
            v
        };
        let sqlite = list("sqlite");
        assert_eq!(
            sqlite,
            list("postgres"),
            "the two backends' migration lists differ"
        );
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.name))
            .collect();
        assert_eq!(
            sqlite, embedded,
            "a migration file is not embedded in MIGRATIONS"
        );
    }
}
