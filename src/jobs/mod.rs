//! Background work: the worker that turns outbox events into messages and delivers them,
//! and the periodic SLA sweep.

pub mod notify;
pub mod sweep;
pub mod worker;
