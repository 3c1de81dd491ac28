//! Ferum: service management for fire-safety maintenance companies.

pub mod auth;
pub mod clock;
pub mod domain;
pub mod error;
pub mod store;
