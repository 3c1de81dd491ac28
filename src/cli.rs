//! The `ferum` command line: wiring of configuration, storage and the web server.

use crate::auth::TokenKeys;
use crate::clock::{Clock, system_now};
use crate::config::Config;
use crate::domain::access::Role;
use crate::domain::ids::CustomerId;
use crate::store::{Db, migrate, users};
use crate::web::{AppState, router};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::io::Read;

#[derive(Parser, Debug)]
#[command(
    name = "ferum",
    version,
    about = "Service management for fire-safety maintenance companies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web API (creates and migrates the database on first start).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "FERUM_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
    },
    /// Apply pending schema migrations and data patches.
    Migrate,
    /// Set up a site: create and migrate the database, keys, folders and the first
    /// administrator. Safe to run again: it creates only what is missing.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Report configuration problems, database reachability, pending migrations and storage
    /// writability; exit status 1 when something is wrong. Changes nothing.
    Check,
    /// Ask a running server whether it is ready (for container health checks): exit status 0
    /// only when the answer is 200.
    Healthcheck {
        /// What to ask; by default `/readyz` on the port of `FERUM_BIND`.
        #[arg(long)]
        url: Option<String>,
    },
    /// Deliver queued events (notifications by e-mail and Telegram) until stopped. `serve`
    /// runs one inside itself unless `FERUM_WORKER=off`.
    Worker,
    /// Fill an empty, migrated database with benchmark data (see BENCHMARKS.md).
    #[command(hide = true)]
    BenchSeed {
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
    },
    /// Take a backup (database, stored files, manifest), or check one with `backup verify`.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        command: Option<crate::backup::BackupCommand>,
        #[command(flatten)]
        args: crate::backup::BackupArgs,
    },
    /// Restore a backup into an empty database of either kind (or replace one with --replace).
    Restore(crate::backup::RestoreArgs),
    /// Check the audit log's hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the personal-data encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Create and migrate the database, keys and folders, and the first administrator.
    Init,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Add a new current key and re-encrypt every value under it (old keys stay listed).
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the chain and name the first broken entry (exit status 1 if any).
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// A role code (admin, director, accountant, department_head, project_manager,
        /// office_manager, engineer, client); repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The customer of a client user.
        #[arg(long)]
        customer: Option<i64>,
    },
}

/// Runs a command; the exit status is failure when a check found problems.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cli.command {
        Command::Check => return Ok(crate::ops::check().await),
        Command::Healthcheck { url } => return crate::ops::healthcheck(url).await,
        _ => {}
    }
    let config = Config::from_env()?;
    run_with(cli.command, config).await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_with(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Check | Command::Healthcheck { .. } => unreachable!("handled by run"),
        Command::Serve { bind } => serve(&config, &bind).await,
        Command::Worker => worker(&config).await,
        Command::Site {
            command: SiteCommand::Init,
        } => site_init(&config).await,
        Command::Backup { command, args } => {
            crate::backup::run_backup(&config, command, args).await
        }
        Command::Restore(args) => crate::backup::run_restore(&config, args).await,
        Command::Migrate => {
            let db = Db::connect(&config.database_url, 2).await?;
            let report = migrate::run(&db, system_now()).await?;
            print_migrations(&report);
            db.close().await;
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let db = open(&config).await?;
            let keys = db
                .keys()
                .map_err(|e| anyhow::anyhow!(describe(e)))?
                .rotated();
            if std::env::var("FERUM_DATA_KEY").is_ok_and(|v| !v.trim().is_empty()) {
                bail!(
                    "the key comes from FERUM_DATA_KEY, which ferum cannot change: set FERUM_DATA_KEY to the value \
                     below (it keeps the old keys, so existing data stays readable); nothing was changed.\n{}",
                    keys.to_config_string()
                );
            }
            let path = config.data_dir.join(crate::crypto::KEY_FILE);
            let tmp = path.with_extension("key.new");
            {
                use std::io::Write;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp)?;
                f.write_all(format!("{}\n", keys.to_config_string()).as_bytes())?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            let n = crate::store::pii::reencrypt(&db, &keys).await?;
            println!(
                "new current key {}; re-encrypted {n} values; {} keeps every key",
                keys.current_id(),
                path.display()
            );
            db.close().await;
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let db = open(&config).await?;
            let result = crate::store::audit::verify(&db)
                .await
                .map_err(|e| anyhow::anyhow!(describe(e)))?;
            db.close().await;
            match result {
                Ok(n) => {
                    println!("audit chain intact: {n} entries");
                    Ok(())
                }
                Err(b) => bail!("audit chain broken: {b}"),
            }
        }
        Command::BenchSeed {
            customers,
            requests,
        } => {
            let db = Db::connect(&config.database_url, 2).await?;
            let summary = crate::seed::seed(&db, customers, requests, system_now()).await?;
            println!("{summary}");
            db.close().await;
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    email,
                    name,
                    roles,
                    customer,
                },
        } => {
            let db = open(&config).await?;
            let mut parsed = Vec::new();
            for r in &roles {
                parsed.push(Role::parse(r).with_context(|| format!("unknown role {r:?}"))?);
            }
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let input = users::NewUser {
                email,
                name,
                phone: String::new(),
                roles: parsed,
                customer_id: customer.map(CustomerId),
                password,
            };
            let row = create_user(&db, input).await?;
            println!(
                "created user {} ({}) with id {}",
                row.email, row.roles, row.id
            );
            db.close().await;
            Ok(())
        }
    }
}

fn print_migrations(report: &migrate::Report) {
    if report.is_noop() {
        println!(
            "database is up to date (schema version {}); nothing to do",
            migrate::latest_version()
        );
        return;
    }
    for m in &report.applied {
        println!("applied migration {m}");
    }
    for p in &report.patched {
        println!("applied data patch {p}");
    }
}

/// Opens the database, refusing one whose schema is newer than this binary, and migrates it.
pub(crate) async fn open(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, config.db_max_connections).await?;
    let status = migrate::status(&db).await?;
    migrate::ensure_not_newer(&status)?;
    let report = migrate::run(&db, system_now()).await?;
    if !report.is_noop() {
        print_migrations(&report);
    }
    let env_key = std::env::var("FERUM_DATA_KEY").ok();
    let (keys, created) =
        crate::crypto::DataKeys::load_or_create(&config.data_dir, env_key.as_deref())?;
    if created {
        println!(
            "Generated the personal-data encryption key {}: back it up with the database; without it \
             contact e-mails and phones cannot be read.",
            config.data_dir.join(crate::crypto::KEY_FILE).display()
        );
    }
    crate::store::pii::startup(&db, &keys).await?;
    Ok(db.with_keys(keys))
}

/// Adds a user on the command line; audited with the command line as the actor.
async fn create_user(db: &Db, input: users::NewUser) -> anyhow::Result<users::UserRow> {
    users::create_from_command_line(db, input, system_now())
        .await
        .map_err(|e| anyhow::anyhow!(describe(e)))
}

fn describe(e: crate::error::Error) -> String {
    match e {
        crate::error::Error::Validation(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// `ferum site init`: everything a new site needs, creating only what is missing.
async fn site_init(config: &Config) -> anyhow::Result<()> {
    let db = open(config).await?;
    config.token_secret()?;
    for dir in [&config.data_dir, &config.files_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let created = bootstrap_admin(&db, config).await?;
    let users = users::count(&db).await?;
    db.close().await;
    println!(
        "site ready: database {} at schema version {}, files in {}, {users} user(s){}",
        config.database_url,
        migrate::latest_version(),
        config.files_dir.display(),
        if created {
            ""
        } else {
            "; the first administrator already existed, nothing to create"
        }
    );
    Ok(())
}

/// Creates the first administrator when there are no users at all; says whether it did.
async fn bootstrap_admin(db: &Db, config: &Config) -> anyhow::Result<bool> {
    if users::count(db).await? > 0 {
        return Ok(false);
    }
    let email = config
        .admin_email
        .clone()
        .unwrap_or_else(|| "admin@ferum.local".into());
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.clone(), false),
        None => (crate::auth::generate_password(), true),
    };
    let input = users::NewUser {
        email,
        name: "Administrator".into(),
        phone: String::new(),
        roles: vec![Role::Admin],
        customer_id: None,
        password: password.clone(),
    };
    let row = create_user(db, input)
        .await
        .context("creating the first administrator")?;
    if generated {
        println!(
            "Created the first administrator {} with the generated password:\n\n    {}\n\n\
             It is shown only this once: sign in and change it.",
            row.email, password
        );
    } else {
        println!(
            "Created the first administrator {} from FERUM_ADMIN_EMAIL / FERUM_ADMIN_PASSWORD.",
            row.email
        );
    }
    Ok(true)
}

async fn serve(config: &Config, bind: &str) -> anyhow::Result<()> {
    let db = open(config).await?;
    bootstrap_admin(&db, config).await?;
    let keys = TokenKeys::new(&config.token_secret()?, config.token_ttl);
    let state = AppState {
        db: db.clone(),
        keys,
        clock: Clock::System,
        sla: config.sla,
        security: config.security.clone(),
        limiter: crate::throttle::Limiter::connect(config.redis_url.as_deref())
            .await
            .context("connecting to REDIS_URL for rate limits")?,
        limits: config.limits.clone(),
        metrics: Default::default(),
        metrics_token: config.metrics_token.as_deref().map(Into::into),
    };
    if let Some(metrics_bind) = &config.metrics_bind {
        let listener = tokio::net::TcpListener::bind(metrics_bind)
            .await
            .with_context(|| format!("cannot listen on FERUM_METRICS_BIND {metrics_bind}"))?;
        println!("Metrics are at http://{}/metrics", listener.local_addr()?);
        let metrics = crate::web::metrics::router(state.clone());
        let limits = config.server;
        tokio::spawn(async move {
            let forever = std::future::pending::<()>();
            if let Err(e) = crate::web::server::serve(listener, metrics, limits, forever).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    crate::backup::spawn_schedule(
        db.clone(),
        crate::backup::BackupConfig::from_env(config)?,
        Clock::System,
        crate::jobs::worker::Worker::process_id(),
    );
    let app = router(state, &config.web());
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    if addr.port() == 0 {
        bail!("could not bind {bind}");
    }
    println!(
        "Ferum is listening on http://{addr} (database: {})",
        config.database_url
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = if config.worker.enabled {
        Some(tokio::spawn(new_worker(config, db.clone())?.run(stopped)))
    } else {
        None
    };
    let signalled = async move {
        shutdown().await;
        let _ = stop.send(true);
    };
    crate::web::server::serve(listener, app, config.server, signalled).await?;
    if let Some(w) = worker {
        // The worker finishes the message in hand; a stuck send does not hold the exit.
        let _ = tokio::time::timeout(config.server.shutdown_grace, w).await;
    }
    // Requests still running past the grace period hold connections; do not wait for them.
    if tokio::time::timeout(std::time::Duration::from_secs(2), db.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still busy at exit; leaving without them");
    }
    Ok(())
}

/// The worker of this process, configured.
fn new_worker(config: &Config, db: Db) -> anyhow::Result<crate::jobs::worker::Worker> {
    let notifier = crate::notify::Notifier::from_config(&config.notify)?;
    let channels = crate::notify::Channel::ALL
        .into_iter()
        .filter(|c| notifier.is_configured(*c))
        .collect();
    Ok(crate::jobs::worker::Worker {
        composer: crate::jobs::notify::Composer {
            db: db.clone(),
            public_url: config.public_url.clone(),
            tz: config.timezone,
            channels,
        },
        db,
        notifier: std::sync::Arc::new(notifier),
        clock: Clock::System,
        id: crate::jobs::worker::Worker::process_id(),
        config: config.worker.config,
    })
}

/// `ferum worker`: delivers until SIGTERM or Ctrl-C, then finishes what it holds.
async fn worker(config: &Config) -> anyhow::Result<()> {
    let db = open(config).await?;
    let w = new_worker(config, db.clone())?;
    println!(
        "Ferum worker {} is delivering events (database: {})",
        w.id, config.database_url
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(w.run(stopped));
    shutdown().await;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(config.server.shutdown_grace, running).await;
    db.close().await;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
