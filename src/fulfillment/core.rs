//! The fulfillment core: applies canonical events to fulfillment state in
//! storage, with compare-and-set so that the workers and the inline (Redo,
//! Carriyo order, Shopify REST) paths never lose each other's updates, and
//! records the automations each apply fires.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::instrument;

use super::automations::{Automations, OutboxWrite};
use super::state::{Applied, Fulfillment, HistoryChange};
use crate::canonical::{CanonicalEvent, EventKind, FulfillmentKey};
use crate::storage::{FulfillmentWrite, Storage, StorageError, Versioned};

/// Applies events to fulfillments; cheap to clone.
#[derive(Clone)]
pub struct FulfillmentCore {
    storage: Arc<dyn Storage>,
    automations: Automations,
}

/// A fulfillment after an apply, and what the apply did.
#[derive(Debug, Clone)]
pub struct ApplyResult {
    pub fulfillment: Fulfillment,
    pub applied: Applied,
}

/// One fulfillment's write of [`FulfillmentCore::apply_logged`].
struct PlannedWrite {
    expected: Option<u64>,
    value: Fulfillment,
    change: HistoryChange,
    /// The stall watch of the state after the group's last event (a group
    /// that fires deliveries is applied one by one).
    fired: OutboxWrite,
}

/// How much of a fulfillment an apply reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// What the event needs ([`Storage::fulfillment_to_apply`]).
    ToApply,
    /// All of it, history included.
    Whole,
}

/// The fulfillments a worker wrote last, as it wrote them (summary and
/// version, no history), so that its next batch need not read them back:
/// a worker holds its partitions alone but for the inline paths, and a
/// write over a summary they changed since fails its compare-and-set and
/// is read afresh. What it holds is true of storage at its version, so an
/// event it calls applied or withdrawn is, whatever the version now.
/// Bounded: two generations of at most [`LastWritten::GENERATION`] each,
/// the older dropped when the newer fills.
#[derive(Default)]
pub struct LastWritten {
    newer: HashMap<FulfillmentKey, Versioned<Fulfillment>>,
    older: HashMap<FulfillmentKey, Versioned<Fulfillment>>,
}

impl LastWritten {
    /// At about a kilobyte a summary, a few megabytes a generation.
    pub const GENERATION: usize = 4096;

    fn get(&mut self, key: &FulfillmentKey) -> Option<Versioned<Fulfillment>> {
        if let Some(found) = self.newer.get(key) {
            return Some(found.clone());
        }
        let found = self.older.remove(key)?;
        self.keep(key.clone(), found.clone());
        Some(found)
    }

    /// `value` was written over `expected` (and the history change, which
    /// is not kept: the summary is what a read would answer).
    fn remember(&mut self, expected: Option<u64>, mut value: Fulfillment) {
        value.history.clear();
        let key = value.key.clone();
        let version = crate::storage::version_after(expected);
        self.older.remove(&key);
        self.keep(key, Versioned { version, value });
    }

    fn keep(&mut self, key: FulfillmentKey, value: Versioned<Fulfillment>) {
        if self.newer.len() >= Self::GENERATION {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(key, value);
    }

    fn forget(&mut self, key: &FulfillmentKey) {
        self.newer.remove(key);
        self.older.remove(key);
    }

    /// Forgets everything: the partitions held changed, so what another
    /// process wrote meanwhile would only cost failed writes.
    pub fn clear(&mut self) {
        self.newer.clear();
        self.older.clear();
    }
}

/// Why a fulfillment could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("fulfillment {0} exists already")]
    Exists(FulfillmentKey),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl FulfillmentCore {
    /// A core over the given storage, firing `automations`.
    pub fn new(storage: Arc<dyn Storage>, automations: Automations) -> Self {
        Self {
            storage,
            automations,
        }
    }

    /// Applies one event, creating its fulfillment if this is the first
    /// news of it. Safe to call again for the same event. Reads only what
    /// the apply needs (see [`Storage::fulfillment_to_apply`]), so it
    /// answers what the apply did, not the fulfillment.
    pub async fn apply(&self, event: &CanonicalEvent) -> Result<Applied, StorageError> {
        let current = self.storage.fulfillment_to_apply(event).await?;
        Ok(self
            .apply_from(event, current, Reading::ToApply)
            .await?
            .applied)
    }

    /// Applies events read from the log, each fulfillment's in the order
    /// given: the fulfillments are read in one round trip (those in
    /// `written` need no read) and written in another, one
    /// compare-and-set each. A fulfillment whose write lost to another
    /// writer, or that needs its whole history (a retraction, or
    /// deliveries to send, which carry it), has its events applied one by
    /// one instead. Safe to call again for the same events.
    pub async fn apply_logged(
        &self,
        events: &[&CanonicalEvent],
        written: &mut LastWritten,
    ) -> Result<(), StorageError> {
        let mut groups: Vec<Vec<&CanonicalEvent>> = Vec::new();
        let mut group_of: HashMap<&FulfillmentKey, usize> = HashMap::new();
        for &event in events {
            let next = groups.len();
            let at = *group_of.entry(&event.key).or_insert(next);
            if at == next {
                groups.push(Vec::new());
            }
            groups[at].push(event);
        }
        let (together, mut one_by_one): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .partition(|group| group.iter().all(|e| e.kind != EventKind::Retraction));
        let (known, unknown): (Vec<_>, Vec<_>) = together
            .into_iter()
            .map(|group| {
                let current = group.first().and_then(|e| written.get(&e.key));
                (group, current)
            })
            .partition(|(_, current)| current.is_some());
        let unknown: Vec<Vec<&CanonicalEvent>> = unknown.into_iter().map(|(g, _)| g).collect();
        let read = self.storage.fulfillments_to_apply(&unknown).await?;
        let now = Utc::now();
        let mut planned = Vec::new();
        for (group, current) in known.into_iter().chain(unknown.into_iter().zip(read)) {
            match self.plan_together(&group, current, now) {
                Some(Some(write)) => planned.push((group, write)),
                Some(None) => {}
                None => one_by_one.push(group),
            }
        }
        let writes: Vec<FulfillmentWrite<'_>> = planned
            .iter()
            .map(|(_, w)| FulfillmentWrite {
                expected: w.expected,
                value: &w.value,
                change: &w.change,
                fired: &w.fired,
            })
            .collect();
        let outcomes = self.storage.compare_and_set_many(&writes).await?;
        for ((group, write), ok) in planned.into_iter().zip(outcomes) {
            if ok {
                self.automations.queued(&write.fired);
                written.remember(write.expected, write.value);
            } else {
                written.forget(&write.value.key);
                one_by_one.push(group);
            }
        }
        for group in one_by_one {
            if let Some(first) = group.first() {
                written.forget(&first.key);
            }
            for event in group {
                self.apply(event).await?;
            }
        }
        Ok(())
    }

    /// Applies `group` (one fulfillment's events) to `current` in memory
    /// and answers the one write that records them all: `Some(None)` when
    /// there is nothing to write (all applied before), `None` when the
    /// group must go one by one because a delivery fires and needs the
    /// whole fulfillment.
    fn plan_together(
        &self,
        group: &[&CanonicalEvent],
        current: Option<Versioned<Fulfillment>>,
        now: DateTime<Utc>,
    ) -> Option<Option<PlannedWrite>> {
        let first = group.first()?;
        let expected = current.as_ref().map(|v| v.version);
        let mut value = match current {
            Some(v) => v.value,
            None => Fulfillment::new(first.key.clone(), now),
        };
        let mut change = HistoryChange::default();
        let mut fired = None;
        for &event in group {
            let Applied::Recorded(effects) = value.apply(event, now) else {
                continue;
            };
            if self
                .automations
                .fires_deliveries(&value.key.store, &effects)
            {
                return None;
            }
            fired = Some(self.automations.plan(&value, event, &effects, now));
            change.extend(effects.history);
        }
        Some(fired.map(|fired| PlannedWrite {
            expected,
            value,
            change,
            fired,
        }))
    }

    /// [`apply`](Self::apply) starting from `current`, the whole
    /// fulfillment as the caller just read it, which saves reading it
    /// again; when it has changed since, the compare-and-set fails and it
    /// is read afresh. Answers the whole fulfillment after the apply.
    pub async fn apply_over(
        &self,
        event: &CanonicalEvent,
        current: Option<Versioned<Fulfillment>>,
    ) -> Result<ApplyResult, StorageError> {
        self.apply_from(event, current, Reading::Whole).await
    }

    #[instrument(level = "debug", skip_all, fields(event = %event.id, fulfillment = %event.key))]
    async fn apply_from(
        &self,
        event: &CanonicalEvent,
        mut current: Option<Versioned<Fulfillment>>,
        mut reading: Reading,
    ) -> Result<ApplyResult, StorageError> {
        loop {
            let expected = current.as_ref().map(|v| v.version);
            let mut fulfillment = match current {
                Some(v) => v.value,
                None => Fulfillment::new(event.key.clone(), Utc::now()),
            };
            let now = Utc::now();
            let applied = fulfillment.apply(event, now);
            let Applied::Recorded(effects) = &applied else {
                return Ok(ApplyResult {
                    fulfillment,
                    applied,
                });
            };
            if reading == Reading::ToApply
                && expected.is_some()
                && self
                    .automations
                    .fires_deliveries(&fulfillment.key.store, effects)
            {
                // The deliveries carry the whole fulfillment.
                reading = Reading::Whole;
                current = self.storage.fulfillment(&event.key).await?;
                continue;
            }
            let fired = self.automations.plan(&fulfillment, event, effects, now);
            if self
                .storage
                .compare_and_set_with_outbox(expected, &fulfillment, &effects.history, &fired)
                .await?
            {
                self.automations.queued(&fired);
                return Ok(ApplyResult {
                    fulfillment,
                    applied,
                });
            }
            tracing::debug!("fulfillment changed under us; applying again");
            current = match reading {
                Reading::ToApply => self.storage.fulfillment_to_apply(event).await?,
                Reading::Whole => self.storage.fulfillment(&event.key).await?,
            };
        }
    }

    /// Stores a fulfillment that must not exist yet (Redo's create).
    #[instrument(skip_all, fields(fulfillment = %fulfillment.key))]
    pub async fn create(&self, fulfillment: &Fulfillment) -> Result<(), CreateError> {
        if self
            .storage
            .compare_and_set_fulfillment(None, fulfillment)
            .await?
        {
            Ok(())
        } else {
            Err(CreateError::Exists(fulfillment.key.clone()))
        }
    }

    /// A fulfillment's current state.
    pub async fn get(&self, key: &FulfillmentKey) -> Result<Option<Fulfillment>, StorageError> {
        Ok(self.storage.fulfillment(key).await?.map(|v| v.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> FulfillmentKey {
        FulfillmentKey {
            store: "acme".into(),
            order_ref: "o".into(),
            fulfillment_ref: n.to_string(),
        }
    }

    #[test]
    fn last_written_answers_the_version_written_without_history() {
        let mut written = LastWritten::default();
        assert!(written.get(&key(1)).is_none());
        let mut value = Fulfillment::new(key(1), Utc::now());
        let entry = serde_json::json!({
            "event_id": "0190b1a0-0000-7000-8000-000000000001",
            "provider": "shopify",
            "kind": "status",
            "status": "in_transit",
            "raw_status": "in_transit",
            "occurred_at": "2026-11-21T13:14:00Z",
            "stale": false,
            "received_at": "2026-11-21T13:15:00Z"
        });
        value
            .history
            .push(serde_json::from_value(entry).expect("a history entry"));
        written.remember(Some(4), value);
        let got = written.get(&key(1)).expect("remembered");
        assert_eq!(got.version, 5);
        assert!(got.value.history.is_empty());
        written.remember(None, Fulfillment::new(key(2), Utc::now()));
        assert_eq!(written.get(&key(2)).map(|v| v.version), Some(1));
        written.forget(&key(1));
        assert!(written.get(&key(1)).is_none());
    }

    #[test]
    fn last_written_keeps_at_most_two_generations() {
        let mut written = LastWritten::default();
        let now = Utc::now();
        for n in 0..LastWritten::GENERATION * 3 {
            written.remember(None, Fulfillment::new(key(n), now));
            // The first stays in use, so it survives every turn-over.
            assert!(written.get(&key(0)).is_some(), "after {n}");
        }
        assert!(written.newer.len() + written.older.len() <= 2 * LastWritten::GENERATION);
        assert!(
            written.get(&key(1)).is_none(),
            "an unused old one is dropped"
        );
        assert!(written.get(&key(LastWritten::GENERATION * 3 - 1)).is_some());
        written.clear();
        assert!(written.get(&key(0)).is_none());
    }
}
