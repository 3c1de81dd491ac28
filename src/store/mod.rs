//! Persistence on SQLite and PostgreSQL from one codebase.
//!
//! Every query is written once in the SQL both backends understand, through sqlx's `Any`
//! driver with `$n` placeholders. The few places where the dialects differ are methods of
//! [`Backend`]; nothing else in the crate looks at which backend it runs on.

pub mod audit;
pub mod customers;
pub mod leases;
pub mod mfa;
pub mod migrate;
pub mod objects;
pub mod outbox;
pub mod pii;
pub mod projects;
pub mod recipients;
pub mod reports;
pub mod requests;
pub mod sessions;
pub mod stats;
pub mod users;

use crate::domain::access::{Actor, Scope};
use crate::error::{Error, Result};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Arguments, Encode, Executor, FromRow, Type};
use std::path::PathBuf;
use std::time::Duration;

pub type Tx = sqlx::Transaction<'static, Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Row lock for read-modify-write inside a transaction. SQLite needs none: its write
    /// transactions start with `BEGIN IMMEDIATE` and hold the database write lock.
    pub fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Claiming queue rows that other workers may be claiming at the same moment: PostgreSQL
    /// skips rows another transaction has locked; SQLite has one writer at a time anyway.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// How a write transaction starts. SQLite's default deferred `BEGIN` would fail with
    /// `SQLITE_BUSY` when two readers both try to upgrade; `IMMEDIATE` queues them instead.
    fn begin_statement(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => Some("BEGIN IMMEDIATE"),
            Backend::Postgres => None,
        }
    }
}

/// A database URL that names a backend we support. Anything else is refused, so a typo never
/// silently creates an empty database somewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> anyhow::Result<DatabaseUrl> {
        let raw = raw.trim();
        let (scheme, rest) = raw
            .split_once(':')
            .with_context(|| format!("database URL has no scheme: {}", redact(raw)))?;
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            other => bail!(
                "unsupported database URL scheme {other:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            ),
        };
        if backend == Backend::Sqlite {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                bail!("sqlite URL needs a file path, e.g. sqlite://data/ferum.db");
            }
        } else {
            url::Url::parse(raw)
                .with_context(|| format!("invalid PostgreSQL URL {}", redact(raw)))?;
        }
        Ok(DatabaseUrl {
            url: raw.to_owned(),
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The SQLite file this URL points at.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        (self.backend == Backend::Sqlite).then(|| {
            let rest = &self.url[self.url.find(':').map_or(0, |i| i + 1)..];
            let path = rest.trim_start_matches("//");
            PathBuf::from(path.split('?').next().unwrap_or_default())
        })
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

/// Hides the password of a URL for logs and messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Connection pools plus the backend they talk to.
///
/// On SQLite, writers get a pool of their own with one connection: SQLite allows one writer
/// at a time anyway, and queueing for that connection in the pool is fair and cheap, where
/// several connections racing for the file lock would sleep in the busy handler. Readers use
/// the main pool and, in WAL mode, never wait for the writer. On PostgreSQL both are one pool.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
    keys: Option<std::sync::Arc<crate::crypto::DataKeys>>,
}

impl Db {
    /// Connects; an SQLite file (and its folder) is created if missing, in WAL mode with
    /// foreign keys on and a busy timeout.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = url.backend();
        let connect_url = match backend {
            Backend::Sqlite => {
                let path = url.sqlite_path().unwrap_or_default();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("cannot create database folder {}", dir.display())
                    })?;
                }
                format!("sqlite://{}?mode=rwc", path.display())
            }
            Backend::Postgres => url.as_str().to_owned(),
        };
        let options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA busy_timeout = 10000",
                                "PRAGMA synchronous = NORMAL",
                            ] {
                                conn.execute(pragma).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let open = |max: u32| {
            let opts = options(max);
            let url = connect_url.clone();
            async move { opts.connect(&url).await }
        };
        let pool = open(max_connections.max(1))
            .await
            .with_context(|| format!("cannot open database {url}"))?;
        let writer = match backend {
            Backend::Sqlite => open(1)
                .await
                .with_context(|| format!("cannot open database {url}"))?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Db {
            pool,
            writer,
            backend,
            keys: None,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Attaches the keys that encrypt personal data (see `store::pii`).
    pub fn with_keys(mut self, keys: crate::crypto::DataKeys) -> Db {
        self.keys = Some(std::sync::Arc::new(keys));
        self
    }

    /// The data keys; an error if the database was opened without them.
    pub fn keys(&self) -> Result<&crate::crypto::DataKeys> {
        self.keys
            .as_deref()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("personal-data keys are not loaded")))
    }

    /// The pool for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that may write.
    pub async fn begin(&self) -> Result<Tx> {
        let tx = match self.backend.begin_statement() {
            Some(stmt) => self.writer.begin_with(stmt).await?,
            None => self.writer.begin().await?,
        };
        Ok(tx)
    }

    /// Connection counts of each pool: (name, open, idle, maximum).
    pub fn pool_stats(&self) -> Vec<(&'static str, u32, u32, u32)> {
        let one = |name, p: &AnyPool| {
            let idle = u32::try_from(p.num_idle()).unwrap_or(u32::MAX);
            (name, p.size(), idle, p.options().get_max_connections())
        };
        match self.backend {
            Backend::Sqlite => vec![one("read", &self.pool), one("write", &self.writer)],
            Backend::Postgres => vec![one("main", &self.pool)],
        }
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// The backend a transaction runs on.
pub fn tx_backend(tx: &Tx) -> Backend {
    if tx.backend_name().eq_ignore_ascii_case("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// Counts the rows of `table` whose `column` is `id` (reference and existence checks).
pub async fn count_where(tx: &mut Tx, table: &str, column: &str, id: i64) -> Result<i64> {
    let mut q = Q::new(&format!("SELECT COUNT(*) FROM {table} WHERE {column} = "));
    q.bind(id);
    q.scalar(&mut **tx).await
}

/// Deletes, in order, the rows of each `(table, column)` whose column is `id`.
pub async fn delete_where(tx: &mut Tx, targets: &[(&str, &str)], id: i64) -> Result<()> {
    for (table, column) in targets {
        let mut q = Q::new(&format!("DELETE FROM {table} WHERE {column} = "));
        q.bind(id);
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Who does what, when and from where: passed to every store function that reads or writes
/// on a user's behalf.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub now: DateTime<Utc>,
    pub ip: String,
    /// The session family of the access token in use.
    pub session: String,
}

/// A query assembled at run time with `$n` placeholders, which both backends accept.
pub struct Q {
    sql: String,
    args: AnyArguments<'static>,
    n: usize,
}

impl Q {
    pub fn new(sql: &str) -> Q {
        Q {
            sql: sql.to_owned(),
            args: AnyArguments::default(),
            n: 0,
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Q {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind<T>(&mut self, v: T) -> &mut Q
    where
        T: 'static + Send + Encode<'static, Any> + Type<Any>,
    {
        self.n += 1;
        self.sql.push('$');
        self.sql.push_str(&self.n.to_string());
        self.args.add(v).expect("encoding a bound value");
        self
    }

    pub async fn fetch_all<'c, R, E>(self, e: E) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'c, Database = Any>,
    {
        Ok(sqlx::query_as_with(&self.sql, self.args)
            .fetch_all(e)
            .await?)
    }

    pub async fn fetch_optional<'c, R, E>(self, e: E) -> Result<Option<R>>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'c, Database = Any>,
    {
        Ok(sqlx::query_as_with(&self.sql, self.args)
            .fetch_optional(e)
            .await?)
    }

    pub async fn scalar<'c, T, E>(self, e: E) -> Result<T>
    where
        T: for<'r> sqlx::Decode<'r, Any> + Type<Any> + Send + Unpin,
        E: Executor<'c, Database = Any>,
    {
        Ok(sqlx::query_scalar_with(&self.sql, self.args)
            .fetch_one(e)
            .await?)
    }

    pub async fn execute<'c, E>(self, e: E) -> Result<u64>
    where
        E: Executor<'c, Database = Any>,
    {
        Ok(sqlx::query_with(&self.sql, self.args)
            .execute(e)
            .await?
            .rows_affected())
    }

    /// Appends a case-insensitive substring match of `text` on a column holding folded text
    /// (see `values::search_key`); blank text matches everything.
    pub fn search(&mut self, column: &str, text: Option<&str>) -> &mut Q {
        if let Some(t) = text.filter(|t| !t.trim().is_empty()) {
            self.push(&format!(" AND {column} LIKE "))
                .bind(crate::domain::values::like_pattern(t))
                .push(" ESCAPE '\\'");
        }
        self
    }

    /// Appends ` AND <the scope's condition>` for a resource whose scope columns are given.
    pub fn scope(&mut self, scope: Scope, cond: ScopeSql) -> &mut Q {
        match scope {
            Scope::All => self,
            Scope::Nothing => self.push(" AND 1 = 0"),
            Scope::Assigned(u) => {
                let parts: Vec<&str> = cond.assigned.split("{u}").collect();
                self.push(" AND (");
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.bind(u.0);
                    }
                    self.push(p);
                }
                self.push(")")
            }
            Scope::Customer(c) => {
                let parts: Vec<&str> = cond.customer.split("{c}").collect();
                self.push(" AND (");
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.bind(c.0);
                    }
                    self.push(p);
                }
                self.push(")")
            }
        }
    }
}

/// How a resource's rows are limited by scope: SQL with `{u}` for the engineer's user id and
/// `{c}` for the client's customer id.
#[derive(Debug, Clone, Copy)]
pub struct ScopeSql {
    pub assigned: &'static str,
    pub customer: &'static str,
}

/// Turns a unique-constraint violation into a 409 naming the field; other errors pass through.
pub trait UniqueExt<T> {
    fn unique(self, field: &str, message: &str) -> Result<T>;
}

impl<T> UniqueExt<T> for Result<T> {
    fn unique(self, field: &str, message: &str) -> Result<T> {
        self.map_err(|e| match e {
            Error::Internal(inner)
                if inner
                    .downcast_ref::<sqlx::Error>()
                    .and_then(|s| s.as_database_error())
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Error::conflict_on("duplicate", field, message)
            }
            other => other,
        })
    }
}

pub fn ts(s: &str) -> Result<DateTime<Utc>> {
    Ok(crate::domain::time::from_db(s)?)
}

pub fn ts_opt(s: &Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(ts).transpose()
}

pub fn db_ts(t: DateTime<Utc>) -> String {
    crate::domain::time::to_db(t)
}

/// Keyset pagination: newest first, after the cursor (an id) if given.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub after: Option<i64>,
}

impl Page {
    pub const DEFAULT: i64 = 50;
    pub const MAX: i64 = 200;

    /// Appends the cursor condition, order and limit (one row more, to know if there is a next page).
    pub fn apply(&self, q: &mut Q, id_col: &str) {
        if let Some(after) = self.after {
            q.push(&format!(" AND {id_col} < ")).bind(after);
        }
        q.push(&format!(" ORDER BY {id_col} DESC LIMIT "))
            .bind(self.limit + 1);
    }

    /// Splits off the extra row and returns the next cursor.
    pub fn finish<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next = if more {
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        (rows, next)
    }
}

/// Next human number of a kind for a year, unique under concurrent creation: the counter row is
/// updated inside the caller's transaction, which serialises competing writers.
pub async fn next_number(tx: &mut Tx, kind: &str, year: i32) -> Result<i64> {
    let mut q = Q::new("INSERT INTO number_sequences (kind, year, last) VALUES (");
    q.bind(kind.to_owned())
        .push(", ")
        .bind(i64::from(year))
        .push(", 1) ON CONFLICT (kind, year) DO UPDATE SET last = number_sequences.last + 1 RETURNING last");
    q.scalar::<i64, _>(&mut **tx).await
}

/// Checks optimistic concurrency: the caller's expected version against the current one.
pub fn check_version(expected: Expected, current: i64) -> Result<()> {
    match expected {
        Expected::Body(v) if v != current => Err(Error::Stale {
            current,
            precondition: false,
        }),
        Expected::IfMatch(v) if v != current => Err(Error::Stale {
            current,
            precondition: true,
        }),
        _ => Ok(()),
    }
}

/// The version an update is based on, and where the client put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Body(i64),
    IfMatch(i64),
}

/// For PATCH bodies: tells "absent" (`None`) from "null" (`Some(None)`).
pub fn double_option<'de, T, D>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    Option::<T>::deserialize(d).map(Some)
}

/// The version a PATCH is based on: `If-Match` wins over the body; one of them is required.
pub fn expected(if_match: Option<i64>, body: Option<i64>) -> Result<Expected> {
    match (if_match, body) {
        (Some(v), _) => Ok(Expected::IfMatch(v)),
        (None, Some(v)) => Ok(Expected::Body(v)),
        (None, None) => Err(Error::VersionRequired),
    }
}
