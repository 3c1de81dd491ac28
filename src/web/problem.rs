//! Errors as RFC 9457 `application/problem+json`, mapped in one exhaustive match.

use crate::error::{Error, FieldError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being served, for error bodies and logs.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`, `transition_not_allowed`.
    pub code: String,
    /// The offending fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For refused workflow moves: the moves this user may make now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    pub request_id: String,
}

pub fn problem(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Vec<FieldError>,
    allowed: Option<Vec<String>>,
) -> Response {
    let body = Problem {
        kind: format!("https://ferum.app/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
        errors,
        allowed,
        request_id: current_request_id(),
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::NotFound => problem(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such record".into(),
                vec![],
                None,
            ),
            Error::Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    detail,
                    errors,
                    None,
                )
            }
            Error::Conflict {
                code,
                message,
                fields,
                allowed,
            } => {
                let errors = fields
                    .into_iter()
                    .map(|f| FieldError::new(f, code, message.clone()))
                    .collect();
                problem(StatusCode::CONFLICT, code, message, errors, allowed)
            }
            Error::Stale {
                current,
                precondition,
            } => {
                let status = if precondition {
                    StatusCode::PRECONDITION_FAILED
                } else {
                    StatusCode::CONFLICT
                };
                let errors = vec![FieldError::new(
                    "version",
                    "stale",
                    format!("current version is {current}"),
                )];
                problem(
                    status,
                    "stale_version",
                    format!("the record was changed by someone else; current version is {current}"),
                    errors,
                    None,
                )
            }
            Error::VersionRequired => problem(
                StatusCode::PRECONDITION_REQUIRED,
                "version_required",
                "send the version you are updating, as `version` in the body or an If-Match header"
                    .into(),
                vec![FieldError::new("version", "required", "required")],
                None,
            ),
            Error::Forbidden(msg) => problem(StatusCode::FORBIDDEN, "forbidden", msg, vec![], None),
            Error::Unauthorized(msg) => {
                let mut r = problem(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    msg.into(),
                    vec![],
                    None,
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            Error::BadRequest {
                code,
                message,
                fields,
            } => problem(StatusCode::BAD_REQUEST, code, message, fields, None),
            Error::TooManyRequests { retry_after } => {
                let mut r = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many requests; try again in {retry_after} s"),
                    vec![],
                    None,
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            Error::PayloadTooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than allowed".into(),
                vec![],
                None,
            ),
            Error::RequestTimeout => {
                let mut r = problem(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive in time".into(),
                    vec![],
                    None,
                );
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            }
            Error::Internal(e) => {
                tracing::error!(request_id = %current_request_id(), error = ?e, "internal error");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; quote the request id when reporting it"
                        .into(),
                    vec![],
                    None,
                )
            }
        }
    }
}
