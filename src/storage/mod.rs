//! The storage boundary: everything durable goes through [`Storage`], with
//! the in-process [`memory`] backend and the production [`redis`] backend
//! behind it, chosen by `storage.backend`.
//!
//! The boundary is narrow on purpose. Its hard promises are the ones the
//! gateway's correctness rests on:
//! - [`Storage::claim_and_append`] claims both dedup keys and appends the
//!   event to its partition of the log in one atomic step, so a key is
//!   never claimed without its event being recorded;
//! - the log is read per partition, in order, by one worker at a time, and
//!   an entry leaves it only when acknowledged;
//! - fulfillment state changes by compare-and-set, so concurrent appliers
//!   never lose each other's updates.

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::canonical::{CanonicalEvent, EventId, FulfillmentKey, Provider};
use crate::config::{Backend, Settings};
use crate::fulfillment::{Fulfillment, Order};

/// Why storage could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend cannot be reached; the caller answers 503 and retries.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back; a bug or a foreign writer.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The outcome of offering an event to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// New: claimed and appended.
    Accepted,
    /// Seen before (by delivery id or content): nothing was written. Names
    /// the event that first claimed it.
    Duplicate { original: EventId },
}

/// Where an entry sits in the log, for acknowledging it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    pub partition: u32,
    /// The backend's id for the entry (a stream id on Redis).
    pub entry: String,
}

/// One event read from the log, to be applied then acknowledged.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub position: LogPosition,
    pub event: CanonicalEvent,
}

/// A stored value with the version to hand back to compare-and-set.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub version: u64,
    pub value: T,
}

/// How an ingest request ended, for the per-provider stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    Duplicate,
    Unauthorized,
    Invalid,
    Unmapped,
}

impl Outcome {
    /// Every outcome, in the order stats list them.
    pub const ALL: [Outcome; 5] = [
        Self::Accepted,
        Self::Duplicate,
        Self::Unauthorized,
        Self::Invalid,
        Self::Unmapped,
    ];

    /// The outcome's name in stats and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Unauthorized => "unauthorized",
            Self::Invalid => "invalid",
            Self::Unmapped => "unmapped",
        }
    }
}

/// Counts per provider and outcome.
pub type Stats = BTreeMap<Provider, BTreeMap<Outcome, u64>>;

/// A provider word the status map did not know, and how often it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmappedWord {
    pub provider: Provider,
    pub word: String,
    pub count: u64,
}

/// Which recent events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub provider: Option<Provider>,
    pub store: Option<String>,
    /// Only events older than this one (for paging).
    pub before: Option<EventId>,
    pub limit: usize,
}

/// The gateway's durable state, behind one narrow interface.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Claims the event's dedup keys and appends it to its partition's log,
    /// atomically; counts it as accepted (and unmapped) or duplicate.
    async fn claim_and_append(&self, event: &CanonicalEvent) -> Result<Claim, StorageError>;

    /// Takes or renews leases on partitions for `worker` and returns the
    /// ones it holds now. A partition has at most one holder at a time.
    async fn lease_partitions(&self, worker: &str, ttl: Duration)
        -> Result<Vec<u32>, StorageError>;

    /// Gives up `worker`'s leases so other processes take over at once.
    async fn release_partitions(&self, worker: &str) -> Result<(), StorageError>;

    /// Reads up to `max` unacknowledged entries from `partitions`, in log
    /// order within each, waiting up to `wait` when there are none. A
    /// worker that died leaves its entries to be read again.
    async fn read_log(
        &self,
        worker: &str,
        partitions: &[u32],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LogEntry>, StorageError>;

    /// Removes applied entries from the log.
    async fn acknowledge(&self, positions: &[LogPosition]) -> Result<(), StorageError>;

    /// How many entries wait in each partition, applied or not yet.
    async fn backlog(&self) -> Result<Vec<u64>, StorageError>;

    /// A fulfillment's state and its version.
    async fn fulfillment(
        &self,
        key: &FulfillmentKey,
    ) -> Result<Option<Versioned<Fulfillment>>, StorageError>;

    /// Writes `value` if the stored version is still `expected` (`None`:
    /// if there is none yet). False when someone else wrote first.
    async fn compare_and_set_fulfillment(
        &self,
        expected: Option<u64>,
        value: &Fulfillment,
    ) -> Result<bool, StorageError>;

    /// The fulfillments of one order, by fulfillment reference.
    async fn fulfillments_of_order(
        &self,
        store: &str,
        order_ref: &str,
    ) -> Result<Vec<Fulfillment>, StorageError>;

    /// Stores a new order; false if its id or external id is taken.
    async fn create_order(&self, order: &Order) -> Result<bool, StorageError>;

    /// An order by our id or the client's.
    async fn order(&self, store: &str, id: &str) -> Result<Option<Order>, StorageError>;

    /// The next number of a named sequence, from 1.
    async fn next_in_sequence(&self, name: &str) -> Result<u64, StorageError>;

    /// Counts a request that was refused before reaching the log.
    async fn count(&self, provider: Provider, outcome: Outcome) -> Result<(), StorageError>;

    /// Counts per provider and outcome.
    async fn stats(&self) -> Result<Stats, StorageError>;

    /// Unmapped provider words with their counts, most frequent first.
    async fn unmapped_words(&self) -> Result<Vec<UnmappedWord>, StorageError>;

    /// Recently accepted events, newest first.
    async fn recent_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<CanonicalEvent>, StorageError>;

    /// Touches the backend for real, for `/ready`.
    async fn ping(&self) -> Result<(), StorageError>;
}

/// Opens the backend the settings choose.
pub async fn open(settings: &Settings) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match settings.storage.backend {
        Backend::Memory => Arc::new(memory::MemoryStorage::new(&settings.storage)),
        Backend::Redis => Arc::new(redis::RedisStorage::connect(&settings.storage).await?),
    })
}
