//! The one place that reads the wall clock. Everything else takes time as a parameter.

use chrono::{DateTime, Utc};

/// Current UTC time.
#[expect(clippy::disallowed_methods, reason = "the single sanctioned clock read")]
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
