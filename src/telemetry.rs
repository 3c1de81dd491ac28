//! Logs and error reporting, set up once by `main` before anything else runs.
//!
//! Logs go to standard error, as text or as JSON lines (`FERUM_LOG_FORMAT=json`); every line
//! logged while a request is handled carries its `request_id`. With `SENTRY_DSN` set, panics and
//! error-level events are sent to Sentry (warnings and info become breadcrumbs).

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Keeps the Sentry client alive; dropping it flushes events still queued (up to two seconds).
pub struct Telemetry {
    _sentry: Option<sentry::ClientInitGuard>,
}

/// Reads `.env` from the working directory (variables already set win); a file that exists
/// but cannot be parsed is an error naming the line.
pub fn load_dotenv() -> anyhow::Result<()> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!(e)).context("reading .env"),
    }
}

/// Installs the log subscriber and, when `SENTRY_DSN` is set, the Sentry client.
pub fn init() -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_env("FERUM_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = match std::env::var("FERUM_LOG_FORMAT").ok().as_deref() {
        None | Some("" | "text") => false,
        Some("json") => true,
        Some(other) => anyhow::bail!("FERUM_LOG_FORMAT must be text or json, got {other:?}"),
    };
    let sentry = match std::env::var("SENTRY_DSN")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(dsn) => Some(sentry_client(
            &dsn,
            std::env::var("SENTRY_ENVIRONMENT").ok(),
        )?),
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_current_span(true)
                .with_span_list(false)
        }))
        .with((!json).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr)))
        .with(sentry.is_some().then(sentry::integrations::tracing::layer))
        .init();
    Ok(Telemetry { _sentry: sentry })
}

/// Starts the Sentry client for `dsn`: panics (with a backtrace) and error-level log events
/// become Sentry events tagged with this release. The DSN is checked before anything is sent.
pub fn sentry_client(
    dsn: &str,
    environment: Option<String>,
) -> anyhow::Result<sentry::ClientInitGuard> {
    let dsn: sentry::types::Dsn = dsn
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("SENTRY_DSN is not a valid DSN: {e}"))?;
    Ok(sentry::init(sentry::ClientOptions {
        dsn: Some(dsn),
        release: Some(concat!("ferum@", env!("CARGO_PKG_VERSION")).into()),
        environment: environment.filter(|e| !e.trim().is_empty()).map(Into::into),
        // Personal data stays out of reports: no IP addresses or request bodies.
        send_default_pii: false,
        attach_stacktrace: true,
        ..Default::default()
    }))
}
