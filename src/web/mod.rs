//! HTTP: the JSON API under `/api/v1`, thin over the store.

pub mod api;
pub mod auth_api;
pub mod extract;
pub mod limits;
pub mod problem;

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
}

/// Sign-in policy.
#[derive(Clone, Debug)]
pub struct Security {
    /// Roles that must use a second factor.
    pub mfa_roles: Vec<crate::domain::access::Role>,
    /// How long a refresh token lives.
    pub refresh_ttl: chrono::Duration,
}

impl Default for Security {
    fn default() -> Self {
        use crate::domain::access::Role;
        Security {
            mfa_roles: vec![Role::Admin, Role::Director, Role::Accountant],
            refresh_ttl: chrono::Duration::days(30),
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
}

/// The whole application: API, OpenAPI document, problem answers for unknown routes.
pub fn router(state: AppState, web: &WebConfig) -> Router {
    let max_body_bytes = web.max_body_bytes;
    let (api, openapi) = api::routes().split_for_parts();
    let doc = serde_json::to_string(&openapi).expect("the OpenAPI document serialises");
    Router::new()
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
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async {
            Error::BadRequest {
                code: "method_not_allowed",
                message: "this method is not allowed here".into(),
                fields: vec![],
            }
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(cors(&web.cors_origins))
        .layer(axum::middleware::from_fn_with_state(
            web.https,
            security_headers,
        ))
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
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

/// Gives every request an id (or keeps a sane one from `X-Request-Id`), echoes it on the
/// response, and logs the request with it.
async fn request_context(req: Request, next: Next) -> Response {
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
    let started = std::time::Instant::now();
    let mut res = problem::REQUEST_ID.scope(id.clone(), next.run(req)).await;
    tracing::info!(
        request_id = %id,
        %method,
        %path,
        status = res.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

fn new_request_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().r#gen::<u64>())
}
