//! A fulfillment's state and the rules for applying a canonical event to
//! it. Pure: no I/O, so every rule is tested directly; storage and
//! concurrency live in `core.rs`.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::canonical::{
    AutomationEvent, CanonicalEvent, Direction, EventId, EventKind, FulfillmentKey, Location,
    Provider, ShipmentStatus,
};

/// A line item shipped in a fulfillment (Redo's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub id: String,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Status,
    Event,
    Unmapped,
}

/// One entry of a fulfillment's tracking history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub event_id: EventId,
    pub provider: Provider,
    pub kind: EntryKind,
    /// The canonical word (a status or an event); `unknown` when unmapped.
    pub status: String,
    pub raw_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(with = "crate::canonical::time::rfc3339")]
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_delivery: Option<NaiveDate>,
    /// Arrived older than the status it would have replaced, so it changed
    /// nothing but the history.
    pub stale: bool,
    /// The provider's own id for the event (Shopify's FulfillmentEvent id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(with = "crate::canonical::time::rfc3339")]
    pub received_at: DateTime<Utc>,
    /// The provider API version the event came in (absent from entries
    /// recorded before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The estimated delivery as the provider's time, when it gave one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::canonical::time::rfc3339_option"
    )]
    pub estimated_delivery_at: Option<DateTime<Utc>>,
}

/// A provider event that was withdrawn; remembered so that a late
/// redelivery of it (or a delete that overtook its create) stays out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retracted {
    pub provider: Provider,
    pub source_id: String,
}

/// Everything the gateway knows about one fulfillment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfillment {
    pub key: FulfillmentKey,
    /// A return once any of its events said so; a record written before
    /// directions existed reads back as forward.
    #[serde(default)]
    pub direction: Direction,
    #[serde(with = "crate::canonical::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::canonical::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub status: ShipmentStatus,
    /// When the current status happened: the stale guard compares to it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::canonical::time::rfc3339_option"
    )]
    pub status_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_delivery_date: Option<NaiveDate>,
    /// When the news that set the ETA happened, so older news cannot undo it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::canonical::time::rfc3339_option"
    )]
    pub eta_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::canonical::time::rfc3339_option"
    )]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// Sorted by `occurred_at`, then by our id. Not in the serialised
    /// summary: storage keeps entries apart and writes only the
    /// [`HistoryChange`] of each apply, so an apply costs the same on the
    /// fiftieth event as on the first.
    #[serde(skip)]
    pub history: Vec<HistoryEntry>,
    #[serde(default)]
    pub retracted: Vec<Retracted>,
    /// Every event applied, so a redelivered one is a no-op. Kept apart
    /// like `history`; when read only to apply one event, it holds just
    /// that event's id if it was applied.
    #[serde(skip)]
    pub applied: BTreeSet<EventId>,
}

/// What applying one event did, for the caller's answer and automations.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// This event was applied before: nothing changed.
    AlreadyApplied,
    /// The provider withdrew this event earlier: nothing changed.
    Withdrawn,
    /// The event is recorded.
    Recorded(Effects),
}

/// The consequences of a recorded event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// The status moved from the first to the second.
    pub status_change: Option<(ShipmentStatus, ShipmentStatus)>,
    /// An event to fire automations for.
    pub event: Option<AutomationEvent>,
    /// The estimated delivery date moved from the first to the second.
    pub eta_change: Option<(Option<NaiveDate>, NaiveDate)>,
    /// Older than the current status: in history, nothing else.
    pub stale: bool,
    /// What the event added to the history and applied set.
    pub history: HistoryChange,
}

/// What a write adds to a fulfillment's history and applied set, and
/// removes from its history: storage writes this, never the whole history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryChange {
    pub applied: Vec<EventId>,
    pub added: Vec<HistoryEntry>,
    pub removed: Vec<EventId>,
}

impl HistoryChange {
    /// Adds `later`, a change made after this one.
    pub fn extend(&mut self, later: HistoryChange) {
        self.applied.extend(later.applied);
        self.added.extend(later.added);
        self.removed.extend(later.removed);
    }

    /// All of `f`'s history and applied set, for writing a new fulfillment.
    pub fn everything(f: &Fulfillment) -> Self {
        Self {
            applied: f.applied.iter().copied().collect(),
            added: f.history.clone(),
            removed: Vec::new(),
        }
    }
}

impl Fulfillment {
    /// A fulfillment first heard of now, with no status yet.
    pub fn new(key: FulfillmentKey, now: DateTime<Utc>) -> Self {
        Self {
            key,
            direction: Direction::Forward,
            created_at: now,
            updated_at: now,
            status: ShipmentStatus::Unknown,
            status_at: None,
            estimated_delivery_date: None,
            eta_at: None,
            delivered_at: None,
            carrier: None,
            tracking_number: None,
            line_items: Vec::new(),
            history: Vec::new(),
            retracted: Vec::new(),
            applied: BTreeSet::new(),
        }
    }

    /// Applies one event by DESIGN.md's rules 1–3 and 6.
    pub fn apply(&mut self, event: &CanonicalEvent, now: DateTime<Utc>) -> Applied {
        if self.applied.contains(&event.id) {
            return Applied::AlreadyApplied;
        }
        let withdrawn = event.source_id.as_deref().is_some_and(|sid| {
            self.retracted
                .iter()
                .any(|r| r.provider == event.provider && r.source_id == sid)
        });
        if withdrawn {
            return Applied::Withdrawn;
        }
        self.applied.insert(event.id);
        self.updated_at = now;
        // A shipment never changes direction: one return event is enough,
        // and no later forward-shaped update undoes it.
        if event.direction == Direction::Return {
            self.direction = Direction::Return;
        }
        let mut effects = match event.kind {
            EventKind::Retraction => Effects {
                history: HistoryChange {
                    removed: self.retract(event),
                    ..HistoryChange::default()
                },
                ..Effects::default()
            },
            EventKind::Details => {
                self.take_details(event);
                Effects::default()
            }
            EventKind::Status(status) => self.apply_status(event, status),
            EventKind::Event(e) => {
                let mut effects = self.record(event, EntryKind::Event, e.as_str(), false);
                effects.event = Some(e);
                effects
            }
            EventKind::Unmapped => self.record(
                event,
                EntryKind::Unmapped,
                ShipmentStatus::Unknown.as_str(),
                false,
            ),
        };
        effects.history.applied.push(event.id);
        Applied::Recorded(effects)
    }

    fn apply_status(&mut self, event: &CanonicalEvent, status: ShipmentStatus) -> Effects {
        let stale = self.status_at.is_some_and(|at| event.occurred_at < at);
        let mut effects = self.record(event, EntryKind::Status, status.as_str(), stale);
        if stale {
            return effects;
        }
        let previous = self.status;
        self.status = status;
        self.status_at = Some(event.occurred_at);
        if status == ShipmentStatus::Delivered && self.delivered_at.is_none() {
            self.delivered_at = Some(event.occurred_at);
        }
        if previous != status {
            effects.status_change = Some((previous, status));
        }
        effects
    }

    /// Adds a history entry and takes the event's details and ETA unless
    /// it is stale.
    fn record(
        &mut self,
        event: &CanonicalEvent,
        kind: EntryKind,
        word: &str,
        stale: bool,
    ) -> Effects {
        let entry = HistoryEntry {
            event_id: event.id,
            provider: event.provider,
            kind,
            status: word.to_owned(),
            raw_status: event.raw_status.clone(),
            message: event.message.clone(),
            occurred_at: event.occurred_at,
            location: event.location.clone(),
            estimated_delivery: event.estimated_delivery,
            stale,
            source_id: event.source_id.clone(),
            received_at: event.received_at,
            api_version: event.api_version.clone(),
            estimated_delivery_at: event.estimated_delivery_at,
        };
        self.insert_entry(entry.clone());
        let mut effects = Effects {
            stale,
            history: HistoryChange {
                added: vec![entry],
                ..HistoryChange::default()
            },
            ..Effects::default()
        };
        if !stale {
            self.take_details(event);
            effects.eta_change = self.take_eta(event);
        }
        effects
    }

    fn take_details(&mut self, event: &CanonicalEvent) {
        if let Some(carrier) = &event.carrier {
            self.carrier = Some(carrier.clone());
        }
        if let Some(number) = &event.tracking_number {
            self.tracking_number = Some(number.clone());
        }
    }

    fn take_eta(&mut self, event: &CanonicalEvent) -> Option<(Option<NaiveDate>, NaiveDate)> {
        let eta = event.estimated_delivery?;
        if self.eta_at.is_some_and(|at| event.occurred_at < at) {
            return None;
        }
        self.eta_at = Some(event.occurred_at);
        let previous = self.estimated_delivery_date.replace(eta);
        (previous != Some(eta)).then_some((previous, eta))
    }

    fn insert_entry(&mut self, entry: HistoryEntry) {
        let at = self.history.partition_point(|h| {
            (h.occurred_at, h.event_id) <= (entry.occurred_at, entry.event_id)
        });
        self.history.insert(at, entry);
    }

    /// Takes in a change written by an apply elsewhere (storage keeps the
    /// history apart from the summary and merges them this way).
    pub fn absorb(&mut self, change: &HistoryChange) {
        self.applied.extend(change.applied.iter().copied());
        self.history
            .retain(|h| !change.removed.contains(&h.event_id));
        for entry in &change.added {
            if !self.history.iter().any(|h| h.event_id == entry.event_id) {
                self.insert_entry(entry.clone());
            }
        }
    }

    /// Removes the withdrawn event from history and answers the ids of the
    /// entries removed; if one set the current status, the latest
    /// remaining status takes its place. Needs the whole history.
    fn retract(&mut self, event: &CanonicalEvent) -> Vec<EventId> {
        let Some(source_id) = event.source_id.clone() else {
            return Vec::new();
        };
        let removed: Vec<EventId> = self
            .history
            .iter()
            .filter(|h| h.provider == event.provider && h.source_id.as_deref() == Some(&source_id))
            .map(|h| h.event_id)
            .collect();
        self.history.retain(|h| !removed.contains(&h.event_id));
        self.retracted.push(Retracted {
            provider: event.provider,
            source_id,
        });
        if !removed.is_empty() {
            self.recompute_status();
        }
        removed
    }

    fn recompute_status(&mut self) {
        let statuses = || self.history.iter().filter(|h| h.kind == EntryKind::Status);
        let latest = statuses().next_back();
        self.status = latest
            .and_then(|h| h.status.parse().ok())
            .unwrap_or(ShipmentStatus::Unknown);
        self.status_at = latest.map(|h| h.occurred_at);
        self.delivered_at = statuses()
            .find(|h| h.status == ShipmentStatus::Delivered.as_str())
            .map(|h| h.occurred_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Observation;

    fn key() -> FulfillmentKey {
        FulfillmentKey {
            store: "acme".into(),
            order_ref: "o1".into(),
            fulfillment_ref: "f1".into(),
        }
    }

    fn event(kind: EventKind, raw: &str, at: &str) -> CanonicalEvent {
        CanonicalEvent::from_observation(
            Observation {
                provider: Provider::Shopify,
                key: key(),
                direction: Direction::Forward,
                carrier: None,
                tracking_number: None,
                kind,
                raw_status: raw.into(),
                message: None,
                occurred_at: Some(at.parse().unwrap()),
                estimated_delivery: None,
                location: None,
                source_id: None,
                delivery_id: None,
            },
            Utc::now(),
        )
    }

    fn status(s: ShipmentStatus, at: &str) -> CanonicalEvent {
        event(EventKind::Status(s), s.as_str(), at)
    }

    fn with_eta(mut e: CanonicalEvent, eta: &str) -> CanonicalEvent {
        e.estimated_delivery = Some(eta.parse().unwrap());
        e
    }

    fn fresh() -> Fulfillment {
        Fulfillment::new(key(), Utc::now())
    }

    fn effects(applied: Applied) -> Effects {
        match applied {
            Applied::Recorded(e) => e,
            other => panic!("expected the event to be recorded, got {other:?}"),
        }
    }

    #[test]
    fn a_status_becomes_current_and_reports_the_change() {
        let mut f = fresh();
        let e = effects(f.apply(
            &status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z"),
            Utc::now(),
        ));
        assert_eq!(f.status, ShipmentStatus::InTransit);
        assert_eq!(
            e.status_change,
            Some((ShipmentStatus::Unknown, ShipmentStatus::InTransit))
        );
        let again = effects(f.apply(
            &status(ShipmentStatus::InTransit, "2026-11-20T11:00:00Z"),
            Utc::now(),
        ));
        assert_eq!(again.status_change, None, "the same status is not a change");
        assert_eq!(f.history.len(), 2);
    }

    #[test]
    fn an_event_never_changes_the_status_but_its_eta_is_kept() {
        let mut f = fresh();
        f.apply(
            &status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z"),
            Utc::now(),
        );
        let delayed = with_eta(
            event(
                EventKind::Event(AutomationEvent::Delayed),
                "delayed",
                "2026-11-20T12:00:00Z",
            ),
            "2026-11-25",
        );
        let e = effects(f.apply(&delayed, Utc::now()));
        assert_eq!(f.status, ShipmentStatus::InTransit);
        assert_eq!(e.event, Some(AutomationEvent::Delayed));
        assert_eq!(f.estimated_delivery_date, "2026-11-25".parse().ok());
        assert_eq!(e.eta_change, Some((None, "2026-11-25".parse().unwrap())));
        assert_eq!(f.history.len(), 2);
        assert_eq!(f.history[1].kind, EntryKind::Event);
    }

    #[test]
    fn a_late_older_status_is_stale_and_cannot_undo_delivered() {
        let mut f = fresh();
        f.apply(
            &status(ShipmentStatus::Delivered, "2026-11-20T10:00:00Z"),
            Utc::now(),
        );
        let late = with_eta(
            status(ShipmentStatus::InTransit, "2026-11-20T09:00:00Z"),
            "2026-11-30",
        );
        let e = effects(f.apply(&late, Utc::now()));
        assert!(e.stale);
        assert_eq!(e.status_change, None);
        assert_eq!(f.status, ShipmentStatus::Delivered);
        assert_eq!(f.delivered_at, "2026-11-20T10:00:00Z".parse().ok());
        assert_eq!(
            f.estimated_delivery_date, None,
            "a stale entry changes nothing else"
        );
        let words: Vec<_> = f
            .history
            .iter()
            .map(|h| (h.status.as_str(), h.stale))
            .collect();
        assert_eq!(words, [("in_transit", true), ("delivered", false)]);
    }

    #[test]
    fn a_status_at_the_same_time_as_the_current_one_applies() {
        let mut f = fresh();
        f.apply(
            &status(ShipmentStatus::OutForDelivery, "2026-11-20T10:00:00Z"),
            Utc::now(),
        );
        f.apply(
            &status(ShipmentStatus::Delivered, "2026-11-20T10:00:00Z"),
            Utc::now(),
        );
        assert_eq!(f.status, ShipmentStatus::Delivered);
    }

    #[test]
    fn applying_the_same_event_twice_is_a_no_op() {
        let mut f = fresh();
        let e = status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z");
        f.apply(&e, Utc::now());
        let snapshot = f.clone();
        assert_eq!(f.apply(&e, Utc::now()), Applied::AlreadyApplied);
        assert_eq!(f, snapshot);
    }

    #[test]
    fn unmapped_words_are_kept_without_touching_the_status() {
        let mut f = fresh();
        f.apply(
            &status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z"),
            Utc::now(),
        );
        f.apply(
            &event(EventKind::Unmapped, "teleported", "2026-11-20T11:00:00Z"),
            Utc::now(),
        );
        assert_eq!(f.status, ShipmentStatus::InTransit);
        let last = f.history.last().unwrap();
        assert_eq!(
            (last.kind, last.raw_status.as_str()),
            (EntryKind::Unmapped, "teleported")
        );
    }

    #[test]
    fn an_older_eta_does_not_replace_a_newer_one() {
        let mut f = fresh();
        f.apply(
            &with_eta(
                status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z"),
                "2026-11-24",
            ),
            Utc::now(),
        );
        let older = with_eta(
            event(
                EventKind::Event(AutomationEvent::Delayed),
                "delayed",
                "2026-11-20T08:00:00Z",
            ),
            "2026-11-28",
        );
        let e = effects(f.apply(&older, Utc::now()));
        assert_eq!(e.eta_change, None);
        assert_eq!(f.estimated_delivery_date, "2026-11-24".parse().ok());
    }

    #[test]
    fn history_stays_in_time_order_whatever_the_arrival_order() {
        let mut f = fresh();
        for at in [
            "2026-11-20T12:00:00Z",
            "2026-11-20T08:00:00Z",
            "2026-11-20T10:00:00Z",
        ] {
            f.apply(&event(EventKind::Unmapped, "x", at), Utc::now());
        }
        let times: Vec<_> = f
            .history
            .iter()
            .map(|h| h.occurred_at.to_rfc3339())
            .collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted);
    }

    #[test]
    fn a_retraction_removes_the_event_and_keeps_it_out() {
        let mut f = fresh();
        let mut transit = status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z");
        transit.source_id = Some("11".into());
        let mut delivered = status(ShipmentStatus::Delivered, "2026-11-20T12:00:00Z");
        delivered.source_id = Some("12".into());
        f.apply(&transit, Utc::now());
        f.apply(&delivered, Utc::now());
        let mut delete = event(EventKind::Retraction, "delivered", "2026-11-20T13:00:00Z");
        delete.source_id = Some("12".into());
        f.apply(&delete, Utc::now());
        assert_eq!(f.history.len(), 1);
        assert_eq!(f.status, ShipmentStatus::InTransit);
        assert_eq!(f.delivered_at, None);
        let mut redelivered = delivered.clone();
        redelivered.id = EventId::new();
        assert_eq!(f.apply(&redelivered, Utc::now()), Applied::Withdrawn);
        assert_eq!(f.status, ShipmentStatus::InTransit);
    }

    #[test]
    fn a_return_event_makes_the_fulfillment_a_return_for_good() {
        let mut f = fresh();
        assert_eq!(f.direction, Direction::Forward);
        let mut back = status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z");
        back.direction = Direction::Return;
        f.apply(&back, Utc::now());
        assert_eq!(f.direction, Direction::Return);
        f.apply(
            &status(ShipmentStatus::Delivered, "2026-11-20T12:00:00Z"),
            Utc::now(),
        );
        assert_eq!(f.direction, Direction::Return);
    }

    #[test]
    fn a_record_written_before_directions_existed_reads_back_as_forward() {
        let mut old = serde_json::to_value(fresh()).unwrap();
        old.as_object_mut().unwrap().remove("direction");
        let read: Fulfillment = serde_json::from_value(old).unwrap();
        assert_eq!(read.direction, Direction::Forward);
    }

    #[test]
    fn details_set_carrier_and_tracking_without_history() {
        let mut f = fresh();
        let mut e = event(EventKind::Details, "success", "2026-11-20T10:00:00Z");
        e.carrier = Some("UPS".into());
        e.tracking_number = Some("1Z999".into());
        f.apply(&e, Utc::now());
        assert!(f.history.is_empty());
        assert_eq!(f.carrier.as_deref(), Some("UPS"));
        assert_eq!(f.tracking_number.as_deref(), Some("1Z999"));
    }

    #[test]
    fn each_apply_names_the_history_change_that_rebuilds_the_history_elsewhere() {
        let mut whole = fresh();
        let mut kept_apart = fresh();
        let mut transit = status(ShipmentStatus::InTransit, "2026-11-20T10:00:00Z");
        transit.source_id = Some("11".into());
        let mut delivered = status(ShipmentStatus::Delivered, "2026-11-20T12:00:00Z");
        delivered.source_id = Some("12".into());
        let late = status(ShipmentStatus::PreTransit, "2026-11-20T08:00:00Z");
        let mut delete = event(EventKind::Retraction, "delivered", "2026-11-20T13:00:00Z");
        delete.source_id = Some("12".into());
        for e in [&transit, &delivered, &late, &delete] {
            let change = effects(whole.apply(e, Utc::now())).history;
            assert_eq!(change.applied, [e.id]);
            let expected_added = usize::from(e.kind != EventKind::Retraction);
            assert_eq!(change.added.len(), expected_added, "{}", e.raw_status);
            if e.kind == EventKind::Retraction {
                assert_eq!(change.removed, [delivered.id]);
            }
            kept_apart.absorb(&change);
            kept_apart.absorb(&change);
        }
        assert_eq!(whole.history.len(), 2);
        assert_eq!(
            kept_apart.history, whole.history,
            "same entries, same order"
        );
        assert_eq!(kept_apart.applied, whole.applied);
    }

    #[test]
    fn an_entry_and_an_event_recorded_before_api_versions_were_kept_read_back() {
        let entry: HistoryEntry = serde_json::from_str(
            r#"{"event_id":"0192f0c4-6c8e-7a3b-9d2e-1f4a5b6c7d8e","provider":"shopify",
                "kind":"status","status":"in_transit","raw_status":"in_transit",
                "occurred_at":"2026-11-21T13:14:00Z","estimated_delivery":"2026-11-24",
                "stale":false,"source_id":"944956392","received_at":"2026-11-21T13:16:42Z"}"#,
        )
        .unwrap();
        assert_eq!(entry.api_version, None);
        assert_eq!(entry.estimated_delivery_at, None);
        assert_eq!(entry.estimated_delivery, "2026-11-24".parse().ok());
        let mut event = status(ShipmentStatus::InTransit, "2026-11-21T13:14:00Z");
        let old = serde_json::to_string(&event).unwrap();
        assert!(!old.contains("api_version"), "{old}");
        let read: CanonicalEvent = serde_json::from_str(&old).unwrap();
        assert_eq!(read, event);
        event.api_version = Some("2026-01".into());
        event.estimated_delivery_at = Some("2026-11-25T02:00:00Z".parse().unwrap());
        let mut f = fresh();
        effects(f.apply(&event, Utc::now()));
        assert_eq!(f.history[0].api_version.as_deref(), Some("2026-01"));
        assert_eq!(
            f.history[0].estimated_delivery_at,
            event.estimated_delivery_at
        );
    }
}
