//! The fulfillment core: each fulfillment's status, ETA and tracking
//! history, kept by applying canonical events (the pure rules are
//! [`crate::domain::Fulfillment::apply`]); the workers that feed it from
//! the event log; and the automations an apply fires.

pub mod automations;
mod core;
mod recorder;
mod view;
mod worker;

pub use self::core::{ApplyResult, CreateError, FulfillmentCore};
pub use recorder::Recorder;
pub use view::{timestamp, FulfillmentView, OpsFulfillment};
pub use worker::Worker;
