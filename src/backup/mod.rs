//! Backups that are proven to restore: `ferum backup`, `ferum backup verify`, `ferum restore`
//! and the daily backup inside `serve`. See BACKUP.md.
//!
//! A backup is a logical dump of every table (so it restores into either backend), the stored
//! files and a manifest with a SHA-256 of every part (see [`archive`]). A restore checks the
//! whole archive — checksums, the audit chain of its audit rows ([`chain`]), the manifest's
//! MAC when a backup key is set, schema version, decryption, the personal-data key — before it
//! touches the target, then loads it in one transaction.
//!
//! A backup stages the clear-text dump in a private folder of the data folder, never in the
//! target, and removes what killed runs left (see [`leftovers`]).

pub mod archive;
pub mod chain;
pub mod dump;
pub mod progress;
pub mod target;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::backup::{Retention, TimeOfDay, archive_name, next_run};
use crate::store::{Backend, DatabaseUrl, Db, migrate};
use anyhow::{Context, bail};
use archive::{BackupKey, KEY_PART, Manifest, MigrationRecord, Signature};
use chrono::{DateTime, SecondsFormat, Utc};
use progress::{count, human_bytes, thousands};
use std::path::{Path, PathBuf};
use target::{Location, Target};

/// The `settings` row that holds the time of the last successful backup.
pub use crate::store::stats::LAST_BACKUP_SETTING as LAST_SUCCESS;

/// Backup settings, from the environment (see BACKUP.md).
#[derive(Clone, Debug)]
pub struct BackupConfig {
    /// `FERUM_BACKUP_TARGET`: a folder or `s3://bucket/prefix`; default `<data dir>/backups`.
    pub target: Target,
    /// `FERUM_BACKUP_AT`: the daily backup inside `serve`, if set.
    pub at: Option<TimeOfDay>,
    /// `FERUM_BACKUP_AGE_RECIPIENT`: encrypt archives to this age public key.
    pub recipient: Option<age::x25519::Recipient>,
    /// `FERUM_BACKUP_AGE_IDENTITY`: the identity file that opens encrypted archives.
    pub identity: Option<PathBuf>,
    /// `FERUM_BACKUP_KEY`: signs each manifest (HMAC-SHA256); `verify` and `restore` then
    /// refuse an archive not signed with it.
    pub key: Option<BackupKey>,
    pub data_dir: PathBuf,
    pub files_dir: PathBuf,
    pub retention: Retention,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `FERUM_BACKUP_KEY`, if set.
pub fn key_from_env() -> anyhow::Result<Option<BackupKey>> {
    var("FERUM_BACKUP_KEY")
        .map(|k| BackupKey::parse(&k, "FERUM_BACKUP_KEY"))
        .transpose()
}

/// Parses an age public key (`age1…`).
pub fn parse_recipient(s: &str, source: &str) -> anyhow::Result<age::x25519::Recipient> {
    s.trim().parse().map_err(|e| {
        anyhow::anyhow!("{source} must be an age public key (age1…), as printed by age-keygen: {e}")
    })
}

impl BackupConfig {
    pub fn from_env(config: &Config) -> anyhow::Result<BackupConfig> {
        let target = match var("FERUM_BACKUP_TARGET") {
            Some(t) => Target::parse(&t).context("FERUM_BACKUP_TARGET")?,
            None => Target::Local(config.data_dir.join("backups")),
        };
        let at = var("FERUM_BACKUP_AT")
            .map(|v| TimeOfDay::parse(&v).map_err(|e| anyhow::anyhow!("FERUM_BACKUP_AT: {e}")))
            .transpose()?;
        let recipient = var("FERUM_BACKUP_AGE_RECIPIENT")
            .map(|r| parse_recipient(&r, "FERUM_BACKUP_AGE_RECIPIENT"))
            .transpose()?;
        Ok(BackupConfig {
            target,
            at,
            recipient,
            identity: var("FERUM_BACKUP_AGE_IDENTITY").map(PathBuf::from),
            key: key_from_env()?,
            data_dir: config.data_dir.clone(),
            files_dir: config.files_dir.clone(),
            retention: Retention::default(),
        })
    }

    /// Where the partial archive is written: the target folder (so the finished archive is
    /// renamed into place) or, for S3, the data folder. The table dump never goes there: it is
    /// staged in a private folder in the data folder (see [`backup`]).
    fn scratch(&self) -> PathBuf {
        match &self.target {
            Target::Local(dir) => dir.clone(),
            Target::S3(_) => self.data_dir.clone(),
        }
    }

    /// The folders a backup writes temporary things to: the data folder (the private staging
    /// folder) and the folder of the partial archive (the target, or for S3 the data folder),
    /// once each.
    pub fn work_folders(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.data_dir.clone()];
        let scratch = self.scratch();
        if !same_folder(&scratch, &self.data_dir) {
            dirs.push(scratch);
        }
        dirs
    }
}

/// The private folder a run stages its table dump in: `.ferum-backup-XXXXXX` (mode 0700).
const STAGING_PREFIX: &str = ".ferum-backup-";
/// A run's archive before it is complete: `.ferum-XXXXXX.partial` (mode 0600).
const PARTIAL_PREFIX: &str = ".ferum-";
const PARTIAL_SUFFIX: &str = ".partial";
/// Held (an exclusive file lock) by a running backup in every folder it writes temporary
/// things to, so that a later run knows what it finds there is left over, not in use.
pub const LOCK_FILE: &str = ".ferum-backup.lock";

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Whether `name` is something a backup run leaves behind only when it is killed.
fn is_leftover(name: &str) -> bool {
    name.starts_with(STAGING_PREFIX)
        || (name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX))
}

/// The names of what interrupted backups left in `dir` (staging folders, which may hold a
/// clear-text table dump, and partial archives), sorted. A missing folder has none.
pub fn leftovers(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        if let Some(name) = e.file_name().to_str()
            && is_leftover(name)
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether a backup holds the lock in `dir` right now. Creates nothing.
pub fn running_in(dir: &Path) -> bool {
    let Ok(f) = std::fs::File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    let held = matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock));
    held
}

/// Takes the backup lock of `dir` for this run (released when the file is dropped, or when
/// the process dies, however it dies).
fn lock_folder(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let locked = f.try_lock();
    match locked {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another backup is running in {} (it holds {}); try again when it has finished",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Removes what interrupted backups left in `dir`; the caller holds the folder's lock, so
/// nothing there is in use. Returns the names removed.
fn remove_leftovers(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in leftovers(dir)? {
        let path = dir.join(&name);
        // A symbolic link is removed, never followed.
        let gone = if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.with_context(|| {
            format!(
                "cannot remove {}, left by an interrupted backup",
                path.display()
            )
        })?;
        tracing::warn!(path = %path.display(), "backup: removed what an interrupted backup left");
        removed.push(name);
    }
    Ok(removed)
}

/// Makes what `b` creates readable by its owner only: `mode` 0700 for a folder, 0600 for a
/// file.
fn owner_only<'r, 'a, 'b>(
    b: &'r mut tempfile::Builder<'a, 'b>,
    mode: u32,
) -> &'r mut tempfile::Builder<'a, 'b> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    b
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// Path or `s3://` URL of the archive.
    pub location: String,
    pub manifest: Manifest,
    pub size: u64,
    pub deleted: Vec<String>,
    /// Retention that could not be applied (the backup itself succeeded).
    pub retention_error: Option<String>,
}

impl BackupReport {
    pub fn summary(&self) -> String {
        format!(
            "wrote {} ({}, {}, {}, {}{})",
            self.location,
            count(self.manifest.tables.len() as u64, "table"),
            count(self.manifest.rows(), "row"),
            count(self.manifest.files, "file"),
            human_bytes(self.size),
            if self.manifest.encrypted {
                ", encrypted with age"
            } else {
                ""
            }
        )
    }
}

/// The regular files below `dir`, as sorted `/`-separated relative paths.
fn stored_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let e = e?;
            let t = e.file_type()?;
            let path = e.path();
            if t.is_dir() {
                stack.push(path);
            } else if t.is_file() {
                let rel = path.strip_prefix(dir)?;
                let parts: Option<Vec<&str>> =
                    rel.components().map(|c| c.as_os_str().to_str()).collect();
                let rel = parts
                    .with_context(|| {
                        format!(
                            "the stored file {} has a name that is not UTF-8",
                            path.display()
                        )
                    })?
                    .join("/");
                out.push((rel, path));
            } else {
                tracing::warn!(path = %path.display(), "not a regular file; left out of the backup");
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The personal-data keys of this site as a config string, if present (never created here).
fn local_data_key(data_dir: &Path) -> anyhow::Result<Option<crate::crypto::DataKeys>> {
    crate::crypto::DataKeys::load_existing(
        data_dir,
        std::env::var("FERUM_DATA_KEY").ok().as_deref(),
    )
}

/// Takes a backup: dumps the database and the stored files into one archive in the target,
/// applies retention there, and records the time in `settings`.
pub async fn backup(
    db: &Db,
    cfg: &BackupConfig,
    now: DateTime<Utc>,
) -> anyhow::Result<BackupReport> {
    let scratch = cfg.scratch();
    let mut locks = Vec::new();
    for dir in cfg.work_folders() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        locks.push(lock_folder(&dir)?);
        // Under the lock nothing of this kind is in use: a killed run left it.
        if let Err(e) = remove_leftovers(&dir) {
            tracing::error!(error = %format!("{e:#}"), "backup: what an interrupted backup left could not be removed");
        }
    }
    // The clear-text dump is staged in the data folder (which holds the database and keys
    // anyway), never in the target, in a folder only the owner can enter.
    let staging = owner_only(tempfile::Builder::new().prefix(STAGING_PREFIX), 0o700)
        .tempdir_in(&cfg.data_dir)
        .with_context(|| {
            format!(
                "cannot create a temporary folder in {}",
                cfg.data_dir.display()
            )
        })?;
    tracing::info!(target = %cfg.target.location(""), "backup: dumping the database");
    let dumped = dump::dump(db, staging.path()).await?;
    let key = match &cfg.recipient {
        Some(_) => {
            let k = local_data_key(&cfg.data_dir)?;
            if k.is_none() {
                tracing::warn!(
                    "no personal-data key here (FERUM_DATA_KEY or data.key): the archive will not carry one"
                );
            }
            k.map(|k| k.to_config_string())
        }
        None => None,
    };
    let files = stored_files(&cfg.files_dir)?;
    let name = archive_name(now, cfg.recipient.is_some());
    let manifest = Manifest {
        format: archive::FORMAT,
        ferum_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        source_backend: backend_name(dumped.backend).to_owned(),
        schema_version: dumped.migrations.iter().map(|m| m.0).max().unwrap_or(0),
        migrations: dumped
            .migrations
            .iter()
            .map(|(version, name)| MigrationRecord {
                version: *version,
                name: name.clone(),
            })
            .collect(),
        data_patches: dumped.data_patches.clone(),
        tables: dumped.tables.iter().cloned().collect(),
        files: files.len() as u64,
        encrypted: cfg.recipient.is_some(),
        parts: Vec::new(),
    };
    tracing::info!(archive = %name, files = files.len(), "backup: writing the archive");
    let recipient = cfg.recipient.clone();
    let signing = cfg.key.clone();
    let tables = dumped.tables.clone();
    let staging_path = staging.path().to_path_buf();
    let mtime = now.timestamp().max(0) as u64;
    let (file, manifest) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let tmp = owner_only(
            tempfile::Builder::new()
                .prefix(PARTIAL_PREFIX)
                .suffix(PARTIAL_SUFFIX),
            0o600,
        )
        .tempfile_in(&scratch)?;
        let out = std::io::BufWriter::new(tmp.reopen()?);
        let mut total = 0;
        for (t, _) in &tables {
            total += std::fs::metadata(staging_path.join(format!("{t}.jsonl")))?.len();
        }
        for (_, path) in &files {
            total += std::fs::metadata(path)?.len();
        }
        let mut w = archive::Writer::new(out, recipient.as_ref(), mtime, Some(total))?;
        for (t, _) in &tables {
            w.append_file(
                &format!("tables/{t}.jsonl"),
                &staging_path.join(format!("{t}.jsonl")),
            )?;
        }
        for (rel, path) in &files {
            w.append_file(&format!("files/{rel}"), path)?;
        }
        if let Some(k) = key {
            w.append(KEY_PART, k.len() as u64, k.as_bytes())?;
        }
        let (out, manifest) = w.finish_signed(manifest, signing.as_ref())?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok((tmp, manifest))
    })
    .await??;
    drop(staging);
    let size = file.as_file().metadata()?.len();
    let target = cfg.target.clone();
    let stored_name = name.clone();
    let location = tokio::task::spawn_blocking(move || target.store(file, &stored_name)).await??;
    tracing::info!(archive = %location, size, "backup: archive stored");
    let (deleted, retention_error) = match apply_retention(cfg, &name, now).await {
        Ok(d) => (d, None),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "backup: retention failed; old archives were kept");
            (Vec::new(), Some(format!("{e:#}")))
        }
    };
    record_success(db, now).await?;
    drop(locks);
    Ok(BackupReport {
        location,
        manifest,
        size,
        deleted,
        retention_error,
    })
}

async fn apply_retention(
    cfg: &BackupConfig,
    keep: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let target = cfg.target.clone();
    let retention = cfg.retention;
    let keep = keep.to_owned();
    tokio::task::spawn_blocking(move || {
        let names = target.list()?;
        let doomed = retention.to_delete(&names, &keep, now);
        for n in &doomed {
            target.delete(n)?;
            tracing::info!(archive = %target.location(n), "backup: retention deleted an old archive");
        }
        Ok(doomed)
    })
    .await?
}

async fn record_success(db: &Db, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let mut q = crate::store::Q::new("INSERT INTO settings (name, value) VALUES (");
    q.bind(LAST_SUCCESS.to_owned())
        .push(", ")
        .bind(now.to_rfc3339_opts(SecondsFormat::Secs, true))
        .push(") ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// When the last backup succeeded, or `None` if never. A database that cannot be read, or a
/// recorded time that is not one, is an error: it must not read as "never backed up".
pub async fn last_success(db: &Db) -> anyhow::Result<Option<DateTime<Utc>>> {
    let mut q = crate::store::Q::new("SELECT value FROM settings WHERE name = ");
    q.bind(LAST_SUCCESS.to_owned());
    let v: Option<(String,)> = q
        .fetch_optional(db.pool())
        .await
        .context("cannot read the time of the last backup from the settings table")?;
    v.map(|(v,)| {
        DateTime::parse_from_rfc3339(&v)
            .map(|t| t.with_timezone(&Utc))
            .with_context(|| format!("the recorded time of the last backup, {v:?}, is not a time"))
    })
    .transpose()
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Refuses an archive whose schema is newer than this binary.
fn check_schema(m: &Manifest) -> anyhow::Result<()> {
    let latest = migrate::latest_version();
    if m.schema_version > latest {
        bail!(
            "archive schema {} is newer than this ferum ({latest}); restore it with a newer ferum; nothing was changed",
            m.schema_version
        );
    }
    for r in &m.migrations {
        if !migrate::MIGRATIONS
            .iter()
            .any(|k| k.version == r.version && k.name == r.name)
        {
            bail!(
                "the archive's migration {} ({}) is unknown to this ferum; nothing was changed",
                r.version,
                r.name
            );
        }
    }
    Ok(())
}

/// What `verify` found.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub encrypted: bool,
    pub size: Option<u64>,
    pub signature: Signature,
    pub audit_entries: u64,
}

impl Verified {
    pub fn describe(&self, location: &str) -> Vec<String> {
        let m = &self.manifest;
        vec![
            format!(
                "archive {location}{}",
                self.size
                    .map(|s| format!(" ({})", human_bytes(s)))
                    .unwrap_or_default()
            ),
            format!(
                "taken {} by ferum {} from {}, schema version {}",
                m.created_at, m.ferum_version, m.source_backend, m.schema_version
            ),
            format!(
                "encrypted: {}{}",
                if self.encrypted { "yes (age)" } else { "no" },
                if m.includes_key() {
                    ", carries the personal-data key"
                } else {
                    ""
                }
            ),
            format!(
                "checked {}: {} ({}), {} — sizes and SHA-256 match the manifest",
                count(m.parts.len() as u64, "part"),
                count(m.tables.len() as u64, "table"),
                count(m.rows(), "row"),
                count(m.files, "file")
            ),
            format!("audit chain intact: {}", count(self.audit_entries, "entry")),
            match self.signature {
                Signature::Checked => "manifest signature: matches FERUM_BACKUP_KEY".to_owned(),
                Signature::NotChecked => {
                    "manifest signature: present, not checked (FERUM_BACKUP_KEY is not set)"
                        .to_owned()
                }
                Signature::Unsigned => {
                    "manifest signature: none (taken without FERUM_BACKUP_KEY)".to_owned()
                }
            },
        ]
    }
}

/// Reads a whole archive and checks it without touching any database. With a backup key,
/// the manifest must be signed with it.
pub async fn verify(
    location: &str,
    identity: Option<&Path>,
    key: Option<&BackupKey>,
) -> anyhow::Result<Verified> {
    let loc = Location::parse(location)?;
    tracing::info!(archive = %location, "verify: reading and checking the archive");
    let identity = identity.map(Path::to_path_buf);
    let key = key.cloned();
    let (opened, size) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let (input, size) = loc.open()?;
        let opened = archive::read_keyed(input, size, identity.as_deref(), key.as_ref(), None)?;
        Ok((opened, size))
    })
    .await??;
    check_schema(&opened.manifest)?;
    Ok(Verified {
        manifest: opened.manifest,
        encrypted: opened.encrypted,
        size,
        signature: opened.signature,
        audit_entries: opened.audit_entries,
    })
}

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Overwrite a database (and files folder) that holds data.
    pub replace: bool,
    /// The age identity file for an encrypted archive.
    pub identity: Option<PathBuf>,
    /// The backup key: the archive's manifest must be signed with it.
    pub key: Option<BackupKey>,
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub target_backend: Backend,
    pub rows: u64,
    pub files: u64,
    pub migrated: migrate::Report,
    pub audit_entries: i64,
    pub key_written: Option<PathBuf>,
}

impl Restored {
    pub fn describe(&self, location: &str) -> Vec<String> {
        let mut lines = vec![format!(
            "restored {} ({}) and {} from {location} (schema version {}, {} → {})",
            count(self.manifest.tables.len() as u64, "table"),
            count(self.rows, "row"),
            count(self.files, "file"),
            self.manifest.schema_version,
            self.manifest.source_backend,
            backend_name(self.target_backend)
        )];
        for m in &self.migrated.applied {
            lines.push(format!("applied migration {m}"));
        }
        for p in &self.migrated.patched {
            lines.push(format!("applied data patch {p}"));
        }
        if let Some(k) = &self.key_written {
            lines.push(format!(
                "wrote the archive's personal-data key to {} (keep it with your backups)",
                k.display()
            ));
        }
        lines.push(format!(
            "audit chain intact: {} entries",
            self.audit_entries
        ));
        lines
    }
}

/// Where the personal-data key for a restore comes from.
enum KeySource {
    Env,
    File(PathBuf),
    Archive,
}

/// Restores `location` into the database at `url` and the files folder `files_dir`.
///
/// Everything that can be checked without the target is checked first (the whole archive
/// with its audit chain and, with `opts.key`, its MAC; schema version, personal-data key);
/// then the target must be empty unless `opts.replace`. The rows load in one transaction, so
/// a failure leaves the target as it was; the files are swapped in only after the commit.
pub async fn restore(
    url: &DatabaseUrl,
    data_dir: &Path,
    files_dir: &Path,
    location: &str,
    opts: &RestoreOptions,
    now: DateTime<Utc>,
) -> anyhow::Result<Restored> {
    let loc = Location::parse(location)?;
    let identity = opts.identity.clone();
    let key = opts.key.clone();
    let scratch = files_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    // The archive's tables are unpacked here in clear text: owner only.
    let staging = owner_only(tempfile::Builder::new().prefix(".ferum-restore-"), 0o700)
        .tempdir_in(&scratch)
        .with_context(|| format!("cannot create a temporary folder in {}", scratch.display()))?;
    let dir = staging.path().to_path_buf();
    tracing::info!(archive = %location, "restore: reading and checking the archive");
    let opened = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let (input, size) = loc.open()?;
        archive::read_keyed(input, size, identity.as_deref(), key.as_ref(), Some(&dir))
    })
    .await??;
    let manifest = opened.manifest;
    check_schema(&manifest)?;
    // The personal-data key must open the archive's canary before anything changes.
    let canary = read_canary(&staging.path().join("tables/settings.jsonl"))?;
    let (keys, source) = match local_data_key(data_dir)? {
        Some(k) => {
            let src = if std::env::var("FERUM_DATA_KEY").is_ok_and(|v| !v.trim().is_empty()) {
                KeySource::Env
            } else {
                KeySource::File(data_dir.join(crate::crypto::KEY_FILE))
            };
            (Some(k), src)
        }
        None => match &opened.data_key {
            Some(k) => (
                Some(
                    crate::crypto::DataKeys::parse(k)
                        .context("the archive's personal-data key is unreadable")?,
                ),
                KeySource::Archive,
            ),
            None => (None, KeySource::Archive),
        },
    };
    if let Some(c) = &canary {
        let fits = keys
            .as_ref()
            .is_some_and(|k| crate::store::pii::canary_fits(k, c).is_ok());
        if !fits {
            bail!(
                "the personal-data key here does not match the archive's; set FERUM_DATA_KEY to the key of the site \
                 the backup came from{}; nothing was changed",
                match source {
                    KeySource::Env => " (FERUM_DATA_KEY is set to another key)".to_owned(),
                    KeySource::File(p) => format!(" (or move {} away)", p.display()),
                    KeySource::Archive => " (no key is configured here)".to_owned(),
                }
            );
        }
    }
    // Files folder: must be empty unless replacing.
    let files_held = dir_has_entries(files_dir)?;
    if files_held && !opts.replace {
        bail!(
            "the files folder {} is not empty; --replace would overwrite it with the archive's files; nothing was changed",
            files_dir.display()
        );
    }
    tracing::info!(database = %url, rows = manifest.rows(), "restore: archive checked; loading the database");
    let db = Db::connect(url, 2).await?;
    let result = restore_into(&db, staging.path(), &manifest, opts, url, now).await;
    let (rows, migrated, audit_entries) = match result {
        Ok(r) => r,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    db.close().await;
    // The database is committed: now the files and the key.
    let new_files = staging.path().join("files");
    if !new_files.exists() {
        std::fs::create_dir_all(&new_files)?;
    }
    swap_in(&new_files, files_dir)?;
    tracing::info!(files = manifest.files, folder = %files_dir.display(), "restore: database committed, files in place");
    let key_written = match (source, &opened.data_key) {
        (KeySource::Archive, Some(k)) => {
            let path = data_dir.join(crate::crypto::KEY_FILE);
            std::fs::create_dir_all(data_dir)?;
            crate::crypto::write_private(&path, &format!("{}\n", k.trim()))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        }
        _ => None,
    };
    Ok(Restored {
        files: manifest.files,
        manifest,
        target_backend: url.backend(),
        rows,
        migrated,
        audit_entries,
        key_written,
    })
}

async fn restore_into(
    db: &Db,
    staging: &Path,
    manifest: &Manifest,
    opts: &RestoreOptions,
    url: &DatabaseUrl,
    now: DateTime<Utc>,
) -> anyhow::Result<(u64, migrate::Report, i64)> {
    let held = dump::rows_held(db).await?;
    if !held.is_empty() && !opts.replace {
        let list: Vec<String> = held
            .iter()
            .take(5)
            .map(|(t, n)| format!("{t}: {}", thousands(*n as u64)))
            .collect();
        bail!(
            "the database {url} is not empty ({}{}); --replace would overwrite it with the archive; nothing was changed",
            list.join(", "),
            if held.len() > 5 { ", …" } else { "" }
        );
    }
    let versions: Vec<i64> = manifest.migrations.iter().map(|m| m.version).collect();
    let tables: Vec<(String, u64)> = manifest
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    let loaded = async {
        let mut tx = db.begin().await?;
        let rows = dump::load(&mut tx, &staging.join("tables"), &tables, &versions).await?;
        tx.commit().await.context("committing the restored rows")?;
        anyhow::Ok(rows)
    };
    // Dropping the transaction on an error rolls it back, drops and loads alike.
    let rows = loaded
        .await
        .context("the restore failed and was rolled back; nothing was changed")?;
    let migrated = migrate::run(db, now).await?;
    let audit = crate::store::audit::verify(db)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map_err(|b| anyhow::anyhow!("restored, but the audit chain does not verify: {b}"))?;
    Ok((rows, migrated, audit))
}

/// The canary value among the archive's `settings` rows.
fn read_canary(settings: &Path) -> anyhow::Result<Option<String>> {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(settings) else {
        return Ok(None);
    };
    for line in std::io::BufReader::new(f).lines() {
        let row: serde_json::Value = serde_json::from_str(&line?)?;
        if row["name"] == crate::store::pii::CANARY_SETTING {
            return Ok(row["value"].as_str().map(str::to_owned));
        }
    }
    Ok(None)
}

fn dir_has_entries(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// Replaces `dest` with `new` by renames (same file system), removing the old contents.
fn swap_in(new: &Path, dest: &Path) -> anyhow::Result<()> {
    let old = dest.with_file_name(format!(
        ".{}.old-{}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("files"),
        std::process::id()
    ));
    let had = dest.exists();
    if had {
        std::fs::rename(dest, &old)
            .with_context(|| format!("cannot move {} aside", dest.display()))?;
    }
    if let Err(e) = std::fs::rename(new, dest) {
        if had {
            let _ = std::fs::rename(&old, dest);
        }
        return Err(e)
            .with_context(|| format!("cannot move the restored files into {}", dest.display()));
    }
    if had {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove the old files in {}", old.display()))?;
    }
    Ok(())
}

/// Starts the daily backup of `serve` when `FERUM_BACKUP_AT` is set: it sleeps until the next
/// run, takes a backup, logs the outcome, and repeats.
pub fn spawn_schedule(
    db: Db,
    cfg: BackupConfig,
    clock: Clock,
    holder: String,
) -> Option<tokio::task::JoinHandle<()>> {
    let at = cfg.at?;
    tracing::info!(at = %at, target = %cfg.target.location(""), "daily backup scheduled");
    Some(tokio::spawn(async move {
        loop {
            let now = clock.now();
            let next = next_run(now, at);
            tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
            match scheduled_run(&db, &cfg, clock.now(), &holder).await {
                Ok(Some(r)) => tracing::info!(
                    archive = %r.location,
                    rows = r.manifest.rows(),
                    files = r.manifest.files,
                    size = r.size,
                    deleted = r.deleted.len(),
                    "scheduled backup written to {}",
                    r.location
                ),
                Ok(None) => tracing::info!("the daily backup runs on another instance today"),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "scheduled backup failed"),
            }
        }
    }))
}

/// The lease of the daily backup: with several instances scheduled at the same time, the one
/// that takes it backs up; the others skip the day.
pub const SCHEDULE_JOB: &str = "daily_backup";

/// One scheduled backup by `holder`, if it gets the day's lease (`None` when another
/// instance holds it).
pub async fn scheduled_run(
    db: &Db,
    cfg: &BackupConfig,
    now: DateTime<Utc>,
    holder: &str,
) -> anyhow::Result<Option<BackupReport>> {
    let until = now + chrono::Duration::hours(6);
    if !crate::store::leases::take(db, SCHEDULE_JOB, holder, now, until).await? {
        return Ok(None);
    }
    backup(db, cfg, now).await.map(Some)
}

/// `ferum backup [--to TARGET] [--encrypt-to RECIPIENT]`.
#[derive(clap::Args, Debug, Default)]
pub struct BackupArgs {
    /// A folder or s3://bucket/prefix (default: FERUM_BACKUP_TARGET, else <data dir>/backups).
    #[arg(long, value_name = "TARGET")]
    pub to: Option<String>,
    /// Encrypt the archive to this age public key (default: FERUM_BACKUP_AGE_RECIPIENT).
    #[arg(long, value_name = "AGE_RECIPIENT")]
    pub encrypt_to: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum BackupCommand {
    /// Check an archive's manifest and checksums without touching the database.
    Verify {
        /// A path or s3://bucket/key.
        archive: String,
        /// The age identity file of an encrypted archive (default: FERUM_BACKUP_AGE_IDENTITY).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
}

/// `ferum restore ARCHIVE [--replace] [--identity FILE]`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// A path or s3://bucket/key.
    pub archive: String,
    /// Overwrite a database and files folder that already hold data.
    #[arg(long)]
    pub replace: bool,
    /// The age identity file of an encrypted archive (default: FERUM_BACKUP_AGE_IDENTITY).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// Runs `ferum backup …`.
pub async fn run_backup(
    config: &Config,
    command: Option<BackupCommand>,
    args: BackupArgs,
) -> anyhow::Result<()> {
    match command {
        Some(BackupCommand::Verify { archive, identity }) => {
            let identity = identity.or_else(|| var("FERUM_BACKUP_AGE_IDENTITY").map(PathBuf::from));
            let key = key_from_env()?;
            let v = verify(&archive, identity.as_deref(), key.as_ref()).await?;
            for line in v.describe(&archive) {
                println!("{line}");
            }
            println!("archive OK");
            Ok(())
        }
        None => {
            let mut cfg = BackupConfig::from_env(config)?;
            if let Some(t) = &args.to {
                cfg.target = Target::parse(t).context("--to")?;
            }
            if let Some(r) = &args.encrypt_to {
                cfg.recipient = Some(parse_recipient(r, "--encrypt-to")?);
            }
            if let Some(path) = config.database_url.sqlite_path()
                && !path.exists()
            {
                bail!(
                    "there is no database at {}: nothing to back up",
                    path.display()
                );
            }
            let db = Db::connect(&config.database_url, 2).await?;
            let report = backup(&db, &cfg, crate::clock::system_now()).await;
            db.close().await;
            let report = report?;
            println!("{}", report.summary());
            for d in &report.deleted {
                println!("retention: deleted {}", cfg.target.location(d));
            }
            if let Some(e) = &report.retention_error {
                println!("retention: not applied ({e}); old archives were kept");
            }
            println!("{}", report.location);
            Ok(())
        }
    }
}

/// Runs `ferum restore …`.
pub async fn run_restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    let opts = RestoreOptions {
        replace: args.replace,
        identity: args
            .identity
            .or_else(|| var("FERUM_BACKUP_AGE_IDENTITY").map(PathBuf::from)),
        key: key_from_env()?,
    };
    let r = restore(
        &config.database_url,
        &config.data_dir,
        &config.files_dir,
        &args.archive,
        &opts,
        crate::clock::system_now(),
    )
    .await?;
    for line in r.describe(&args.archive) {
        println!("{line}");
    }
    Ok(())
}
