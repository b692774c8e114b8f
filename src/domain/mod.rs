//! The gateway's domain records, below everything that stores or moves
//! them: a fulfillment's state with its pure apply rules, Redo-style
//! orders, and the automation outbox's deliveries. Storage keeps these,
//! the core changes them; neither is imported here, so the arrows run one
//! way (canonical → domain → storage → core → the HTTP edges).

mod fulfillment;
mod order;
mod outbox;
mod signing;
mod trigger;

pub use fulfillment::{
    Applied, Effects, EntryKind, Fulfillment, HistoryChange, HistoryEntry, LineItem, Retracted,
};
pub use order::Order;
pub use outbox::{
    Attempt, Delivery, DeliveryFilter, DeliveryState, FailureReason, OutboxWrite, Requeued,
    Settlement, StallWatch,
};
pub use signing::SigningSecret;
pub use trigger::{Trigger, UnknownTrigger};
