//! The embedded backend: everything in this process's memory, so a bare
//! machine runs shipgate with no services. Lost on restart, which the
//! server says at start-up. One mutex guards it all: every operation is a
//! few map lookups and never awaits while holding it.

mod outbox;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{add, sorted_words};
use super::{
    gcra, Admission, Batched, Claim, EventFilter, EventLog, Feed, Fulfillments, LogEntry,
    LogPosition, Orders, Outbox, Outcome, RateLimits, Sequences, Stats, Storage, StorageError,
    UnmappedWord, Versioned,
};
use crate::canonical::{CanonicalEvent, EventId, EventKind, FulfillmentKey, Provider};
use crate::config::{RateLimit, StorageSettings};
use crate::domain::{
    Delivery, DeliveryFilter, Fulfillment, HistoryChange, Order, OutboxWrite, Requeued,
};

/// The in-process storage backend.
pub struct MemoryStorage {
    state: Mutex<State>,
    appended: Notify,
    partitions: u32,
    dedup_ttl: Duration,
    recent_capacity: usize,
    /// The rate limits' clock: microseconds since this.
    started: Instant,
}

/// A dedup claim. A delivery id counts for its own fulfillment only, as on
/// Redis, where that is the scope a claim can take atomically with the
/// append on a Cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DedupClaim {
    Delivery(FulfillmentKey, String),
    Content(String),
}

#[derive(Default)]
struct State {
    dedup: HashMap<DedupClaim, (EventId, Instant)>,
    claims_since_sweep: usize,
    logs: Vec<Partition>,
    leases: HashMap<u32, (String, Instant)>,
    fulfillments: BTreeMap<FulfillmentKey, Versioned<Fulfillment>>,
    orders: HashMap<(String, String), Order>,
    order_ids: HashMap<(String, String), String>,
    sequences: HashMap<String, u64>,
    stats: Stats,
    unmapped: BTreeMap<(Provider, String), u64>,
    /// The counts and words of events that reached the log, by store.
    store_stats: BTreeMap<String, Stats>,
    store_unmapped: BTreeMap<(String, Provider, String), u64>,
    recent: VecDeque<CanonicalEvent>,
    outbox: outbox::Outbox,
    /// Each limited bucket's theoretical arrival time (see [`gcra`]); one
    /// per configured store and provider, so never swept.
    buckets: HashMap<(String, Provider), u64>,
}

#[derive(Default)]
struct Partition {
    next_seq: u64,
    entries: VecDeque<(u64, CanonicalEvent)>,
}

impl MemoryStorage {
    /// An empty store shaped by the storage settings.
    pub fn new(settings: &StorageSettings) -> Self {
        let state = State {
            logs: (0..settings.partitions)
                .map(|_| Partition::default())
                .collect(),
            outbox: outbox::Outbox::new(settings.partitions),
            ..State::default()
        };
        Self {
            state: Mutex::new(state),
            appended: Notify::new(),
            partitions: settings.partitions,
            dedup_ttl: settings.dedup_ttl,
            recent_capacity: settings.recent_events,
            started: Instant::now(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_entries(&self, partitions: &[u32], max: usize) -> Vec<LogEntry> {
        let state = self.state();
        let mut out = Vec::new();
        for &p in partitions {
            let Some(log) = state.logs.get(p as usize) else {
                continue;
            };
            for (seq, event) in log.entries.iter().take(max - out.len()) {
                out.push(LogEntry {
                    position: LogPosition {
                        partition: p,
                        entry: seq.to_string(),
                    },
                    event: event.clone(),
                });
            }
            if out.len() >= max {
                break;
            }
        }
        out
    }
}

impl State {
    fn bump(&mut self, provider: Provider, outcome: Outcome) {
        add(&mut self.stats, provider, outcome, 1);
    }

    /// Counts an event that reached the log, in the totals and its store's.
    fn bump_event(&mut self, event: &CanonicalEvent, outcome: Outcome) {
        self.bump(event.provider, outcome);
        let store = self.store_stats.entry(event.key.store.clone()).or_default();
        add(store, event.provider, outcome, 1);
    }

    fn claimed_by(&self, claim: &DedupClaim, now: Instant) -> Option<EventId> {
        self.dedup
            .get(claim)
            .filter(|(_, expires)| *expires > now)
            .map(|(id, _)| *id)
    }
}

#[async_trait]
impl EventLog for MemoryStorage {
    async fn claim_and_append(&self, event: &CanonicalEvent) -> Result<Claim, StorageError> {
        let now = Instant::now();
        let mut state = self.state();
        let claims = [
            event
                .dedup_key
                .delivery
                .as_ref()
                .map(|d| DedupClaim::Delivery(event.key.clone(), d.clone())),
            Some(DedupClaim::Content(event.dedup_key.fingerprint.clone())),
        ];
        let pairing = &event.dedup_key.pairing;
        let paired = |key: &String| DedupClaim::Delivery(event.key.clone(), key.clone());
        let watched: Vec<DedupClaim> = pairing.watch.iter().map(paired).collect();
        if let Some(original) = claims
            .iter()
            .flatten()
            .chain(&watched)
            .find_map(|c| state.claimed_by(c, now))
        {
            state.bump_event(event, Outcome::Duplicate);
            return Ok(Claim::Duplicate { original });
        }
        state.claims_since_sweep += 1;
        if state.claims_since_sweep >= 4096 {
            state.claims_since_sweep = 0;
            state.dedup.retain(|_, (_, expires)| *expires > now);
        }
        for claim in claims
            .into_iter()
            .flatten()
            .chain(pairing.mark.as_ref().map(paired))
        {
            state.dedup.insert(claim, (event.id, now + self.dedup_ttl));
        }
        let log = &mut state.logs[event.key.partition(self.partitions) as usize];
        log.next_seq += 1;
        let seq = log.next_seq;
        log.entries.push_back((seq, event.clone()));
        state.bump_event(event, Outcome::Accepted);
        if event.kind == EventKind::Unmapped {
            state.bump_event(event, Outcome::Unmapped);
            *state
                .unmapped
                .entry((event.provider, event.raw_status.clone()))
                .or_default() += 1;
            *state
                .store_unmapped
                .entry((
                    event.key.store.clone(),
                    event.provider,
                    event.raw_status.clone(),
                ))
                .or_default() += 1;
        }
        state.recent.push_front(event.clone());
        state.recent.truncate(self.recent_capacity);
        drop(state);
        self.appended.notify_waiters();
        Ok(Claim::Accepted)
    }

    async fn lease_partitions(
        &self,
        worker: &str,
        ttl: Duration,
    ) -> Result<Vec<u32>, StorageError> {
        let now = Instant::now();
        let mut state = self.state();
        let mut held = Vec::new();
        for p in 0..self.partitions {
            let free = match state.leases.get(&p) {
                None => true,
                Some((holder, expires)) => holder == worker || *expires <= now,
            };
            if free {
                state.leases.insert(p, (worker.to_owned(), now + ttl));
                held.push(p);
            }
        }
        Ok(held)
    }

    async fn release_partitions(&self, worker: &str) -> Result<(), StorageError> {
        self.state()
            .leases
            .retain(|_, (holder, _)| holder != worker);
        Ok(())
    }

    async fn held_partitions(&self, worker: &str) -> Result<Vec<u32>, StorageError> {
        let now = Instant::now();
        let mut held: Vec<u32> = self
            .state()
            .leases
            .iter()
            .filter(|(_, (holder, expires))| holder == worker && *expires > now)
            .map(|(p, _)| *p)
            .collect();
        held.sort_unstable();
        Ok(held)
    }

    async fn read_log(
        &self,
        _worker: &str,
        partitions: &[u32],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let appended = self.appended.notified();
        tokio::pin!(appended);
        // Registered before looking, so an append in between still wakes us.
        appended.as_mut().enable();
        let entries = self.take_entries(partitions, max);
        if !entries.is_empty() {
            return Ok(entries);
        }
        let _ = tokio::time::timeout(wait, appended).await;
        Ok(self.take_entries(partitions, max))
    }

    async fn acknowledge(&self, positions: &[LogPosition]) -> Result<(), StorageError> {
        let mut state = self.state();
        for position in positions {
            let Ok(seq) = position.entry.parse::<u64>() else {
                continue;
            };
            if let Some(log) = state.logs.get_mut(position.partition as usize) {
                log.entries.retain(|(s, _)| *s != seq);
            }
        }
        Ok(())
    }

    async fn backlog(&self) -> Result<Vec<u64>, StorageError> {
        Ok(self
            .state()
            .logs
            .iter()
            .map(|l| l.entries.len() as u64)
            .collect())
    }
}

#[async_trait]
impl Fulfillments for MemoryStorage {
    async fn fulfillment(
        &self,
        key: &FulfillmentKey,
    ) -> Result<Option<Versioned<Fulfillment>>, StorageError> {
        Ok(self.state().fulfillments.get(key).cloned())
    }

    async fn compare_and_set_with_outbox(
        &self,
        expected: Option<u64>,
        value: &Fulfillment,
        change: &HistoryChange,
        fired: &OutboxWrite,
    ) -> Result<bool, StorageError> {
        let mut state = self.state();
        let current = state.fulfillments.get(&value.key);
        if current.map(|v| v.version) != expected {
            return Ok(false);
        }
        // The same merge as on Redis: the summary from `value`, the history
        // as stored plus `change`, whatever `value` itself holds of it.
        let mut stored = Fulfillment {
            history: Vec::new(),
            applied: Default::default(),
            ..value.clone()
        };
        if let Some(current) = current {
            stored.history = current.value.history.clone();
            stored.applied = current.value.applied.clone();
        }
        stored.absorb(change);
        let version = expected.map_or(1, |v| v + 1);
        state.fulfillments.insert(
            value.key.clone(),
            Versioned {
                version,
                value: stored,
            },
        );
        state.outbox.record(&value.key, fired);
        Ok(true)
    }

    async fn stalled(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(FulfillmentKey, DateTime<Utc>)>, StorageError> {
        Ok(self.state().outbox.stalled(partitions, now, max))
    }

    async fn fire_stall(
        &self,
        key: &FulfillmentKey,
        until: DateTime<Utc>,
        fired: &OutboxWrite,
    ) -> Result<bool, StorageError> {
        Ok(self.state().outbox.fire_stall(key, until, fired))
    }

    async fn fulfillments_of_order(
        &self,
        store: &str,
        order_ref: &str,
    ) -> Result<Vec<Fulfillment>, StorageError> {
        let from = FulfillmentKey {
            store: store.to_owned(),
            order_ref: order_ref.to_owned(),
            fulfillment_ref: String::new(),
        };
        Ok(self
            .state()
            .fulfillments
            .range(from..)
            .take_while(|(k, _)| k.store == store && k.order_ref == order_ref)
            .map(|(_, v)| v.value.clone())
            .collect())
    }

    async fn orders_of_fulfillment(
        &self,
        store: &str,
        fulfillment_ref: &str,
    ) -> Result<Vec<String>, StorageError> {
        // A scan: the embedded backend holds one process's worth.
        Ok(self
            .state()
            .fulfillments
            .keys()
            .filter(|k| k.store == store && k.fulfillment_ref == fulfillment_ref)
            .map(|k| k.order_ref.clone())
            .collect())
    }
}

#[async_trait]
impl Orders for MemoryStorage {
    async fn create_order(&self, order: &Order) -> Result<bool, StorageError> {
        let mut state = self.state();
        let store = order.store.clone();
        let taken = [&order.id, &order.external_id].iter().any(|id| {
            state
                .order_ids
                .contains_key(&(store.clone(), (*id).clone()))
        });
        if taken {
            return Ok(false);
        }
        for id in [&order.id, &order.external_id] {
            state
                .order_ids
                .insert((store.clone(), id.clone()), order.id.clone());
        }
        state
            .orders
            .insert((store, order.id.clone()), order.clone());
        Ok(true)
    }

    async fn order(&self, store: &str, id: &str) -> Result<Option<Order>, StorageError> {
        let state = self.state();
        Ok(state
            .order_ids
            .get(&(store.to_owned(), id.to_owned()))
            .and_then(|ours| state.orders.get(&(store.to_owned(), ours.clone())))
            .cloned())
    }

    async fn delete_order(&self, store: &str, id: &str) -> Result<Option<Order>, StorageError> {
        let mut state = self.state();
        let Some(ours) = state
            .order_ids
            .get(&(store.to_owned(), id.to_owned()))
            .cloned()
        else {
            return Ok(None);
        };
        let order = state.orders.remove(&(store.to_owned(), ours));
        if let Some(order) = &order {
            for id in [&order.id, &order.external_id] {
                state.order_ids.remove(&(store.to_owned(), id.clone()));
            }
        }
        Ok(order)
    }
}

#[async_trait]
impl Sequences for MemoryStorage {
    async fn next_in_sequence(&self, name: &str) -> Result<u64, StorageError> {
        let mut state = self.state();
        let n = state.sequences.entry(name.to_owned()).or_default();
        *n += 1;
        Ok(*n)
    }
}

#[async_trait]
impl Outbox for MemoryStorage {
    async fn due_deliveries(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        skip: &BTreeSet<String>,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<DateTime<Utc>>), StorageError> {
        Ok(self.state().outbox.due(partitions, now, skip, max))
    }

    async fn settle_delivery(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.state().outbox.settle(delivery, now);
        Ok(())
    }

    async fn forget_delivered(&self, before: DateTime<Utc>) -> Result<(), StorageError> {
        self.state().outbox.forget_delivered(before);
        Ok(())
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StorageError> {
        Ok(self.state().outbox.delivery(id))
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StorageError> {
        Ok(self.state().outbox.deliveries(filter))
    }

    async fn requeue_delivery(
        &self,
        id: &str,
        force: bool,
        at: DateTime<Utc>,
    ) -> Result<Requeued, StorageError> {
        Ok(self.state().outbox.requeue(id, force, at))
    }
}

#[async_trait]
impl Feed for MemoryStorage {
    async fn count_refusals(&self, counts: &Stats) -> Result<(), StorageError> {
        let mut state = self.state();
        for (provider, outcomes) in counts {
            for (outcome, n) in outcomes {
                *state
                    .stats
                    .entry(*provider)
                    .or_default()
                    .entry(*outcome)
                    .or_default() += n;
            }
        }
        Ok(())
    }

    async fn stats(&self) -> Result<Stats, StorageError> {
        Ok(self.state().stats.clone())
    }

    async fn store_stats(&self, stores: &BTreeSet<String>) -> Result<Stats, StorageError> {
        let state = self.state();
        let mut stats = Stats::new();
        for counts in stores.iter().filter_map(|s| state.store_stats.get(s)) {
            for (provider, outcomes) in counts {
                for (outcome, n) in outcomes {
                    add(&mut stats, *provider, *outcome, *n);
                }
            }
        }
        Ok(stats)
    }

    async fn store_unmapped_words(
        &self,
        stores: &BTreeSet<String>,
    ) -> Result<Vec<UnmappedWord>, StorageError> {
        let mut counts: BTreeMap<(Provider, String), u64> = BTreeMap::new();
        for ((store, provider, word), n) in &self.state().store_unmapped {
            if stores.contains(store) {
                *counts.entry((*provider, word.clone())).or_default() += n;
            }
        }
        Ok(sorted_words(counts))
    }

    async fn unmapped_words(&self) -> Result<Vec<UnmappedWord>, StorageError> {
        Ok(sorted_words(self.state().unmapped.clone()))
    }

    async fn recent_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<CanonicalEvent>, StorageError> {
        Ok(self
            .state()
            .recent
            .iter()
            .filter(|e| filter.before.is_none_or(|before| e.id < before))
            .filter(|e| filter.provider.is_none_or(|p| e.provider == p))
            .filter(|e| filter.store.as_deref().is_none_or(|s| e.key.store == s))
            .filter(|e| {
                filter
                    .scope
                    .as_ref()
                    .is_none_or(|s| s.contains(&e.key.store))
            })
            .take(filter.limit)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl RateLimits for MemoryStorage {
    async fn take_token(
        &self,
        store: &str,
        provider: Provider,
        limit: &RateLimit,
    ) -> Result<Admission, StorageError> {
        let now = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut state = self.state();
        let bucket = (store.to_owned(), provider);
        match gcra(now, state.buckets.get(&bucket).copied(), limit) {
            Ok(tat) => {
                state.buckets.insert(bucket, tat);
                Ok(Admission::Admitted)
            }
            Err(retry_after) => Ok(Admission::Limited { retry_after }),
        }
    }
}

/// The plain calls one after the other: in-process, a round trip costs nothing.
impl Batched for MemoryStorage {}

#[async_trait]
impl Storage for MemoryStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        drop(self.state());
        Ok(())
    }
}
