//! HTTP: the JSON API under `/api/v1`, thin over the store.

pub mod api;
pub mod auth_api;
pub mod extract;
pub mod i18n;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod problem;
pub mod server;
pub mod session;

use crate::auth::TokenKeys;
use crate::clock::Clock;
use crate::domain::request::SlaPolicy;
use crate::error::Error;
use crate::store::Db;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub keys: TokenKeys,
    pub clock: Clock,
    pub sla: SlaPolicy,
    pub security: Security,
    pub limiter: crate::throttle::Limiter,
    pub limits: limits::Limits,
    /// HTTP counters and histograms; business gauges are read at scrape time.
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// Opens `/metrics` on the main listener when set (`FERUM_METRICS_TOKEN`).
    pub metrics_token: Option<std::sync::Arc<str>>,
}

/// Sign-in policy.
#[derive(Clone, Debug)]
pub struct Security {
    /// Roles that must use a second factor.
    pub mfa_roles: Vec<crate::domain::access::Role>,
    /// How long a refresh token lives.
    pub refresh_ttl: chrono::Duration,
    /// Whether clients see the phone number of the engineer on their requests
    /// (`FERUM_CLIENTS_SEE_ENGINEER_PHONE`); staff always do.
    pub clients_see_engineer_phone: bool,
}

impl Default for Security {
    fn default() -> Self {
        use crate::domain::access::Role;
        Security {
            mfa_roles: vec![Role::Admin, Role::Director, Role::Accountant],
            refresh_ttl: chrono::Duration::days(30),
            clients_see_engineer_phone: false,
        }
    }
}

/// HTTP settings from the configuration.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Origins allowed to call the API from a browser (CORS); empty allows none.
    pub cors_origins: Vec<String>,
    /// Served to browsers over HTTPS (through a TLS proxy): send HSTS.
    pub https: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`FERUM_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The company's time zone for the pages (`FERUM_TIMEZONE`; Moscow when unset).
    pub timezone: Option<chrono_tz::Tz>,
}

/// The whole application: API, OpenAPI document, probes, problem answers for unknown routes.
pub fn router(state: AppState, web: &WebConfig) -> Router {
    let (api, openapi) = api::routes().split_for_parts();
    let doc = serde_json::to_string(&openapi).expect("the OpenAPI document serialises");
    let routes = Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc,
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(metrics::serve_with_token))
        .merge(pages::routes())
        .layer(axum::Extension(pages::PageFlags {
            https: web.https,
            tz: web.timezone.unwrap_or(pages::DEFAULT_TZ),
        }));
    layered(routes, state, web)
}

/// Wraps routes in what every answer goes through: request id and logging, metrics, panic
/// recovery, security headers, CORS and the body limit.
pub fn layered(routes: Router<AppState>, state: AppState, web: &WebConfig) -> Router {
    let context = RequestContext {
        metrics: state.metrics.clone(),
        trusted_proxies: web.trusted_proxies.clone().into(),
    };
    routes
        .fallback(fallback)
        .method_not_allowed_fallback(|| async {
            Error::BadRequest {
                code: "method_not_allowed",
                message: "this method is not allowed here".into(),
                fields: vec![],
            }
        })
        .layer(DefaultBodyLimit::max(web.max_body_bytes))
        .layer(cors(&web.cors_origins))
        .layer(axum::middleware::from_fn_with_state(
            web.https,
            security_headers,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_answer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            context,
            request_context,
        ))
        .with_state(state)
}

/// Unknown paths: a problem under `/api/`, the 404 page anywhere else.
async fn fallback(req: Request) -> Response {
    use axum::response::IntoResponse;
    if req.uri().path().starts_with("/api/") {
        return Error::NotFound.into_response();
    }
    let (parts, _) = req.into_parts();
    pages::fallback(session::Language(session::tr_of(&parts))).await
}

/// The answer to a request whose handler panicked. The panic itself is logged (and sent to
/// Sentry) by the panic hook; the client gets a problem with the request id.
fn panic_answer(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    use axum::response::IntoResponse;
    problem::problem(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "something went wrong on our side; quote the request id when reporting it".into(),
        vec![],
        None,
    )
    .into_response()
}

/// Ready to serve: the database answers and its schema is this binary's.
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let problem = match crate::store::migrate::readiness(&state.db).await {
        Ok(None) => return (StatusCode::OK, "ready").into_response(),
        Ok(Some(why)) => why,
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            "database unreachable".to_owned()
        }
    };
    (StatusCode::SERVICE_UNAVAILABLE, problem).into_response()
}

/// CORS for the configured origins only; with none configured, browsers on other origins get
/// no CORS headers and cannot read answers.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(list))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([
            header::ETAG,
            axum::http::HeaderName::from_static("x-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Headers that keep browsers from misusing answers: no sniffing, no framing, no referrer,
/// a restrictive CSP, no caching of API data, and HSTS when served over HTTPS.
async fn security_headers(
    axum::extract::State(https): axum::extract::State<bool>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    set(h, "cache-control", "no-store");
    if https {
        set(
            h,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    res
}

/// What the outermost middleware needs.
#[derive(Clone)]
struct RequestContext {
    metrics: std::sync::Arc<metrics::Metrics>,
    trusted_proxies: std::sync::Arc<[ipnet::IpNet]>,
}

/// Gives every request an id (or keeps a sane one from `X-Request-Id`), echoes it on the
/// response, and logs the request with it.
async fn request_context(
    axum::extract::State(context): axum::extract::State<RequestContext>,
    mut req: Request,
    next: Next,
) -> Response {
    use tracing::Instrument;
    let metrics = &context.metrics;
    if let Some(peer) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
    {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let client = crate::domain::net::client_address(peer, &forwarded, &context.trusted_proxies);
        req.extensions_mut().insert(extract::ClientAddr(client));
    }
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let started = std::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    // The request runs in a task of its own: a client hanging up drops this future, and
    // with it anything it awaits directly, which must never cut a database transaction off
    // between its statements. The task runs to its end whatever the client does.
    let task = tokio::spawn(
        problem::REQUEST_ID
            .scope(id.clone(), next.run(req))
            .instrument(span.clone()),
    );
    let mut res = match task.await {
        Ok(res) => res,
        Err(e) if e.is_panic() => panic_answer(e.into_panic()),
        Err(_) => panic_answer(Box::new("the request's task was cancelled")),
    };
    let elapsed = started.elapsed();
    metrics.observe(
        method.as_str(),
        &route,
        res.status().as_u16(),
        elapsed.as_secs_f64(),
    );
    span.in_scope(|| {
        tracing::info!(
            %method,
            %path,
            status = res.status().as_u16(),
            ms = elapsed.as_millis() as u64,
            "request"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

fn new_request_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().r#gen::<u64>())
}
