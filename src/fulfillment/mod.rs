//! The fulfillment core: each fulfillment's status, ETA and tracking
//! history, kept by applying canonical events; the workers that feed it
//! from the event log; the automations an apply fires; and the Redo-style
//! orders.

pub mod automations;
mod core;
mod order;
mod state;
mod view;
mod worker;

pub use self::core::{ApplyResult, CreateError, FulfillmentCore};
pub use order::Order;
pub use state::{
    Applied, Effects, EntryKind, Fulfillment, HistoryChange, HistoryEntry, LineItem, Retracted,
};
pub use view::{timestamp, FulfillmentView, OpsFulfillment};
pub use worker::Worker;
