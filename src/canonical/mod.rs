//! The canonical tracking event and its vocabulary.

mod event;
pub mod json;
pub mod time;
mod vocabulary;

pub use event::{
    CanonicalEvent, DedupKey, EventId, EventKind, FromTheFuture, FulfillmentKey, Location,
    Observation, Pairing, Provider, ProviderTime, MAX_ID_BYTES,
};
pub use vocabulary::{AutomationEvent, Direction, ShipmentStatus, UnknownWord};
