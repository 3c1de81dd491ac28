//! The one error type shared by the domain, the store and the web layer.
//!
//! Variants are stable and mapped to HTTP in exactly one place (`web::problem`), with no
//! catch-all arm, so adding a variant forces a decision about how clients see it.

use serde::Serialize;

/// One offending input field, named as the client spelled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field path, e.g. `items[2].quantity`.
    pub field: String,
    /// A stable machine-readable code, e.g. `too_long`.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The record does not exist, or the user may not see it (never 403 for invisible records).
    #[error("not found")]
    NotFound,
    /// The input breaks one or more field rules.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// The request is well-formed but conflicts with the state of the data.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        fields: Vec<String>,
        allowed: Option<Vec<String>>,
    },
    /// The record changed since the client read it. `precondition` is true when the
    /// version came from an `If-Match` header (412), false when it came from the body (409).
    #[error("the record was changed by someone else (current version {current})")]
    Stale { current: i64, precondition: bool },
    /// An update without `version` or `If-Match`.
    #[error("the update must carry the version it is based on")]
    VersionRequired,
    /// The user sees the record but may not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Malformed request (syntax, not semantics).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        fields: Vec<FieldError>,
    },
    /// Over a rate limit; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after: i64 },
    /// The body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The client stopped sending the request body before its end (the body timeout).
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// Anything unexpected: logged with the request id, answered with a generic body.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn field(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
            fields: Vec::new(),
            allowed: None,
        }
    }

    pub fn conflict_on(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
            fields: vec![field.to_owned()],
            allowed: None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(e.into())
    }
}

/// Collects field errors so a client learns about all of them at once.
#[derive(Default, Debug)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the error of `r` (if any) and returns its value.
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else the validation error with every field.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}
