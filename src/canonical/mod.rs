//! The canonical tracking event and its vocabulary.

mod event;
pub mod json;
pub mod time;
mod vocabulary;

pub use event::{
    CanonicalEvent, DedupKey, DefinedName, EventId, EventKind, FromTheFuture, FulfillmentKey,
    Location, Observation, Pairing, Provider, ProviderTime, MAX_ID_BYTES, MAX_PROVIDER_NAME,
};
pub use vocabulary::{AutomationEvent, Direction, ShipmentStatus, UnknownWord};
