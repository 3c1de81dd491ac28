//! Configuration from the environment, read once at start-up and passed down.

use crate::domain::request::SlaPolicy;
use crate::store::DatabaseUrl;
use anyhow::{Context, bail};
use chrono::Duration;
use std::path::PathBuf;

/// Every setting the service reads. See `.env.example` (and the README) for the variables.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
    pub token_ttl: Duration,
    pub sla: SlaPolicy,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    /// Origins allowed to call the API from browsers (`FERUM_CORS_ORIGINS`, comma-separated).
    pub cors_origins: Vec<String>,
    /// Sign-in policy: roles that need a second factor, refresh-token lifetime.
    pub security: crate::web::Security,
    /// Rate limits, and the Redis that shares them between instances (`REDIS_URL`).
    pub limits: crate::web::limits::Limits,
    pub redis_url: Option<String>,
    /// The address users reach the service at (`FERUM_PUBLIC_URL`); `https://` turns on HSTS.
    pub public_url: Option<String>,
    /// Where stored files (photos, documents) live (`FERUM_FILES_DIR`).
    pub files_dir: PathBuf,
    /// A separate listener for `/metrics` (`FERUM_METRICS_BIND`), kept off the public port.
    pub metrics_bind: Option<String>,
    /// A bearer token that opens `/metrics` on the main listener (`FERUM_METRICS_TOKEN`).
    pub metrics_token: Option<String>,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The company's time zone, in which pages show times (`FERUM_TIMEZONE`).
    pub timezone: chrono_tz::Tz,
    /// Slow-client timeouts, the connection cap and the shutdown grace period.
    pub server: crate::web::server::ServerLimits,
    /// Outbound e-mail (`FERUM_SMTP_*`, `FERUM_MAIL_FROM`) and Telegram (`FERUM_TELEGRAM_*`).
    pub notify: crate::notify::NotifyConfig,
    /// Whether `serve` runs the worker, and how it paces itself.
    pub worker: WorkerSettings,
}

/// The worker inside `serve` (`FERUM_WORKER`) and its pacing.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub enabled: bool,
    pub config: crate::jobs::worker::WorkerConfig,
}

/// A setting that must stay out of logs and messages: `Debug` shows `***`, and there is no
/// `Display`. Read it with [`Secret::expose`] only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name} must be a whole number, got {v:?}")),
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        let data_dir = PathBuf::from(var("FERUM_DATA_DIR").unwrap_or_else(|| "data".into()));
        let default_url = format!("sqlite://{}", data_dir.join("ferum.db").display());
        let database_url = DatabaseUrl::parse(&var("DATABASE_URL").unwrap_or(default_url))?;
        let minutes = |name: &str, default: i64| -> anyhow::Result<Duration> {
            let m: i64 = number(name, default)?;
            if m <= 0 {
                bail!("{name} must be positive");
            }
            Ok(Duration::minutes(m))
        };
        let sla = SlaPolicy {
            maintenance_assign: minutes("FERUM_SLA_MAINTENANCE_ASSIGN_MINUTES", 180)?,
            maintenance_close: minutes("FERUM_SLA_MAINTENANCE_CLOSE_MINUTES", 72 * 60)?,
            emergency_assign: minutes("FERUM_SLA_EMERGENCY_ASSIGN_MINUTES", 15)?,
            emergency_close: minutes("FERUM_SLA_EMERGENCY_CLOSE_MINUTES", 120)?,
        };
        let default_conns = match database_url.backend() {
            crate::store::Backend::Sqlite => 8,
            crate::store::Backend::Postgres => 16,
        };
        let metrics_token = var("FERUM_METRICS_TOKEN");
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            bail!("FERUM_METRICS_TOKEN must be at least 16 characters");
        }
        let public_host = var("FERUM_PUBLIC_URL")
            .and_then(|u| url::Url::parse(u.trim()).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        Ok(Config {
            database_url,
            files_dir: var("FERUM_FILES_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("files")),
            metrics_bind: var("FERUM_METRICS_BIND"),
            timezone: match var("FERUM_TIMEZONE") {
                None => crate::web::pages::DEFAULT_TZ,
                Some(z) => z.trim().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "FERUM_TIMEZONE must be a time zone such as Europe/Moscow, got {z:?}"
                    )
                })?,
            },
            trusted_proxies: crate::domain::net::parse_networks(
                &var("FERUM_TRUSTED_PROXIES").unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!("FERUM_TRUSTED_PROXIES: {e}"))?,
            metrics_token,
            data_dir,
            max_body_bytes: number("FERUM_MAX_BODY_BYTES", 1024 * 1024)?,
            db_max_connections: number("FERUM_DB_MAX_CONNECTIONS", default_conns)?,
            token_ttl: minutes("FERUM_TOKEN_TTL_MINUTES", 15)?,
            sla,
            admin_email: var("FERUM_ADMIN_EMAIL"),
            admin_password: var("FERUM_ADMIN_PASSWORD"),
            cors_origins: var("FERUM_CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            public_url: var("FERUM_PUBLIC_URL"),
            limits: limits_from_env()?,
            server: server_from_env()?,
            notify: notify_from_env(public_host.as_deref())?,
            worker: worker_from_env()?,
            redis_url: var("REDIS_URL"),
            security: crate::web::Security {
                mfa_roles: match var("FERUM_MFA_ROLES") {
                    None => crate::web::Security::default().mfa_roles,
                    Some(v) if v.trim() == "none" => Vec::new(),
                    Some(v) => v
                        .split(',')
                        .map(|r| {
                            crate::domain::access::Role::parse(r.trim())
                                .with_context(|| format!("FERUM_MFA_ROLES: unknown role {r:?}"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                },
                refresh_ttl: Duration::days(number("FERUM_REFRESH_TTL_DAYS", 30)?),
                clients_see_engineer_phone: match var("FERUM_CLIENTS_SEE_ENGINEER_PHONE")
                    .as_deref()
                    .map(str::trim)
                {
                    None | Some("false" | "no" | "0") => false,
                    Some("true" | "yes" | "1") => true,
                    Some(other) => bail!(
                        "FERUM_CLIENTS_SEE_ENGINEER_PHONE must be true or false, got {other:?}"
                    ),
                },
            },
        })
    }

    pub fn web(&self) -> crate::web::WebConfig {
        crate::web::WebConfig {
            max_body_bytes: self.max_body_bytes,
            cors_origins: self.cors_origins.clone(),
            https: self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            trusted_proxies: self.trusted_proxies.clone(),
            timezone: Some(self.timezone),
        }
    }

    /// The token-signing secret: `FERUM_TOKEN_SECRET` if set, else a key kept in the data
    /// folder, generated (readable by its owner only) on first start.
    pub fn token_secret(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(s) = var("FERUM_TOKEN_SECRET") {
            if s.len() < 32 {
                bail!("FERUM_TOKEN_SECRET must be at least 32 characters");
            }
            return Ok(s.into_bytes());
        }
        let path = self.data_dir.join("token.key");
        match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 64 => return Ok(s.trim().as_bytes().to_vec()),
            Ok(_) => bail!(
                "{} is damaged; delete it to generate a new key (everyone signs in again)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &hex)?;
        tracing::info!(path = %path.display(), "generated a token-signing key");
        Ok(hex.into_bytes())
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn notify_from_env(public_host: Option<&str>) -> anyhow::Result<crate::notify::NotifyConfig> {
    use crate::notify::{mail, telegram};
    let seconds = |name: &str, default: u64| -> anyhow::Result<std::time::Duration> {
        let s: u64 = number(name, default)?;
        if s == 0 || s > 600 {
            bail!("{name} must be between 1 and 600 seconds, got {s}");
        }
        Ok(std::time::Duration::from_secs(s))
    };
    let smtp = match var("FERUM_SMTP_URL") {
        None => None,
        Some(url) => Some(mail::SmtpConfig {
            server: mail::SmtpServer::parse(url.trim()).context("FERUM_SMTP_URL")?,
            from: mail::parse_from(
                &var("FERUM_MAIL_FROM")
                    .context("FERUM_MAIL_FROM must be set when FERUM_SMTP_URL is")?,
            )
            .context("FERUM_MAIL_FROM")?,
            timeout: seconds("FERUM_SMTP_TIMEOUT_SECS", mail::DEFAULT_TIMEOUT.as_secs())?,
            hello_name: public_host.map(str::to_owned),
        }),
    };
    let telegram = match var("FERUM_TELEGRAM_BOT_TOKEN") {
        None => None,
        Some(token) => Some(telegram::TelegramConfig {
            token: telegram::parse_token(token.trim()).context("FERUM_TELEGRAM_BOT_TOKEN")?,
            api_url: telegram::parse_api_url(
                var("FERUM_TELEGRAM_API_URL")
                    .as_deref()
                    .unwrap_or(telegram::DEFAULT_API_URL)
                    .trim(),
            )
            .context("FERUM_TELEGRAM_API_URL")?,
            timeout: seconds(
                "FERUM_TELEGRAM_TIMEOUT_SECS",
                telegram::DEFAULT_TIMEOUT.as_secs(),
            )?,
        }),
    };
    Ok(crate::notify::NotifyConfig { smtp, telegram })
}

fn worker_from_env() -> anyhow::Result<WorkerSettings> {
    let enabled = match var("FERUM_WORKER").as_deref().map(str::trim) {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => bail!("FERUM_WORKER must be on or off, got {other:?}"),
    };
    let d = crate::jobs::worker::WorkerConfig::default();
    let max_attempts: i64 = number("FERUM_WORKER_MAX_ATTEMPTS", d.max_attempts)?;
    if !(1..=100).contains(&max_attempts) {
        bail!("FERUM_WORKER_MAX_ATTEMPTS must be between 1 and 100, got {max_attempts}");
    }
    let sla_warn_percent: u8 = number("FERUM_SLA_WARN_PERCENT", d.sla_warn_percent)?;
    if !(1..=99).contains(&sla_warn_percent) {
        bail!("FERUM_SLA_WARN_PERCENT must be between 1 and 99, got {sla_warn_percent}");
    }
    let lease: i64 = number("FERUM_WORKER_LEASE_SECS", d.lease.num_seconds())?;
    if !(1..=3600).contains(&lease) {
        bail!("FERUM_WORKER_LEASE_SECS must be between 1 and 3600, got {lease}");
    }
    Ok(WorkerSettings {
        enabled,
        config: crate::jobs::worker::WorkerConfig {
            max_attempts,
            sla_warn_percent,
            lease: chrono::Duration::seconds(lease),
            ..d
        },
    })
}

fn server_from_env() -> anyhow::Result<crate::web::server::ServerLimits> {
    let d = crate::web::server::ServerLimits::default();
    let seconds =
        |name: &str, default: std::time::Duration| -> anyhow::Result<std::time::Duration> {
            let s: u64 = number(name, default.as_secs())?;
            if s == 0 || s > 3600 {
                bail!("{name} must be between 1 and 3600 seconds, got {s}");
            }
            Ok(std::time::Duration::from_secs(s))
        };
    let max_connections: usize = number("FERUM_HTTP_MAX_CONNECTIONS", d.max_connections)?;
    if !(1..=100_000).contains(&max_connections) {
        bail!("FERUM_HTTP_MAX_CONNECTIONS must be between 1 and 100000, got {max_connections}");
    }
    Ok(crate::web::server::ServerLimits {
        header_timeout: seconds("FERUM_HTTP_HEADER_TIMEOUT_SECS", d.header_timeout)?,
        body_timeout: seconds("FERUM_HTTP_BODY_TIMEOUT_SECS", d.body_timeout)?,
        max_connections,
        shutdown_grace: seconds("FERUM_SHUTDOWN_GRACE_SECS", d.shutdown_grace)?,
    })
}

fn limits_from_env() -> anyhow::Result<crate::web::limits::Limits> {
    use crate::throttle::Rule;
    let d = crate::web::limits::Limits::default();
    let positive = |name: &str, default: u64| -> anyhow::Result<u64> {
        let v: u64 = number(name, default)?;
        if v == 0 {
            bail!("{name} must be positive");
        }
        Ok(v)
    };
    let api_user = match var("FERUM_API_REQUESTS_PER_MINUTE")
        .as_deref()
        .map(str::trim)
    {
        Some("off") => None,
        _ => {
            let per_minute = positive("FERUM_API_REQUESTS_PER_MINUTE", 1200)?;
            // The limiter counts in whole milliseconds: one request a millisecond is its
            // finest step.
            if per_minute > MAX_API_REQUESTS_PER_MINUTE {
                bail!(
                    "FERUM_API_REQUESTS_PER_MINUTE must be at most {MAX_API_REQUESTS_PER_MINUTE} \
                     (one request a millisecond per user), or off; got {per_minute}"
                );
            }
            Some(Rule {
                burst: per_minute.min(u64::from(u32::MAX)) as u32,
                per: Duration::microseconds((60_000_000 / per_minute).max(1) as i64),
            })
        }
    };
    let limits = crate::web::limits::Limits {
        namespace: String::new(),
        login_ip: Rule {
            burst: positive("FERUM_LOGIN_IP_BURST", u64::from(d.login_ip.burst))? as u32,
            per: Duration::seconds(positive("FERUM_LOGIN_IP_REFILL_SECONDS", 60)? as i64),
        },
        login_account: Rule {
            burst: positive(
                "FERUM_LOGIN_ACCOUNT_BURST",
                u64::from(d.login_account.burst),
            )? as u32,
            per: Duration::seconds(positive("FERUM_LOGIN_ACCOUNT_REFILL_SECONDS", 60)? as i64),
        },
        login_account_daily: positive("FERUM_LOGIN_ACCOUNT_DAILY_MAX", d.login_account_daily)?,
        alert_after: positive("FERUM_LOGIN_ALERT_AFTER", d.alert_after)?,
        api_user,
    };
    for (name, rule) in [
        ("FERUM_LOGIN_IP_*", Some(&limits.login_ip)),
        ("FERUM_LOGIN_ACCOUNT_*", Some(&limits.login_account)),
        ("FERUM_API_REQUESTS_PER_MINUTE", limits.api_user.as_ref()),
    ] {
        let Some(rule) = rule else { continue };
        rule.validate()
            .with_context(|| format!("{name}: not a usable rate limit"))?;
    }
    Ok(limits)
}

/// The largest per-user API rate the limiter can enforce.
pub const MAX_API_REQUESTS_PER_MINUTE: u64 = 60_000;
