//! Operator commands that look without touching: `ferum check` and `ferum healthcheck`.

use crate::config::Config;
use crate::store::{Backend, Db, migrate, redact};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// One line of the `ferum check` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub topic: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {:<13} {}", self.topic, self.detail)
    }
}

fn ok(topic: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        topic,
        detail: detail.into(),
    }
}

fn fail(topic: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        ok: false,
        topic,
        detail: detail.into(),
    }
}

/// `ferum check`: prints a line per finding and fails when any finding is a problem.
pub async fn check() -> ExitCode {
    let findings = findings().await;
    for f in &findings {
        println!("{f}");
    }
    let problems = findings.iter().filter(|f| !f.ok).count();
    if problems == 0 {
        println!("everything looks right");
        ExitCode::SUCCESS
    } else {
        println!("{problems} problem(s) found");
        ExitCode::FAILURE
    }
}

/// Every finding, reading the environment and looking at the database and folders without
/// creating or changing anything.
pub async fn findings() -> Vec<Finding> {
    let mut out = Vec::new();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            out.push(fail("configuration", format!("{e:#}")));
            return out;
        }
    };
    out.push(ok("configuration", "every variable parses"));
    for (name, value) in [
        ("FERUM_BIND", std::env::var("FERUM_BIND").ok()),
        ("FERUM_METRICS_BIND", config.metrics_bind.clone()),
    ] {
        if let Some(v) = value.filter(|v| !v.trim().is_empty())
            && v.trim().parse::<std::net::SocketAddr>().is_err()
        {
            out.push(fail(
                "configuration",
                format!("{name} must be an address such as 0.0.0.0:8080, got {v:?}"),
            ));
        }
    }
    if let Some(dsn) = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        match dsn.trim().parse::<sentry::types::Dsn>() {
            Ok(d) => out.push(ok("sentry", format!("errors are reported to {}", d.host()))),
            Err(e) => out.push(fail(
                "sentry",
                format!("SENTRY_DSN is not a valid DSN: {e}"),
            )),
        }
    }
    out.push(writable("data folder", &config.data_dir));
    out.push(writable("files folder", &config.files_dir));
    out.extend(backups(&config).await);
    out.extend(secrets(&config));
    out.extend(database(&config).await);
    if let Some(url) = &config.redis_url {
        let shown = redact(url);
        match tokio::time::timeout(
            Duration::from_secs(5),
            crate::throttle::Limiter::connect(Some(url)),
        )
        .await
        {
            Ok(Ok(_)) => out.push(ok("redis", format!("{shown} answers"))),
            Ok(Err(e)) => out.push(fail("redis", format!("{shown}: {e:#}"))),
            Err(_) => out.push(fail("redis", format!("{shown} did not answer in 5 s"))),
        }
    }
    out
}

/// Whether a folder exists and takes new files, or could be created.
fn writable(topic: &'static str, dir: &Path) -> Finding {
    if dir.is_dir() {
        let probe = dir.join(format!(".ferum-check-{}", std::process::id()));
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                ok(topic, format!("{} is writable", dir.display()))
            }
            Err(e) => fail(topic, format!("{} is not writable: {e}", dir.display())),
        }
    } else if dir.exists() {
        fail(topic, format!("{} is not a folder", dir.display()))
    } else {
        // The nearest existing ancestor must take a new folder.
        let mut parent = dir.parent();
        while let Some(p) = parent {
            if p.as_os_str().is_empty() || p.is_dir() {
                let p = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                };
                let readonly = std::fs::metadata(p)
                    .map(|m| m.permissions().readonly())
                    .unwrap_or(true);
                return if readonly {
                    fail(
                        topic,
                        format!(
                            "{} is missing and {} is read-only",
                            dir.display(),
                            p.display()
                        ),
                    )
                } else {
                    ok(
                        topic,
                        format!("{} is missing; ferum site init creates it", dir.display()),
                    )
                };
            }
            parent = p.parent();
        }
        fail(topic, format!("{} cannot be created", dir.display()))
    }
}

/// The backup settings, whether the target takes archives (a folder) or answers (S3), and
/// what interrupted backups left behind.
async fn backups(config: &Config) -> Vec<Finding> {
    use crate::backup::BackupConfig;
    let cfg = match BackupConfig::from_env(config) {
        Ok(c) => c,
        Err(e) => return vec![fail("backups", format!("{e:#}"))],
    };
    let mut out = vec![backup_target(&cfg).await];
    out.extend(backup_leftovers(&cfg));
    out
}

/// Staging folders and partial archives of killed backup runs, in the folders a backup writes
/// to (a folder where a backup is running now is left out: its files are in use).
fn backup_leftovers(cfg: &crate::backup::BackupConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut found = Vec::new();
    for dir in cfg.work_folders() {
        if crate::backup::running_in(&dir) {
            out.push(ok(
                "backups",
                format!("a backup is running in {}", dir.display()),
            ));
            continue;
        }
        match crate::backup::leftovers(&dir) {
            Ok(names) => found.extend(names.iter().map(|n| dir.join(n).display().to_string())),
            Err(e) => out.push(fail("backups", format!("{e:#}"))),
        }
    }
    if !found.is_empty() {
        out.push(fail(
            "backups",
            format!(
                "left by an interrupted backup (table dumps in clear text or partial archives): {}; \
                 the next `ferum backup` removes them, or delete them",
                found.join(", ")
            ),
        ));
    }
    out
}

async fn backup_target(cfg: &crate::backup::BackupConfig) -> Finding {
    use crate::backup::target::Target;
    let schedule = match &cfg.at {
        Some(at) => format!("daily at {at} UTC"),
        None => "no schedule (FERUM_BACKUP_AT unset)".to_owned(),
    };
    match &cfg.target {
        Target::Local(dir) => {
            let f = writable("backups", dir);
            Finding {
                detail: format!("{}; {schedule}", f.detail),
                ..f
            }
        }
        Target::S3(_) => {
            let target = cfg.target.clone();
            let shown = target.location("");
            match tokio::task::spawn_blocking(move || target.list()).await {
                Ok(Ok(list)) => ok(
                    "backups",
                    format!("{shown} answers ({} archive(s)); {schedule}", list.len()),
                ),
                Ok(Err(e)) => fail("backups", format!("{shown}: {e:#}")),
                Err(e) => fail("backups", format!("{shown}: {e}")),
            }
        }
    }
}

/// The token-signing secret and the personal-data key, without generating either.
fn secrets(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    match std::env::var("FERUM_TOKEN_SECRET")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(s) if s.len() < 32 => out.push(fail(
            "token secret",
            "FERUM_TOKEN_SECRET must be at least 32 characters",
        )),
        Some(_) => out.push(ok("token secret", "from FERUM_TOKEN_SECRET")),
        None => {
            let path = config.data_dir.join("token.key");
            if path.exists() {
                out.push(ok("token secret", format!("from {}", path.display())));
            } else {
                out.push(ok(
                    "token secret",
                    format!("{} is generated on first start", path.display()),
                ));
            }
        }
    }
    let env_key = std::env::var("FERUM_DATA_KEY").ok();
    match crate::crypto::DataKeys::load(&config.data_dir, env_key.as_deref()) {
        Ok(Some(_)) => out.push(ok("data key", "loaded")),
        Ok(None) => out.push(ok(
            "data key",
            format!(
                "{} is generated on first start",
                config.data_dir.join(crate::crypto::KEY_FILE).display()
            ),
        )),
        Err(e) => out.push(fail("data key", format!("{e:#}"))),
    }
    out
}

/// Reachability, schema state and the data key's fit, without creating a database.
async fn database(config: &Config) -> Vec<Finding> {
    let url = &config.database_url;
    if url.backend() == Backend::Sqlite
        && let Some(path) = url.sqlite_path()
        && !path.exists()
    {
        return vec![fail(
            "database",
            format!(
                "{} does not exist; run `ferum site init` to create it",
                path.display()
            ),
        )];
    }
    let db = match tokio::time::timeout(Duration::from_secs(10), Db::connect(url, 1)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return vec![fail("database", format!("{e:#}"))],
        Err(_) => return vec![fail("database", format!("{url} did not answer in 10 s"))],
    };
    let mut out = vec![ok("database", format!("{url} answers"))];
    let readiness = migrate::readiness(&db).await;
    let ready = matches!(readiness, Ok(None));
    match readiness {
        Ok(None) => out.push(ok(
            "schema",
            format!("version {}, nothing pending", migrate::latest_version()),
        )),
        Ok(Some(why)) => out.push(fail("schema", format!("{why}; run `ferum migrate`"))),
        Err(e) => out.push(fail("schema", format!("{e:#}"))),
    }
    if ready {
        out.push(last_backup(&db).await);
    }
    let env_key = std::env::var("FERUM_DATA_KEY").ok();
    if let Ok(Some(keys)) = crate::crypto::DataKeys::load(&config.data_dir, env_key.as_deref())
        && ready
    {
        match crate::store::pii::verify_key(&db, &keys).await {
            Ok(_) => out.push(ok("data key", "decrypts this database's personal data")),
            Err(e) => out.push(fail("data key", format!("{e:#}"))),
        }
    }
    db.close().await;
    out
}

/// When the last backup of this database succeeded; a history that cannot be read is a
/// problem, not "never".
async fn last_backup(db: &Db) -> Finding {
    match crate::backup::last_success(db).await {
        Ok(Some(t)) => ok(
            "last backup",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        Ok(None) => ok(
            "last backup",
            "never: no backup of this database has succeeded",
        ),
        Err(e) => fail(
            "last backup",
            format!("could not read the backup history: {e:#}"),
        ),
    }
}

/// `ferum healthcheck`: a GET to `url` (by default `/readyz` on the port of `FERUM_BIND`).
pub async fn healthcheck(url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(u) => u,
        None => {
            let bind = std::env::var("FERUM_BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
            let port = bind
                .rsplit_once(':')
                .map(|(_, p)| p.to_owned())
                .context("FERUM_BIND has no port")?;
            format!("http://127.0.0.1:{port}/readyz")
        }
    };
    let target = url.clone();
    let result = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .get(&target)
            .call()
            .map(|mut r| (r.status().as_u16(), r.body_mut().read_to_string()))
    })
    .await?;
    match result {
        Ok((200, _)) => {
            println!("{url}: 200");
            Ok(ExitCode::SUCCESS)
        }
        Ok((status, body)) => {
            let body = body.unwrap_or_default();
            println!("{url}: {status} {}", body.trim());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!("{url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
