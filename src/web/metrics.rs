//! Prometheus metrics: HTTP requests by route and status with latency histograms, the database
//! pools, and business gauges read from the database at scrape time.
//!
//! `/metrics` is never on the public listener by accident: it is served on its own listener
//! (`FERUM_METRICS_BIND`) or, with `FERUM_METRICS_TOKEN`, on the main one behind that bearer token.

use super::AppState;
use crate::store::stats;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Collectors that live as long as the process; one set per application state.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("ferum_http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "ferum_http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let build = IntGaugeVec::new(
            Opts::new("ferum_build_info", "The running ferum version"),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(build),
        ] {
            registry.register(c).expect("unique metric");
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
        }
    }

    /// Counts one answered request. `route` is the matched route template (never the raw
    /// path, so ids do not multiply the series).
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// The text exposition of every metric, business gauges included.
    pub async fn render(&self, state: &AppState) -> anyhow::Result<String> {
        let snapshot = stats::snapshot(&state.db, state.clock.now()).await?;
        let scrape = Registry::new();
        let open = IntGaugeVec::new(
            Opts::new(
                "ferum_service_requests_open",
                "Service requests neither closed nor cancelled",
            ),
            &["type", "status"],
        )?;
        for (t, s, n) in &snapshot.open {
            open.with_label_values(&[t.as_str(), s.as_str()]).set(*n);
        }
        let overdue = IntGaugeVec::new(
            Opts::new(
                "ferum_service_requests_overdue",
                "Open or in-progress requests past their assignment or closing deadline",
            ),
            &["type"],
        )?;
        for (t, n) in &snapshot.overdue {
            overdue.with_label_values(&[t.as_str()]).set(*n);
        }
        let resolution = Gauge::new(
            "ferum_service_requests_resolution_seconds_avg_30d",
            "Mean seconds from report to completion, requests completed in the last 30 days",
        )?;
        resolution.set(snapshot.resolution_seconds_30d.unwrap_or(0.0));
        let outbox = IntGauge::new(
            "ferum_outbox_depth",
            "Events and messages waiting to be delivered",
        )?;
        outbox.set(snapshot.outbox_depth);
        let oldest = IntGauge::new(
            "ferum_outbox_oldest_pending_seconds",
            "Seconds the oldest waiting event or message has waited",
        )?;
        oldest.set(snapshot.outbox_oldest_seconds);
        let dead = IntGauge::new(
            "ferum_outbox_dead",
            "Events and messages given up on after their last attempt",
        )?;
        dead.set(snapshot.outbox_dead);
        let backup = Gauge::new(
            "ferum_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup (0: never)",
        )?;
        backup.set(snapshot.last_backup.map_or(0.0, |t| t.timestamp() as f64));
        let conns = IntGaugeVec::new(
            Opts::new("ferum_db_pool_connections", "Database connections by state"),
            &["pool", "state"],
        )?;
        let max = IntGaugeVec::new(
            Opts::new(
                "ferum_db_pool_max_connections",
                "Most connections a pool opens",
            ),
            &["pool"],
        )?;
        for (pool, size, idle, limit) in state.db.pool_stats() {
            let in_use = size.saturating_sub(idle);
            conns
                .with_label_values(&[pool, "idle"])
                .set(i64::from(idle));
            conns
                .with_label_values(&[pool, "in_use"])
                .set(i64::from(in_use));
            max.with_label_values(&[pool]).set(i64::from(limit));
        }
        for c in [
            Box::new(open) as Box<dyn prometheus::core::Collector>,
            Box::new(overdue),
            Box::new(resolution),
            Box::new(outbox),
            Box::new(oldest),
            Box::new(dead),
            Box::new(backup),
            Box::new(conns),
            Box::new(max),
        ] {
            scrape.register(c)?;
        }
        let mut families = self.registry.gather();
        families.extend(scrape.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}

/// `GET /metrics` on the metrics listener.
pub async fn serve(State(state): State<AppState>) -> Response {
    match state.metrics.render(&state).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "cannot render metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /metrics` on the main listener: only with the configured bearer token; otherwise it
/// does not exist (404), as on a server without a token.
pub async fn serve_with_token(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> Response {
    let Some(expected) = state.metrics_token.as_deref() else {
        return crate::error::Error::NotFound.into_response();
    };
    let given = super::extract::bearer(&parts).unwrap_or_default();
    if !crate::domain::totp::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    }
    serve(State(state)).await
}

/// The router of the separate metrics listener.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(serve))
        .with_state(state)
}
