//! Business rules of `PRODUCT.md` as plain functions over plain data.
//!
//! Nothing in here touches a database, the network, the clock or a random source: time and
//! ids are parameters, so every rule is tested directly.

pub mod access;
pub mod audit;
pub mod backup;
pub mod event;
pub mod ids;
pub mod net;
pub mod project;
pub mod report;
pub mod request;
pub mod text;
pub mod time;
pub mod totp;
pub mod values;
