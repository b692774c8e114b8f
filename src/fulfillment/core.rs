//! The fulfillment core: applies canonical events to fulfillment state in
//! storage, with compare-and-set so that the workers and the inline (Redo,
//! Carriyo order, Shopify REST) paths never lose each other's updates, and
//! records the automations each apply fires.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::instrument;

use super::automations::Automations;
use crate::canonical::{CanonicalEvent, EventKind, FulfillmentKey};
use crate::domain::{Applied, Fulfillment, HistoryChange, OutboxWrite};
use crate::storage::{Batched, Claim, FulfillmentWrite, StorageError, Versioned};

/// Applies events to fulfillments; cheap to clone.
#[derive(Clone)]
pub struct FulfillmentCore {
    storage: Arc<dyn Batched>,
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
    pub fn new(storage: Arc<dyn Batched>, automations: Automations) -> Self {
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
    /// given: all the fulfillments are read in one round trip and written
    /// in another, one compare-and-set each. A fulfillment whose write
    /// lost to another writer, or that needs its whole history (a
    /// retraction, or deliveries to send, which carry it), has its events
    /// applied one by one instead. Safe to call again for the same events.
    pub async fn apply_logged(&self, events: &[&CanonicalEvent]) -> Result<(), StorageError> {
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
        let read = self.storage.fulfillments_to_apply(&together).await?;
        let now = Utc::now();
        let mut planned = Vec::new();
        for (group, current) in together.into_iter().zip(read) {
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
        let written = self.storage.compare_and_set_many(&writes).await?;
        for ((group, write), ok) in planned.iter().zip(written) {
            if ok {
                self.automations.queued(&write.fired);
            } else {
                one_by_one.push(group.clone());
            }
        }
        for group in one_by_one {
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
            if self.automations.fires_deliveries(&value, &effects) {
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

    /// Records `event` (claims and appends it, as ingest does) and applies
    /// it to `current`, the whole fulfillment as the caller just read it,
    /// in one storage step: an update applied before the answer costs one
    /// round trip after the read, not two. When the fulfillment changed
    /// since, it is read afresh and applied again. A duplicate is not
    /// applied: the answer is `current` as it is.
    #[instrument(level = "debug", skip_all, fields(event = %event.id, fulfillment = %event.key))]
    pub async fn record_over(
        &self,
        event: &CanonicalEvent,
        current: Versioned<Fulfillment>,
    ) -> Result<(Claim, Fulfillment), StorageError> {
        let now = Utc::now();
        let mut fulfillment = current.value.clone();
        let Applied::Recorded(effects) = fulfillment.apply(event, now) else {
            // Withdrawn before it came: recorded, and nothing to write.
            let claim = self.storage.claim_and_append(event).await?;
            return Ok((claim, current.value));
        };
        let fired = self.automations.plan(&fulfillment, event, &effects, now);
        let write = FulfillmentWrite {
            expected: Some(current.version),
            value: &fulfillment,
            change: &effects.history,
            fired: &fired,
        };
        match self.storage.claim_append_and_set(event, write).await? {
            (claim @ Claim::Duplicate { .. }, _) => Ok((claim, current.value)),
            (claim, true) => {
                self.automations.queued(&fired);
                Ok((claim, fulfillment))
            }
            (claim, false) => {
                tracing::debug!("fulfillment changed under us; applying again");
                let fresh = self.storage.fulfillment(&event.key).await?;
                let applied = self.apply_from(event, fresh, Reading::Whole).await?;
                Ok((claim, applied.fulfillment))
            }
        }
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
                && self.automations.fires_deliveries(&fulfillment, effects)
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
