//! The integration suite: store and HTTP tests on SQLite, and on PostgreSQL when
//! `FERUM_TEST_POSTGRES_URL` is set. One binary, on purpose.

mod fakes;
mod support;

mod access;
mod audit_pii;
mod auth;
mod backup;
mod backup_hardening;
mod bad_input;
mod catalog;
mod catalog_pages;
mod concurrency;
mod events;
mod hangups;
mod hostile;
mod input_limits;
mod migrations;
mod notify;
mod notify_pages;
mod ops;
mod pages;
mod reports;
mod requests;
mod security;
mod throttle;
mod worker_process;
