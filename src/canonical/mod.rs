//! The canonical tracking event and its vocabulary.

mod event;
pub mod json;
pub mod time;
mod vocabulary;

pub use event::{
    CanonicalEvent, DedupKey, EventId, EventKind, FulfillmentKey, Location, Observation, Pairing,
    Provider,
};
pub use vocabulary::{AutomationEvent, Direction, ShipmentStatus, UnknownWord};
