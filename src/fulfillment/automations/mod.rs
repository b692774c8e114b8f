//! Automations: what an applied event fires, and getting it to the
//! subscribers.
//!
//! - [`rules`]: the `[[automations]]` rules and what they fire on;
//! - planning (here): the deliveries an apply causes, made at apply time
//!   with the fulfillment as it then is, and recorded with the state;
//! - [`derived`]: the events no provider sends (ETA moves, stalls);
//! - [`outbox`]: deliveries, attempts, dead letters, per-fulfillment
//!   queues (kept by the storage backends, written with the state);
//! - [`dispatcher`] and [`delivery`]: sending, retrying, dead-lettering;
//! - [`signing`]: Standard Webhooks signatures.

mod delivery;
mod derived;
mod dispatcher;
mod rules;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

pub use derived::StallScanner;
pub use dispatcher::Dispatcher;
pub use rules::Rules;

use super::view::{timestamp, FulfillmentView};
use super::Recorder;
use crate::canonical::{AutomationEvent, CanonicalEvent, Direction, ShipmentStatus};
use crate::config::{CoreSettings, DeliverySettings, Settings};
use crate::domain::{
    Delivery, DeliveryFilter, DeliveryState, Effects, Fulfillment, OutboxWrite, Requeued,
    StallWatch, Trigger,
};
use crate::storage::{Storage, StorageError};

/// Most dead letters one bulk replay queues again.
const BULK_REPLAY_LIMIT: usize = 10_000;

/// This process's automations: the rules, the storage that keeps the
/// outbox, and the wake-up of the local dispatcher. Cheap to clone.
#[derive(Clone)]
pub struct Automations {
    rules: Arc<Rules>,
    storage: Arc<dyn Storage>,
    core: CoreSettings,
    replay_pace: Duration,
    wake: Arc<Notify>,
}

/// The body of a delivery.
#[derive(Serialize)]
struct Payload<'a> {
    /// `status` or `event`.
    #[serde(rename = "type")]
    kind: &'static str,
    trigger: Trigger,
    /// When the automation fired.
    at: String,
    store: &'a str,
    /// The order the fulfillment belongs to: the fulfillment shape does not
    /// carry it, and a stall has no event that would.
    order: &'a str,
    /// `forward` or `return`: Redo's fulfillment shape has no place for it.
    direction: Direction,
    fulfillment: FulfillmentView,
    /// The applied event that fired it; `null` for a stall.
    event: Option<&'a CanonicalEvent>,
}

impl Automations {
    /// The automations of `settings`, keeping deliveries in `storage`.
    pub fn new(settings: &Settings, storage: Arc<dyn Storage>) -> Self {
        Self {
            rules: Arc::new(Rules::new(settings.automations.clone())),
            storage,
            core: settings.core.clone(),
            replay_pace: settings.delivery.replay_pace,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The same automations keeping deliveries through another handle on
    /// the same store (see [`crate::storage::reopen`]); deliveries queued
    /// through either still wake the one dispatcher.
    pub fn with_storage(&self, storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            ..self.clone()
        }
    }

    /// The configured rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Where deliveries are kept.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// What an applied event fires (DESIGN.md apply rules 4 and 5): the
    /// status it changed to, the event it is, and the events its ETA move
    /// derives; plus the fulfillment's new stall watch. The caller writes
    /// it with the state ([`Storage::compare_and_set_with_outbox`]).
    pub fn plan(
        &self,
        fulfillment: &Fulfillment,
        event: &CanonicalEvent,
        effects: &Effects,
        now: DateTime<Utc>,
    ) -> OutboxWrite {
        let deliveries = derived::triggers(effects, self.core.derive_eta_events)
            .into_iter()
            .flat_map(|trigger| self.deliveries(fulfillment, trigger, Some(event), now))
            .collect();
        let stall = self
            .rules
            .listen_for(Trigger::Event(AutomationEvent::StalledInTransit))
            .then(|| {
                if fulfillment.status == ShipmentStatus::InTransit {
                    StallWatch::Until(fulfillment.updated_at + self.stall_after())
                } else {
                    StallWatch::Clear
                }
            });
        OutboxWrite { deliveries, stall }
    }

    /// Whether an apply with `effects` fires a delivery for `fulfillment`
    /// as it is after the apply. A delivery carries the whole fulfillment,
    /// history and all, so only then does the apply need to have read all
    /// of it.
    pub fn fires_deliveries(&self, fulfillment: &Fulfillment, effects: &Effects) -> bool {
        let (store, direction) = (&fulfillment.key.store, fulfillment.direction);
        derived::triggers(effects, self.core.derive_eta_events)
            .into_iter()
            .any(|trigger| {
                self.rules
                    .firing(store, direction, trigger)
                    .next()
                    .is_some()
            })
    }

    /// One delivery per rule that `trigger` fires for this fulfillment.
    fn deliveries(
        &self,
        fulfillment: &Fulfillment,
        trigger: Trigger,
        event: Option<&CanonicalEvent>,
        now: DateTime<Utc>,
    ) -> Vec<Delivery> {
        let key = &fulfillment.key;
        let rules: Vec<_> = self
            .rules
            .firing(&key.store, fulfillment.direction, trigger)
            .collect();
        if rules.is_empty() {
            return Vec::new();
        }
        let payload = Payload {
            kind: trigger.kind(),
            trigger,
            at: timestamp(now),
            store: &key.store,
            order: &key.order_ref,
            direction: fulfillment.direction,
            fulfillment: FulfillmentView::redo(fulfillment),
            event,
        };
        // serde_json fails only on maps with non-string keys; none here.
        let body = serde_json::to_string(&payload).expect("a delivery payload serialises");
        rules
            .into_iter()
            .map(|rule| Delivery {
                id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
                rule: rule.name.clone(),
                fulfillment: key.clone(),
                trigger,
                created_at: now,
                state: DeliveryState::Pending,
                next_attempt_at: Some(now),
                attempts: Vec::new(),
                round_start: 0,
                body: body.clone(),
            })
            .collect()
    }

    /// Tells this process's dispatcher that `fired` was written, so its
    /// deliveries go out at once rather than at the next look.
    pub fn queued(&self, fired: &OutboxWrite) {
        if !fired.deliveries.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Queues one dead letter again (a delivered message only when
    /// `force`), to go out now.
    pub async fn replay(&self, id: &str, force: bool) -> Result<Requeued, StorageError> {
        let requeued = self.storage.requeue_delivery(id, force, Utc::now()).await?;
        if matches!(requeued, Requeued::Queued(_)) {
            self.wake.notify_one();
        }
        Ok(requeued)
    }

    /// Queues again every dead letter that passes `filter`, one per
    /// `delivery.replay_pace`; answers the ids queued. Replaying twice
    /// queues nothing the second time: queued letters are no longer dead.
    pub async fn replay_dead_letters(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<String>, StorageError> {
        let filter = DeliveryFilter {
            state: Some(DeliveryState::Dead),
            limit: BULK_REPLAY_LIMIT,
            ..filter.clone()
        };
        let start = Utc::now();
        let mut queued = Vec::new();
        for letter in self.storage.deliveries(&filter).await?.into_iter().rev() {
            let at = start + self.replay_pace * u32::try_from(queued.len()).unwrap_or(u32::MAX);
            if let Requeued::Queued(d) =
                self.storage.requeue_delivery(&letter.id, false, at).await?
            {
                queued.push(d.id);
            }
        }
        if !queued.is_empty() {
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// The dispatcher of the process whose worker is `worker`: it sends
    /// the deliveries of the partitions that worker holds, with `settings`.
    pub fn dispatcher(
        &self,
        settings: &DeliverySettings,
        worker: &str,
        grace: Duration,
        recorder: Arc<dyn Recorder>,
    ) -> Result<Dispatcher, reqwest::Error> {
        Dispatcher::new(self.clone(), settings, worker, grace, recorder)
    }

    fn stall_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.core.stall_after).unwrap_or(chrono::Duration::MAX)
    }

    fn wake(&self) -> &Notify {
        &self.wake
    }
}
