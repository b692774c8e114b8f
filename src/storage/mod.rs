//! The storage boundary: everything durable goes through [`Storage`], with
//! the in-process [`memory`] backend and the production [`redis`] backend
//! behind it, chosen by `storage.backend`.
//!
//! The boundary is narrow on purpose. Its hard promises are the ones the
//! gateway's correctness rests on:
//! - [`EventLog::claim_and_append`] claims both dedup keys and appends the
//!   event to its partition of the log in one atomic step, so a key is
//!   never claimed without its event being recorded;
//! - the log is read per partition, in order, by one worker at a time, and
//!   an entry leaves it only when acknowledged;
//! - fulfillment state changes by compare-and-set, so concurrent appliers
//!   never lose each other's updates, and the automation deliveries (and
//!   stall watch) a change fires are written in the same atomic step, so a
//!   crash can neither lose a delivery nor make one for an update that
//!   was not applied;
//! - deliveries wait in per-(rule, fulfillment) queues in the
//!   fulfillment's partition, so a dispatcher sends only for the
//!   partitions its process holds.
//!
//! The boundary is split by capability, so each part of the system names
//! only what it uses: [`EventLog`] (claims, the log, leases),
//! [`Fulfillments`], [`Orders`], [`Sequences`], [`Outbox`], [`Feed`]
//! (stats and recent events) and [`RateLimits`] (per-store buckets). [`Batched`] holds the calls that exist only
//! to save round trips; [`Storage`] is all of them, the handle a backend
//! is opened as.

pub mod memory;
pub mod redis;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::canonical::{CanonicalEvent, EventId, FulfillmentKey, Provider};
use crate::config::{Backend, RateLimit, Settings};
use crate::domain::{
    Delivery, DeliveryFilter, Fulfillment, HistoryChange, Order, OutboxWrite, Requeued,
};

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

/// What [`Batched::order_fulfillment`] found.
#[derive(Debug, Clone)]
pub enum OrderFulfillment {
    /// No order has that id, ours or the client's.
    NoOrder,
    /// The order exists (the key names it by the client's id) but has no
    /// such fulfillment.
    NoFulfillment(FulfillmentKey),
    /// Boxed, so the answers that found nothing stay small.
    Found(Box<Versioned<Fulfillment>>),
}

impl OrderFulfillment {
    /// The answer for the order's fulfillment `key`, as read.
    fn of(key: FulfillmentKey, found: Option<Versioned<Fulfillment>>) -> Self {
        match found {
            Some(found) => Self::Found(Box::new(found)),
            None => Self::NoFulfillment(key),
        }
    }
}

/// One write of [`Batched::compare_and_set_many`].
#[derive(Debug, Clone, Copy)]
pub struct FulfillmentWrite<'a> {
    /// The version read (`None`: the fulfillment is new).
    pub expected: Option<u64>,
    pub value: &'a Fulfillment,
    pub change: &'a HistoryChange,
    pub fired: &'a OutboxWrite,
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
    /// A verified delivery the gateway has no use for (a Shopify topic it
    /// does not take): answered 200 so the provider keeps its
    /// subscription, and recorded nowhere else.
    Ignored,
    /// Over its store's `[stores.NAME.limits]`: answered 429.
    Limited,
}

impl Outcome {
    /// Every outcome, in the order stats list them.
    pub const ALL: [Outcome; 7] = [
        Self::Accepted,
        Self::Duplicate,
        Self::Unauthorized,
        Self::Invalid,
        Self::Unmapped,
        Self::Ignored,
        Self::Limited,
    ];

    /// The outcome's name in stats and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Unauthorized => "unauthorized",
            Self::Invalid => "invalid",
            Self::Unmapped => "unmapped",
            Self::Ignored => "ignored",
            Self::Limited => "limited",
        }
    }
}

/// Counts per provider and outcome.
pub type Stats = BTreeMap<Provider, BTreeMap<Outcome, u64>>;

/// Adds `n` to `stats`' count of `provider` and `outcome`.
fn add(stats: &mut Stats, provider: Provider, outcome: Outcome, n: u64) {
    *stats
        .entry(provider)
        .or_default()
        .entry(outcome)
        .or_default() += n;
}

/// Unmapped words with their counts, most frequent first.
fn sorted_words(counts: BTreeMap<(Provider, String), u64>) -> Vec<UnmappedWord> {
    let mut words: Vec<UnmappedWord> = counts
        .into_iter()
        .map(|((provider, word), count)| UnmappedWord {
            provider,
            word,
            count,
        })
        .collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.count));
    words
}

/// A provider word the status map did not know, and how often it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// Only events of these stores (an ops token's); `None` for every store.
    pub scope: Option<BTreeSet<String>>,
    /// Only events older than this one (for paging).
    pub before: Option<EventId>,
    pub limit: usize,
}

/// The event log: claims, the partitioned log itself, and the leases that
/// give each partition one reader at a time.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Claims the event's dedup keys and appends it to its partition's log,
    /// atomically; counts it as accepted (and unmapped) or duplicate.
    async fn claim_and_append(&self, event: &CanonicalEvent) -> Result<Claim, StorageError>;

    /// Takes or renews leases on partitions for `worker` and returns the
    /// ones it holds now. A partition has at most one holder at a time.
    async fn lease_partitions(&self, worker: &str, ttl: Duration)
        -> Result<Vec<u32>, StorageError>;

    /// Gives up `worker`'s leases so other processes take over at once.
    async fn release_partitions(&self, worker: &str) -> Result<(), StorageError>;

    /// The partitions whose lease `worker` holds now: the dispatcher of
    /// the worker's process sends only their deliveries.
    async fn held_partitions(&self, worker: &str) -> Result<Vec<u32>, StorageError>;

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
}

/// Fulfillment state, changed only by compare-and-set, with the outbox
/// writes and stall watch each change fires.
#[async_trait]
pub trait Fulfillments: Send + Sync {
    /// A fulfillment's state, with its whole history, and its version.
    async fn fulfillment(
        &self,
        key: &FulfillmentKey,
    ) -> Result<Option<Versioned<Fulfillment>>, StorageError>;

    /// Writes `value`'s summary and `change` to its history if the stored
    /// version is still `expected` (`None`: if there is none yet), and in
    /// the same atomic step queues the deliveries the change fired and sets
    /// its stall watch. False, with nothing written, when someone else
    /// wrote first.
    async fn compare_and_set_with_outbox(
        &self,
        expected: Option<u64>,
        value: &Fulfillment,
        change: &HistoryChange,
        fired: &OutboxWrite,
    ) -> Result<bool, StorageError>;

    /// Writes `value`, with all its history, if the stored version is
    /// still `expected` (`None`: if there is none yet). False when someone
    /// else wrote first.
    async fn compare_and_set_fulfillment(
        &self,
        expected: Option<u64>,
        value: &Fulfillment,
    ) -> Result<bool, StorageError> {
        self.compare_and_set_with_outbox(
            expected,
            value,
            &HistoryChange::everything(value),
            &OutboxWrite::default(),
        )
        .await
    }

    /// Fulfillments in `partitions` whose stall watch ran out by `now`,
    /// with the time it was set to, at most `max`.
    async fn stalled(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(FulfillmentKey, DateTime<Utc>)>, StorageError>;

    /// Ends a stall: if `key`'s watch is still set to `until`, clears it
    /// and queues `fired`'s deliveries in one atomic step, and answers
    /// true. False when an apply moved the watch since (the stall is
    /// over) or another process fired it: each stall fires once.
    async fn fire_stall(
        &self,
        key: &FulfillmentKey,
        until: DateTime<Utc>,
        fired: &OutboxWrite,
    ) -> Result<bool, StorageError>;

    /// The fulfillments of one order, by fulfillment reference.
    async fn fulfillments_of_order(
        &self,
        store: &str,
        order_ref: &str,
    ) -> Result<Vec<Fulfillment>, StorageError>;

    /// The orders of `store` with a fulfillment `fulfillment_ref`, sorted:
    /// for callers that name a fulfillment without its order (Shopify's
    /// GraphQL ids). May name an order whose fulfillment a crash left
    /// listed but unwritten; read the fulfillment to be sure.
    async fn orders_of_fulfillment(
        &self,
        store: &str,
        fulfillment_ref: &str,
    ) -> Result<Vec<String>, StorageError>;
}

/// Orders created through the Redo-style API.
#[async_trait]
pub trait Orders: Send + Sync {
    /// Stores a new order; false if its id or external id is taken.
    async fn create_order(&self, order: &Order) -> Result<bool, StorageError>;

    /// An order by our id or the client's.
    async fn order(&self, store: &str, id: &str) -> Result<Option<Order>, StorageError>;

    /// Deletes the order our id or the client's names, under both ids, in
    /// one atomic step, and answers what it was; `None` when no order has
    /// that id. Its fulfillments stay: they hold the tracking news accepted
    /// for the order's reference, from whichever provider sent it.
    async fn delete_order(&self, store: &str, id: &str) -> Result<Option<Order>, StorageError>;
}

/// Numbers handed out in order, for ids a client expects to be numeric
/// (Shopify's event ids).
#[async_trait]
pub trait Sequences: Send + Sync {
    /// The next number of a named sequence, from 1.
    async fn next_in_sequence(&self, name: &str) -> Result<u64, StorageError>;
}

/// The automation outbox: deliveries due, settled, listed and replayed.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// The deliveries at the head of their queues in `partitions` that are
    /// due by `now`, leaving out `skip` (in flight), at most `max`; and
    /// when the earliest head that is not due yet will be.
    async fn due_deliveries(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        skip: &BTreeSet<String>,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<DateTime<Utc>>), StorageError>;

    /// Stores a delivery after an attempt; delivered or dead, it leaves
    /// its queue and the next one in the queue becomes due.
    async fn settle_delivery(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError>;

    /// Forgets delivered messages delivered before `before`.
    async fn forget_delivered(&self, before: DateTime<Utc>) -> Result<(), StorageError>;

    /// One delivery by id.
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StorageError>;

    /// Deliveries that pass `filter`, newest first.
    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StorageError>;

    /// Queues a dead letter (or, with `force`, a delivered message) again,
    /// due at `at`, behind what its queue holds now.
    async fn requeue_delivery(
        &self,
        id: &str,
        force: bool,
        at: DateTime<Utc>,
    ) -> Result<Requeued, StorageError>;
}

/// What came in: counts per provider and outcome, the words the status
/// maps did not know, and the recent-events feed.
#[async_trait]
pub trait Feed: Send + Sync {
    /// Adds `counts` of requests refused before reaching the log, in one
    /// write: refusals are tallied in memory and flushed now and then, so
    /// a flood of garbage costs the store nothing per request.
    async fn count_refusals(&self, counts: &Stats) -> Result<(), StorageError>;

    /// Counts per provider and outcome.
    async fn stats(&self) -> Result<Stats, StorageError>;

    /// The counts of events of `stores` that reached the log (accepted,
    /// duplicate, unmapped), summed: what an ops token scoped to them
    /// sees. Refused requests belong to no store, and events recorded
    /// before stores were counted to none either.
    async fn store_stats(&self, stores: &BTreeSet<String>) -> Result<Stats, StorageError>;

    /// Unmapped provider words with their counts, most frequent first.
    async fn unmapped_words(&self) -> Result<Vec<UnmappedWord>, StorageError>;

    /// The unmapped words of `stores`' events, most frequent first (since
    /// stores were counted).
    async fn store_unmapped_words(
        &self,
        stores: &BTreeSet<String>,
    ) -> Result<Vec<UnmappedWord>, StorageError>;

    /// Recently accepted events, newest first.
    async fn recent_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<CanonicalEvent>, StorageError>;
}

/// Whether a request fits its bucket, as [`RateLimits::take_token`]
/// answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit: its token is taken.
    Admitted,
    /// Over the limit: nothing was taken, and a token comes back after
    /// `retry_after`.
    Limited { retry_after: Duration },
}

/// The per-store, per-provider token buckets of `[stores.NAME.limits]`,
/// kept where every gateway process on the backend shares them.
#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Takes one token from `store`'s bucket for `provider` under `limit`
    /// (GCRA: a theoretical arrival time per bucket, on the backend's one
    /// clock), or answers how long until one comes back. An idle bucket
    /// is forgotten once full again.
    async fn take_token(
        &self,
        store: &str,
        provider: Provider,
        limit: &RateLimit,
    ) -> Result<Admission, StorageError>;
}

/// One step of GCRA at `now` for a bucket whose theoretical arrival time
/// is `tat` (none: a full bucket), both in microseconds of one clock: the
/// new arrival time to keep, or how long until a token comes back. The
/// memory backend runs it in Rust; the Redis script is the same steps.
pub fn gcra(now: u64, tat: Option<u64>, limit: &RateLimit) -> Result<u64, Duration> {
    let interval = u64::try_from(limit.interval.as_micros()).unwrap_or(u64::MAX);
    let tat = tat.unwrap_or(now).max(now);
    let next = tat.saturating_add(interval);
    let allowed_from = next.saturating_sub(interval.saturating_mul(u64::from(limit.burst)));
    if now < allowed_from {
        Err(Duration::from_micros(allowed_from - now))
    } else {
        Ok(next)
    }
}

/// Calls that do in one round trip what the traits above do in several.
/// They exist for speed only: each has a default body built from the
/// plain calls, which the memory backend keeps and the Redis backend
/// overrides.
#[async_trait]
pub trait Batched: EventLog + Fulfillments + Orders {
    /// Enough of `event`'s fulfillment to apply the event to it: all but
    /// the history, which only a retraction needs, and of the applied set
    /// only whether it holds this event. A backend that keeps the history
    /// apart reads less this way, so an apply does not cost more as the
    /// history grows.
    async fn fulfillment_to_apply(
        &self,
        event: &CanonicalEvent,
    ) -> Result<Option<Versioned<Fulfillment>>, StorageError> {
        self.fulfillment(&event.key).await
    }

    /// [`Batched::fulfillment_to_apply`] for several fulfillments at once,
    /// each given with the events about to be applied to it in order (none
    /// a retraction), so a backend can read them all in one round trip.
    async fn fulfillments_to_apply(
        &self,
        groups: &[Vec<&CanonicalEvent>],
    ) -> Result<Vec<Option<Versioned<Fulfillment>>>, StorageError> {
        // The whole fulfillment: its applied set answers for every event
        // of the group, which `fulfillment_to_apply` promises for one.
        let mut read = Vec::with_capacity(groups.len());
        for group in groups {
            read.push(match group.first() {
                Some(event) => self.fulfillment(&event.key).await?,
                None => None,
            });
        }
        Ok(read)
    }

    /// Several [`Fulfillments::compare_and_set_with_outbox`] writes, each atomic
    /// on its own, in one round trip where the backend can; answers which
    /// were written.
    async fn compare_and_set_many(
        &self,
        writes: &[FulfillmentWrite<'_>],
    ) -> Result<Vec<bool>, StorageError> {
        let mut written = Vec::with_capacity(writes.len());
        for w in writes {
            written.push(
                self.compare_and_set_with_outbox(w.expected, w.value, w.change, w.fired)
                    .await?,
            );
        }
        Ok(written)
    }

    /// [`EventLog::claim_and_append`], then, only if the claim is new,
    /// [`Fulfillments::compare_and_set_with_outbox`] of `write`: the event
    /// applied before the answer (Redo's paths). Answers the claim and
    /// whether `write` was written; the event is in the log either way. A
    /// backend that can do both in one step saves those paths a round trip.
    async fn claim_append_and_set(
        &self,
        event: &CanonicalEvent,
        write: FulfillmentWrite<'_>,
    ) -> Result<(Claim, bool), StorageError> {
        let claim = self.claim_and_append(event).await?;
        if claim != Claim::Accepted {
            return Ok((claim, false));
        }
        let written = self
            .compare_and_set_with_outbox(write.expected, write.value, write.change, write.fired)
            .await?;
        Ok((claim, written))
    }

    /// The whole fulfillment `fulfillment_ref` of the order `order_id`
    /// names (our id or the client's): all a shipment status needs before
    /// it is applied. A backend across the network answers in one round
    /// trip when `order_id` is the client's, as it mostly is.
    async fn order_fulfillment(
        &self,
        store: &str,
        order_id: &str,
        fulfillment_ref: &str,
    ) -> Result<OrderFulfillment, StorageError> {
        let Some(order) = self.order(store, order_id).await? else {
            return Ok(OrderFulfillment::NoOrder);
        };
        let key = FulfillmentKey {
            store: store.to_owned(),
            order_ref: order.external_id,
            fulfillment_ref: fulfillment_ref.to_owned(),
        };
        let found = self.fulfillment(&key).await?;
        Ok(OrderFulfillment::of(key, found))
    }
}

/// The gateway's durable state: every capability, behind one handle that
/// each part of the system narrows to what it uses.
#[async_trait]
pub trait Storage:
    EventLog + Fulfillments + Orders + Sequences + Outbox + Feed + Batched + RateLimits + 'static
{
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

/// Another handle on the store `opened` from the same settings, whose I/O
/// runs on the calling runtime. On Redis each HTTP worker thread and the
/// workers' lower-priority thread get their own connection: a request's
/// round trip stays on its thread, and a worker's batch never queues ahead
/// of a webhook's claim. The memory store lives in this process and is
/// shared as it is.
pub async fn reopen(
    settings: &Settings,
    opened: &Arc<dyn Storage>,
) -> Result<Arc<dyn Storage>, StorageError> {
    match settings.storage.backend {
        Backend::Memory => Ok(opened.clone()),
        Backend::Redis => open(settings).await,
    }
}
