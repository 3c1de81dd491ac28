//! The logical dump: every table of the database catalogue as JSON lines, independent of the
//! backend, and the load of such a dump into a database of either kind.
//!
//! One line per row, a JSON object keyed by column name. Values are typed: integer columns
//! give JSON integers, text columns JSON strings, and `NULL` is `null`. The schema has no
//! binary columns; a column of another type stops the dump with its name rather than being
//! written in a form a restore could not read back.

use super::progress::{Progress, Unit};
use crate::store::{Backend, Db, Tx, tx_backend};
use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;

/// How a column's values cross the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Text,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

/// Tables that exist only to run the database, not to hold the site's data: a database whose
/// other tables are empty counts as empty.
const BOOKKEEPING: &[&str] = &["schema_migrations", "data_patches", "audit_head"];

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn classify(table: &str, column: &str, declared: &str) -> anyhow::Result<Kind> {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") {
        Ok(Kind::Integer)
    } else if t.contains("text") || t.contains("char") || t.contains("clob") {
        Ok(Kind::Text)
    } else {
        bail!(
            "column {table}.{column} has type {declared:?}, which the backup format does not carry"
        )
    }
}

/// The tables of the current schema, by name, with their columns and primary keys.
pub async fn catalogue(conn: &mut AnyConnection, backend: Backend) -> anyhow::Result<Vec<Table>> {
    let names: Vec<String> = match backend {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?,
        Backend::Postgres => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .fetch_all(&mut *conn)
        .await?,
    };
    let mut tables = Vec::new();
    for name in names {
        let (cols, primary_key): (Vec<(String, String)>, Vec<String>) = match backend {
            Backend::Sqlite => {
                let rows: Vec<(String, String, i64)> =
                    sqlx::query_as("SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid")
                        .bind(name.clone())
                        .fetch_all(&mut *conn)
                        .await?;
                let mut pk: Vec<(i64, String)> = rows
                    .iter()
                    .filter(|r| r.2 > 0)
                    .map(|r| (r.2, r.0.clone()))
                    .collect();
                pk.sort();
                (
                    rows.into_iter().map(|r| (r.0, r.1)).collect(),
                    pk.into_iter().map(|p| p.1).collect(),
                )
            }
            Backend::Postgres => {
                let cols: Vec<(String, String)> = sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(name.clone())
                .fetch_all(&mut *conn)
                .await?;
                let pk: Vec<String> = sqlx::query_scalar(
                    "SELECT k.column_name::text FROM information_schema.table_constraints c \
                     JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name \
                       AND k.table_schema = c.table_schema AND k.table_name = c.table_name \
                     WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema() \
                       AND c.table_name = $1 ORDER BY k.ordinal_position",
                )
                .bind(name.clone())
                .fetch_all(&mut *conn)
                .await?;
                (cols, pk)
            }
        };
        let columns = cols
            .into_iter()
            .map(|(c, t)| {
                Ok(Column {
                    kind: classify(&name, &c, &t)?,
                    name: c,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        tables.push(Table {
            name,
            columns,
            primary_key,
        });
    }
    Ok(tables)
}

/// The tables each table references by foreign key.
async fn references(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &str,
) -> anyhow::Result<Vec<String>> {
    let sql = match backend {
        Backend::Sqlite => "SELECT \"table\" FROM pragma_foreign_key_list($1)",
        Backend::Postgres => {
            "SELECT t.relname::text FROM pg_constraint k \
             JOIN pg_class s ON s.oid = k.conrelid JOIN pg_class t ON t.oid = k.confrelid \
             JOIN pg_namespace n ON n.oid = s.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = current_schema() AND s.relname = $1"
        }
    };
    Ok(sqlx::query_scalar(sql)
        .bind(table.to_owned())
        .fetch_all(&mut *conn)
        .await?)
}

/// Orders tables so that every table comes after the ones it references (self-references
/// and cycles, which the schema does not have, fall back to name order).
pub fn load_order(names: &[String], refs: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut done: Vec<String> = Vec::new();
    let mut left: BTreeSet<&String> = names.iter().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|t| {
                refs.get(*t).is_none_or(|rs| {
                    rs.iter()
                        .all(|r| r == *t || done.contains(r) || !names.contains(r))
                })
            })
            .collect();
        let next = if ready.is_empty() {
            left.iter().copied().take(1).collect()
        } else {
            ready
        };
        for t in next {
            left.remove(t);
            done.push(t.clone());
        }
    }
    done
}

/// What the dump found.
#[derive(Debug, Clone)]
pub struct Dumped {
    pub backend: Backend,
    /// `(table, rows)` in name order.
    pub tables: Vec<(String, u64)>,
    pub migrations: Vec<(i64, String)>,
    pub data_patches: Vec<String>,
}

/// Writes `dir/<table>.jsonl` for every table, read in one consistent snapshot.
pub async fn dump(db: &Db, dir: &Path) -> anyhow::Result<Dumped> {
    let backend = db.backend();
    let begin = match backend {
        Backend::Sqlite => "BEGIN",
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    };
    let mut tx = db.pool().begin_with(begin).await?;
    let tables = catalogue(&mut tx, backend).await?;
    if !tables.iter().any(|t| t.name == "schema_migrations") {
        bail!(
            "the database has no schema yet (no schema_migrations table): there is nothing to back up"
        );
    }
    let migrations: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, name FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    let data_patches: Vec<String> = if tables.iter().any(|t| t.name == "data_patches") {
        sqlx::query_scalar("SELECT name FROM data_patches ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
    } else {
        Vec::new()
    };
    std::fs::create_dir_all(dir)?;
    let mut progress = Progress::new("dumping", Unit::Rows, None);
    let mut counts = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        progress.set_label(format!(
            "dumping table {}/{} ({})",
            i + 1,
            tables.len(),
            table.name
        ));
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let order: Vec<String> = if table.primary_key.is_empty() {
            cols.clone()
        } else {
            table
                .primary_key
                .iter()
                .map(|k| {
                    let text = table
                        .columns
                        .iter()
                        .any(|c| &c.name == k && c.kind == Kind::Text);
                    match (backend, text) {
                        // Byte order, as SQLite sorts, whatever the database's collation.
                        (Backend::Postgres, true) => format!("{} COLLATE \"C\"", quote(k)),
                        _ => quote(k),
                    }
                })
                .collect()
        };
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            quote(&table.name),
            order.join(", ")
        );
        let path = dir.join(format!("{}.jsonl", table.name));
        let mut out = std::io::BufWriter::new(
            create_private(&path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        let mut rows = sqlx::query(&sql).fetch(&mut *tx);
        let mut n = 0_u64;
        while let Some(row) = rows.try_next().await? {
            let obj = row_to_json(table, &row)?;
            serde_json::to_writer(&mut out, &obj)?;
            out.write_all(b"\n")?;
            n += 1;
            progress.inc(1);
        }
        drop(rows);
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        counts.push((table.name.clone(), n));
    }
    progress.finish();
    tx.rollback().await?;
    Ok(Dumped {
        backend,
        tables: counts,
        migrations,
        data_patches,
    })
}

/// Creates a file only its owner can read (0600): a dump holds every row in clear text.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn row_to_json(table: &Table, row: &AnyRow) -> anyhow::Result<Map<String, Value>> {
    let mut obj = Map::new();
    for (i, c) in table.columns.iter().enumerate() {
        let v = match c.kind {
            Kind::Integer => row
                .try_get::<Option<i64>, _>(i)
                .with_context(|| format!("reading {}.{}", table.name, c.name))?
                .map_or(Value::Null, Value::from),
            Kind::Text => row
                .try_get::<Option<String>, _>(i)
                .with_context(|| format!("reading {}.{}", table.name, c.name))?
                .map_or(Value::Null, Value::from),
        };
        obj.insert(c.name.clone(), v);
    }
    Ok(obj)
}

/// Rows per table of the database, for the "is it empty" check. Bookkeeping tables and the
/// key canary do not count.
pub async fn rows_held(db: &Db) -> anyhow::Result<Vec<(String, i64)>> {
    let mut conn = db.pool().acquire().await?;
    let tables = catalogue(&mut conn, db.backend()).await?;
    let mut held = Vec::new();
    for t in tables {
        if BOOKKEEPING.contains(&t.name.as_str()) {
            continue;
        }
        let filter = if t.name == "settings" {
            format!(" WHERE name <> '{}'", crate::store::pii::CANARY_SETTING)
        } else {
            String::new()
        };
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}{filter}", quote(&t.name)))
                .fetch_one(&mut *conn)
                .await?;
        if n > 0 {
            held.push((t.name, n));
        }
    }
    Ok(held)
}

/// Inside `tx`: drops every table, builds the schema of `versions`, and loads each
/// `dir/<table>.jsonl` in foreign-key order. Nothing is committed here.
pub async fn load(
    tx: &mut Tx,
    dir: &Path,
    tables: &[(String, u64)],
    versions: &[i64],
) -> anyhow::Result<u64> {
    let backend = tx_backend(tx);
    if backend == Backend::Sqlite {
        // Checked at commit instead of per statement: drops and loads may pass through states
        // a foreign key would refuse.
        sqlx::query("PRAGMA defer_foreign_keys = ON")
            .execute(&mut **tx)
            .await?;
    }
    for t in catalogue(tx, backend).await? {
        let cascade = match backend {
            Backend::Sqlite => "",
            Backend::Postgres => " CASCADE",
        };
        sqlx::query(&format!("DROP TABLE IF EXISTS {}{cascade}", quote(&t.name)))
            .execute(&mut **tx)
            .await?;
    }
    crate::store::migrate::build_schema(tx, versions).await?;
    let schema = catalogue(tx, backend).await?;
    let mut refs = BTreeMap::new();
    for t in &schema {
        refs.insert(t.name.clone(), references(tx, backend, &t.name).await?);
    }
    let names: Vec<String> = schema.iter().map(|t| t.name.clone()).collect();
    for (name, _) in tables {
        if !names.contains(name) {
            bail!("the archive has a table {name} that its own schema version does not create");
        }
    }
    let order = load_order(&names, &refs);
    // Rows the migrations themselves insert (the audit chain head) come from the archive.
    for name in order.iter().rev() {
        sqlx::query(&format!("DELETE FROM {}", quote(name)))
            .execute(&mut **tx)
            .await?;
    }
    let total: u64 = tables.iter().map(|t| t.1).sum();
    let mut progress = Progress::new("restoring", Unit::Rows, Some(total));
    let mut loaded = 0;
    for name in &order {
        let Some(table) = schema.iter().find(|t| &t.name == name) else {
            continue;
        };
        let path = dir.join(format!("{name}.jsonl"));
        if !path.exists() {
            continue;
        }
        progress.set_label(format!("restoring {name}"));
        loaded += load_table(tx, table, &path, &mut progress).await?;
    }
    progress.finish();
    if backend == Backend::Postgres {
        reset_sequences(tx, &schema).await?;
    } else {
        let broken: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut **tx)
                .await?;
        if let Some((t,)) = broken.first() {
            bail!("the archive's rows of {t} refer to rows that are not in it");
        }
    }
    Ok(loaded)
}

async fn load_table(
    tx: &mut Tx,
    table: &Table,
    path: &Path,
    progress: &mut Progress,
) -> anyhow::Result<u64> {
    let file = std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let mut columns: Option<Vec<&Column>> = None;
    let mut batch: Vec<Map<String, Value>> = Vec::new();
    let mut n = 0;
    for line in file.lines() {
        let line = line?;
        let row: Map<String, Value> = serde_json::from_str(&line)
            .with_context(|| format!("a row of {} is not a JSON object", table.name))?;
        let cols = match &columns {
            Some(c) => c,
            None => {
                for key in row.keys() {
                    if !table.columns.iter().any(|c| &c.name == key) {
                        bail!(
                            "the archive has a column {}.{key} that its own schema version does not create",
                            table.name
                        );
                    }
                }
                columns.insert(
                    table
                        .columns
                        .iter()
                        .filter(|c| row.contains_key(&c.name))
                        .collect(),
                )
            }
        };
        if row.len() != cols.len() {
            bail!(
                "the rows of {} in the archive differ in their columns",
                table.name
            );
        }
        batch.push(row);
        // Many rows per INSERT save round trips, but SQLite looks each `$n` up in a list
        // (`sqlite3_bind_parameter_name`), so its cost grows with the square of the
        // parameters of one statement: keep SQLite's statements small.
        let parameters = match tx_backend(tx) {
            Backend::Sqlite => 250,
            Backend::Postgres => 10_000,
        };
        let per_statement = (parameters / cols.len().max(1)).clamp(1, 500);
        if batch.len() >= per_statement {
            insert(tx, table, cols, &batch).await?;
            n += batch.len() as u64;
            progress.inc(batch.len() as u64);
            batch.clear();
        }
    }
    if let Some(cols) = &columns
        && !batch.is_empty()
    {
        insert(tx, table, cols, &batch).await?;
        n += batch.len() as u64;
        progress.inc(batch.len() as u64);
    }
    Ok(n)
}

async fn insert(
    tx: &mut Tx,
    table: &Table,
    cols: &[&Column],
    rows: &[Map<String, Value>],
) -> anyhow::Result<()> {
    let names: Vec<String> = cols.iter().map(|c| quote(&c.name)).collect();
    let mut q = crate::store::Q::new(&format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(&table.name),
        names.join(", ")
    ));
    for (r, row) in rows.iter().enumerate() {
        q.push(if r == 0 { "(" } else { ", (" });
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let v = row
                .get(&c.name)
                .with_context(|| format!("a row of {} has no {}", table.name, c.name))?;
            let wrong = || {
                anyhow::anyhow!(
                    "the archive's value of {}.{} is not of the column's type",
                    table.name,
                    c.name
                )
            };
            match (c.kind, v) {
                (Kind::Integer, Value::Null) => q.bind(None::<i64>),
                (Kind::Integer, Value::Number(x)) => q.bind(Some(x.as_i64().ok_or_else(wrong)?)),
                (Kind::Text, Value::Null) => q.bind(None::<String>),
                (Kind::Text, Value::String(s)) => q.bind(Some(s.clone())),
                _ => return Err(wrong()),
            };
        }
        q.push(")");
    }
    q.execute(&mut **tx)
        .await
        .with_context(|| format!("loading the rows of {}", table.name))?;
    Ok(())
}

/// Sets each identity sequence past the largest id loaded, so new rows get fresh ids.
async fn reset_sequences(tx: &mut Tx, schema: &[Table]) -> anyhow::Result<()> {
    for t in schema {
        let identity: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
               AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')",
        )
        .bind(t.name.clone())
        .fetch_all(&mut **tx)
        .await?;
        for c in identity {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), GREATEST(COALESCE(MAX({col}), 0), 1), COALESCE(MAX({col}), 0) > 0)::text FROM {table}",
                col = quote(&c),
                table = quote(&t.name)
            );
            sqlx::query(&sql)
                .bind(quote(&t.name))
                .bind(c.clone())
                .execute(&mut **tx)
                .await
                .with_context(|| format!("resetting the sequence of {}.{c}", t.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_tables_load_first() {
        let names: Vec<String> = ["audit_log", "customers", "objects", "requests", "users"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut refs = BTreeMap::new();
        refs.insert(
            "requests".to_owned(),
            vec![
                "objects".to_owned(),
                "users".to_owned(),
                "customers".to_owned(),
            ],
        );
        refs.insert("objects".to_owned(), vec!["customers".to_owned()]);
        refs.insert(
            "users".to_owned(),
            vec!["customers".to_owned(), "users".to_owned()],
        );
        let order = load_order(&names, &refs);
        let pos = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert_eq!(order.len(), 5);
        assert!(pos("customers") < pos("objects"));
        assert!(pos("objects") < pos("requests"));
        assert!(pos("users") < pos("requests"));
        assert!(pos("customers") < pos("users"));
    }

    #[test]
    fn unknown_column_types_are_named() {
        assert_eq!(classify("t", "c", "BIGINT").unwrap(), Kind::Integer);
        assert_eq!(classify("t", "c", "smallint").unwrap(), Kind::Integer);
        assert_eq!(classify("t", "c", "TEXT").unwrap(), Kind::Text);
        assert_eq!(classify("t", "c", "character varying").unwrap(), Kind::Text);
        let e = classify("files", "data", "BLOB").unwrap_err().to_string();
        assert!(e.contains("files.data"), "{e}");
    }
}
