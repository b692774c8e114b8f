//! What an apply fires, and the events no provider sends (DESIGN.md apply
//! rules 4 and 5): `arriving_early` / `delayed` when the ETA moves, and
//! `stalled_in_transit` when an in-transit fulfillment hears nothing for
//! `core.stall_after`, once per stall.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::Automations;
use crate::canonical::{AutomationEvent, ShipmentStatus};
use crate::domain::{Effects, OutboxWrite, Trigger};
use crate::fulfillment::core::FulfillmentCore;
use crate::storage::StorageError;

/// Most stalled fulfillments handled in one scan.
const SCAN_BATCH: usize = 256;

/// The triggers an apply's effects fire, in order: the status it changed
/// to (a status that changes nothing, or is stale, fires nothing), the
/// event it is (every time), then the event its ETA move derives, unless
/// the event itself already said so.
pub(super) fn triggers(effects: &Effects, derive_eta_events: bool) -> Vec<Trigger> {
    let mut fired = Vec::new();
    if let Some((_, to)) = effects.status_change {
        fired.push(Trigger::Status(to));
    }
    if let Some(event) = effects.event {
        fired.push(Trigger::Event(event));
    }
    if let (true, Some((Some(before), after))) = (derive_eta_events, effects.eta_change) {
        let derived = if after < before {
            AutomationEvent::ArrivingEarly
        } else {
            AutomationEvent::Delayed
        };
        if effects.event != Some(derived) {
            fired.push(Trigger::Event(derived));
        }
    }
    fired
}

/// Finds in-transit fulfillments whose stall watch ran out and fires
/// `stalled_in_transit` for them, in the partitions this process's worker
/// holds (and storage fires each stall once even if two processes look).
pub struct StallScanner {
    core: FulfillmentCore,
    automations: Automations,
    worker: String,
    every: Duration,
}

impl StallScanner {
    /// A scanner for `worker`'s partitions that looks a few times per
    /// `stall_after`, so a stall is noticed soon after it begins, and at
    /// least every 30 s.
    pub fn new(
        core: FulfillmentCore,
        automations: Automations,
        worker: &str,
        stall_after: Duration,
    ) -> Self {
        Self {
            core,
            automations,
            worker: worker.to_owned(),
            every: (stall_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)),
        }
    }

    /// Scans until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let listening = self
            .automations
            .rules()
            .listen_for(Trigger::Event(AutomationEvent::StalledInTransit));
        if !listening {
            return;
        }
        while !shutdown.is_cancelled() {
            if let Err(e) = self.scan().await {
                tracing::warn!(error = %e, "cannot scan for stalled fulfillments");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    async fn scan(&self) -> Result<(), StorageError> {
        let now = Utc::now();
        let storage = self.automations.storage();
        let partitions = storage.held_partitions(&self.worker).await?;
        for (key, until) in storage.stalled(&partitions, now, SCAN_BATCH).await? {
            let write = match self.core.get(&key).await? {
                Some(f) if f.status == ShipmentStatus::InTransit => OutboxWrite {
                    deliveries: self.automations.deliveries(
                        &f,
                        Trigger::Event(AutomationEvent::StalledInTransit),
                        None,
                        now,
                    ),
                    stall: None,
                },
                _ => OutboxWrite::default(),
            };
            if storage.fire_stall(&key, until, &write).await? && !write.deliveries.is_empty() {
                tracing::info!(fulfillment = %key, "stalled in transit");
                self.automations.queued(&write);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(d: &str) -> chrono::NaiveDate {
        d.parse().unwrap()
    }

    #[test]
    fn a_status_change_fires_the_new_status_and_a_stale_or_same_one_nothing() {
        let changed = Effects {
            status_change: Some((ShipmentStatus::InTransit, ShipmentStatus::Delivered)),
            ..Effects::default()
        };
        assert_eq!(
            triggers(&changed, true),
            [Trigger::Status(ShipmentStatus::Delivered)]
        );
        let stale = Effects {
            stale: true,
            ..Effects::default()
        };
        assert!(triggers(&stale, true).is_empty());
        assert!(triggers(&Effects::default(), true).is_empty());
    }

    #[test]
    fn eta_moves_derive_arriving_early_and_delayed_when_switched_on() {
        let later = Effects {
            eta_change: Some((Some(date("2026-11-24")), date("2026-11-27"))),
            ..Effects::default()
        };
        assert_eq!(
            triggers(&later, true),
            [Trigger::Event(AutomationEvent::Delayed)]
        );
        assert!(triggers(&later, false).is_empty());
        let earlier = Effects {
            eta_change: Some((Some(date("2026-11-24")), date("2026-11-22"))),
            ..Effects::default()
        };
        assert_eq!(
            triggers(&earlier, true),
            [Trigger::Event(AutomationEvent::ArrivingEarly)]
        );
        let first_eta = Effects {
            eta_change: Some((None, date("2026-11-24"))),
            ..Effects::default()
        };
        assert!(
            triggers(&first_eta, true).is_empty(),
            "a first ETA is not a move"
        );
    }

    #[test]
    fn a_delayed_event_that_moves_the_eta_fires_delayed_once() {
        let effects = Effects {
            event: Some(AutomationEvent::Delayed),
            eta_change: Some((Some(date("2026-11-24")), date("2026-11-27"))),
            ..Effects::default()
        };
        assert_eq!(
            triggers(&effects, true),
            [Trigger::Event(AutomationEvent::Delayed)]
        );
    }
}
