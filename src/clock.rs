//! The one place that reads the wall clock. Everything else takes time as a parameter.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// Where the web layer gets "now": the system clock in production, a hand-moved one in tests.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => system_now(),
            Clock::Manual(t) => *t.lock().expect("clock lock"),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: chrono::Duration) {
        if let Clock::Manual(t) = self {
            *t.lock().expect("clock lock") += by;
        }
    }
}

/// Current UTC time.
#[expect(
    clippy::disallowed_methods,
    reason = "the single sanctioned clock read"
)]
pub fn system_now() -> DateTime<Utc> {
    Utc::now()
}
