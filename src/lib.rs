//! Ferum: service management for fire-safety maintenance companies.

pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod notify;
pub mod ops;
pub mod seed;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod web;
