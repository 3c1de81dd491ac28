//! HTTP: the JSON API under `/api/v1`, thin over the store.

pub mod api;
pub mod extract;
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
}

/// The whole application: API, OpenAPI document, problem answers for unknown routes.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
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
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
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
