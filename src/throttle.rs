//! Rate limits (filled in by the throttling work).
