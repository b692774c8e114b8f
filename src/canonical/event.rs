//! The canonical tracking event: the only thing that crosses from the
//! provider adapters into storage and the fulfillment core.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::vocabulary::{AutomationEvent, Direction, ShipmentStatus};

/// Who sent an update; also picks the status map and the error shape.
/// Shopify, Carriyo and Redo are built in; every other sender is defined
/// by a `providers/NAME/provider.toml` loaded at start-up, and carries its
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Shopify,
    Carriyo,
    Redo,
    /// A data-defined sender (`providers/NAME/provider.toml`).
    Defined(DefinedName),
}

/// A data-defined provider's name, interned: definitions are loaded once
/// at start-up, so the name can be a `&'static str` and a [`Provider`]
/// stays `Copy` like the built-in ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefinedName(&'static str);

/// Every defined name interned by this process, so each is leaked once.
static DEFINED_NAMES: RwLock<BTreeSet<&'static str>> = RwLock::new(BTreeSet::new());

/// Longest provider name: it is a path segment, a label value and a key.
pub const MAX_PROVIDER_NAME: usize = 32;

impl DefinedName {
    /// The interned name, when `name` is a valid provider name (lower-case
    /// ASCII letters, digits, `_` and `-`, starting with a letter, at most
    /// [`MAX_PROVIDER_NAME`] bytes) that is not a built-in one.
    pub fn intern(name: &str) -> Result<Self, String> {
        let valid = name.len() <= MAX_PROVIDER_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            return Err(format!(
                "'{name}' is not a provider name: lower-case letters, digits, _ and -, starting \
                 with a letter, at most {MAX_PROVIDER_NAME} characters"
            ));
        }
        if Provider::ALL.iter().any(|p| p.as_str() == name) {
            return Err(format!(
                "'{name}' is a built-in provider's name; a defined provider needs its own"
            ));
        }
        let known = DEFINED_NAMES
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied();
        let interned = match known {
            Some(interned) => interned,
            None => {
                let mut names = DEFINED_NAMES.write().unwrap_or_else(|e| e.into_inner());
                match names.get(name) {
                    Some(interned) => interned,
                    None => {
                        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
                        names.insert(leaked);
                        leaked
                    }
                }
            }
        };
        Ok(Self(interned))
    }

    /// The name, as written in paths, config and stats.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl Provider {
    /// The built-in providers, in a fixed order for stats and listings.
    pub const ALL: [Provider; 3] = [Self::Shopify, Self::Carriyo, Self::Redo];

    /// The provider's name as it appears in paths, config and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::Carriyo => "carriyo",
            Self::Redo => "redo",
            Self::Defined(name) => name.as_str(),
        }
    }

    /// The built-in providers, then every defined one this process has
    /// interned, by name.
    fn known() -> Vec<Provider> {
        let defined = DEFINED_NAMES.read().unwrap_or_else(|e| e.into_inner());
        Self::ALL
            .into_iter()
            .chain(defined.iter().map(|name| Self::Defined(DefinedName(name))))
            .collect()
    }

    /// The provider a stored name stands for: a built-in, or a defined
    /// one, even one no longer loaded (its events and counts stay
    /// readable after its definition is removed).
    pub fn from_stored(name: &str) -> Result<Self, String> {
        match Self::ALL.into_iter().find(|p| p.as_str() == name) {
            Some(built_in) => Ok(built_in),
            None => DefinedName::intern(name).map(Self::Defined),
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    /// A built-in provider or a defined one this process has loaded.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::known()
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::known().iter().map(|p| p.as_str()).collect();
                format!("'{s}' is not a provider ({})", names.join(", "))
            })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <Cow<'de, str>>::deserialize(d)?;
        Self::from_stored(&name).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Provider {
    /// The built-in names; the served document adds the defined ones
    /// (see `ops::openapi`).
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Self::ALL.iter().map(|p| p.as_str())))
            .description(Some(
                "Who sent the update: a built-in provider or one defined by a \
                 providers/NAME/provider.toml",
            ))
            .into()
    }
}

impl ToSchema for Provider {}

impl utoipa::PartialSchema for DefinedName {
    /// A name; the served document lists the loaded ones as its enum
    /// (see `ops::openapi`).
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A data-defined provider: the `name` of a providers/NAME/provider.toml",
            ))
            .into()
    }
}

impl ToSchema for DefinedName {}

/// Our id for an event: a UUIDv7, so ids sort by receipt time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A fresh id, later than every id this process made before.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for EventId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Which fulfillment an event is about: the unit of ordering and state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct FulfillmentKey {
    /// The store's name in config (`acme`), not the provider's id for it.
    pub store: String,
    pub order_ref: String,
    pub fulfillment_ref: String,
}

impl FulfillmentKey {
    /// The event-log partition this fulfillment's events go to. The hash is
    /// FNV-1a so that every process, on every machine, picks the same one.
    pub fn partition(&self, partitions: u32) -> u32 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [&self.store, &self.order_ref, &self.fulfillment_ref] {
            for byte in part.as_bytes().iter().chain(std::iter::once(&0u8)) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        // FNV-1a's low bits depend only on the inputs' low bits: numeric
        // ids then fall into a quarter of 16 partitions. The high half,
        // folded in, spreads them.
        hash ^= hash >> 32;
        (hash % u64::from(partitions.max(1))) as u32
    }
}

impl fmt::Display for FulfillmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.store, self.order_ref, self.fulfillment_ref
        )
    }
}

/// What an event means for a fulfillment once its provider word is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum EventKind {
    /// Moves the shipment to a status (if not older than the current one).
    Status(ShipmentStatus),
    /// Something happened; the status stays as it is.
    Event(AutomationEvent),
    /// A provider word the status map does not know: kept, counted, inert.
    Unmapped,
    /// No tracking word, only carrier and tracking details (a Shopify
    /// fulfillment before its first shipment status).
    Details,
    /// The provider withdrew its earlier event `source_id` (Shopify's
    /// `fulfillment_events/delete`): it leaves the history.
    Retraction,
}

impl EventKind {
    /// The word history entries and the API use for this kind.
    pub fn label(self) -> &'static str {
        match self {
            Self::Status(_) => "status",
            Self::Event(_) => "event",
            Self::Unmapped => "unmapped",
            Self::Details => "details",
            Self::Retraction => "retraction",
        }
    }
}

/// Where a shipment was when an event happened; every part optional, as
/// carriers fill few of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

impl Location {
    /// `None` when no part is known, so empty locations are not stored.
    pub fn non_empty(self) -> Option<Self> {
        (self != Self::default()).then_some(self)
    }
}

/// The longest id a sender may give (order, fulfillment, shipment, event
/// and delivery ids, tracking numbers), in bytes: the providers' own ids
/// are at most this long, and a longer one could not be put in a URL to
/// read it back.
pub const MAX_ID_BYTES: usize = 255;

/// A provider's time for an event, with the field it was read from, so
/// that a refusal of the time names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTime {
    /// The instant, in UTC.
    pub at: DateTime<Utc>,
    /// The field's path in the provider's body, e.g. `happened_at`.
    pub field: Cow<'static, str>,
}

/// News dated after its receipt by more than clocks disagree: taken as
/// the latest status, it would make every real status after it stale
/// until that date. 400, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "field `{field}`: {at} is more than {skew} after the gateway received it ({received}); \
     news cannot come from the future (core.max_clock_skew)"
)]
pub struct FromTheFuture {
    /// The provider's field the time came from.
    pub field: Cow<'static, str>,
    /// The refused time, as shipgate writes times.
    pub at: String,
    /// When the gateway received it.
    pub received: String,
    /// The limit, as configured (`1h`).
    pub skew: String,
}

/// What an adapter makes of one delivery: everything but the parts the
/// gateway adds (our id, receipt time and the dedup keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub provider: Provider,
    pub key: FulfillmentKey,
    /// Which way the shipment travels; only Carriyo tells a return apart.
    pub direction: Direction,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub kind: EventKind,
    pub raw_status: String,
    pub message: Option<String>,
    /// The provider's time for the event, when it gave one.
    pub occurred_at: Option<ProviderTime>,
    pub estimated_delivery: Option<NaiveDate>,
    pub location: Option<Location>,
    /// The provider's own id for this event, when it has one.
    pub source_id: Option<String>,
    /// The provider's id for this delivery (already namespaced by the
    /// adapter, e.g. Shopify's event id with its topic).
    pub delivery_id: Option<String>,
}

/// The two dedup layers: the delivery id when the sender gave one, and a
/// fingerprint of the content that catches a resend under a new id; and
/// the pairing of one piece of news told by two kinds of delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DedupKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Pairing::is_empty")]
    pub pairing: Pairing,
}

/// One piece of news a provider tells twice, by two kinds of delivery
/// (Shopify's FulfillmentEvent and the Fulfillment update it causes).
/// Unlike the claimed keys, the two sides are apart: an event is a
/// duplicate when one of its `watch` keys was marked, and `mark` is
/// written once it is appended, so two deliveries of one kind that only
/// mark the same key are both kept. Both are scoped to the fulfillment
/// and checked in the same atomic step as the claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pairing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
}

impl Pairing {
    /// No pairing: the event is deduplicated by its claims alone.
    pub fn is_empty(&self) -> bool {
        self.mark.is_none() && self.watch.is_empty()
    }
}

/// One tracking update in the shape the whole gateway shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CanonicalEvent {
    pub id: EventId,
    pub provider: Provider,
    pub dedup_key: DedupKey,
    #[serde(with = "super::time::rfc3339")]
    pub received_at: DateTime<Utc>,
    pub key: FulfillmentKey,
    /// Events logged before directions existed read back as forward.
    #[serde(default)]
    pub direction: Direction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    pub kind: EventKind,
    pub raw_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(with = "super::time::rfc3339")]
    pub occurred_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_delivery: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The provider API version the delivery was written in (Shopify's
    /// `X-Shopify-API-Version`), so ops can see which version a shop sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The estimated delivery as a time, when the provider gave one and
    /// not only a date, to answer it back as the provider wrote it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::time::rfc3339_option"
    )]
    pub estimated_delivery_at: Option<DateTime<Utc>>,
}

impl CanonicalEvent {
    /// Completes an adapter's observation into an event received at
    /// `received_at`; refused when the observation is dated more than
    /// `max_skew` after that.
    pub fn from_observation(
        obs: Observation,
        received_at: DateTime<Utc>,
        max_skew: Duration,
    ) -> Result<Self, FromTheFuture> {
        let occurred_at = match &obs.occurred_at {
            None => received_at,
            Some(time) => {
                let latest = chrono::TimeDelta::from_std(max_skew)
                    .ok()
                    .and_then(|skew| received_at.checked_add_signed(skew));
                if latest.is_some_and(|latest| time.at > latest) {
                    return Err(FromTheFuture {
                        field: time.field.clone(),
                        at: super::time::format(&time.at),
                        received: super::time::format(&received_at),
                        skew: humantime::format_duration(max_skew).to_string(),
                    });
                }
                time.at
            }
        };
        let fingerprint = fingerprint(&obs, occurred_at);
        let delivery = obs
            .delivery_id
            .map(|id| format!("{}:{}:{id}", obs.provider, obs.key.store));
        Ok(Self {
            id: EventId::new(),
            provider: obs.provider,
            dedup_key: DedupKey {
                delivery,
                fingerprint,
                pairing: Pairing::default(),
            },
            received_at,
            key: obs.key,
            direction: obs.direction,
            carrier: obs.carrier,
            tracking_number: obs.tracking_number,
            kind: obs.kind,
            raw_status: obs.raw_status,
            message: obs.message,
            occurred_at,
            estimated_delivery: obs.estimated_delivery,
            location: obs.location,
            source_id: obs.source_id,
            api_version: None,
            estimated_delivery_at: None,
        })
    }
}

/// Hash of what makes two updates the same news, whatever their delivery:
/// (store, order, fulfillment, raw status, occurred_at, message, ETA). A
/// retraction is told apart by its kind and the event it withdraws.
fn fingerprint(obs: &Observation, occurred_at: DateTime<Utc>) -> String {
    let mut hash = Sha256::new();
    let eta = obs.estimated_delivery.map(|d| d.to_string());
    let retracts = match obs.kind {
        EventKind::Retraction => obs.source_id.as_deref(),
        _ => None,
    };
    for part in [
        Some(obs.key.store.as_str()),
        Some(obs.key.order_ref.as_str()),
        Some(obs.key.fulfillment_ref.as_str()),
        Some(obs.raw_status.as_str()),
        Some(&occurred_at.to_rfc3339()),
        obs.message.as_deref(),
        eta.as_deref(),
        retracts,
    ] {
        // Length-prefixed so that ("ab","c") and ("a","bc") differ.
        let part = part.unwrap_or("\u{0}none");
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(field: &'static str, text: &str) -> ProviderTime {
        ProviderTime {
            at: text.parse().unwrap(),
            field: field.into(),
        }
    }

    /// The event an observation makes when received now.
    fn event(obs: Observation) -> CanonicalEvent {
        CanonicalEvent::from_observation(obs, Utc::now(), HOUR).unwrap()
    }

    fn observation() -> Observation {
        Observation {
            provider: Provider::Shopify,
            key: FulfillmentKey {
                store: "acme".into(),
                order_ref: "1".into(),
                fulfillment_ref: "2".into(),
            },
            direction: Direction::Forward,
            carrier: None,
            tracking_number: None,
            kind: EventKind::Status(ShipmentStatus::InTransit),
            raw_status: "in_transit".into(),
            message: Some("left the depot".into()),
            occurred_at: Some(at("happened_at", "2026-11-20T10:00:00Z")),
            estimated_delivery: None,
            location: None,
            source_id: Some("99".into()),
            delivery_id: Some("e-1".into()),
        }
    }

    #[test]
    fn same_content_under_another_delivery_has_the_same_fingerprint() {
        let a = event(observation());
        let mut other = observation();
        other.delivery_id = Some("e-2".into());
        let b = event(other);
        assert_eq!(a.dedup_key.fingerprint, b.dedup_key.fingerprint);
        assert_ne!(a.dedup_key.delivery, b.dedup_key.delivery);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn a_changed_message_or_time_changes_the_fingerprint() {
        let a = event(observation());
        let mut msg = observation();
        msg.message = Some("arrived at hub".into());
        let mut time = observation();
        time.occurred_at = Some(at("happened_at", "2026-11-20T10:00:01Z"));
        for changed in [msg, time] {
            let b = event(changed);
            assert_ne!(a.dedup_key.fingerprint, b.dedup_key.fingerprint);
        }
    }

    #[test]
    fn an_event_logged_before_directions_existed_reads_back_as_forward() {
        let e = event(observation());
        let mut old = serde_json::to_value(&e).unwrap();
        old.as_object_mut().unwrap().remove("direction");
        let read: CanonicalEvent = serde_json::from_value(old).unwrap();
        assert_eq!(read.direction, Direction::Forward);
        assert_eq!(read, e);
    }

    #[test]
    fn delivery_ids_are_namespaced_by_provider_and_store() {
        let e = event(observation());
        assert_eq!(e.dedup_key.delivery.as_deref(), Some("shopify:acme:e-1"));
    }

    #[test]
    fn news_dated_past_the_skew_after_its_receipt_is_refused_naming_its_field() {
        let received: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        let dated = |text: &str| {
            let mut obs = observation();
            obs.occurred_at = Some(at("update_date", text));
            CanonicalEvent::from_observation(obs, received, HOUR)
        };
        let ahead = dated("2026-11-20T11:00:00Z").expect("exactly the skew ahead");
        assert_eq!(ahead.occurred_at.to_rfc3339(), "2026-11-20T11:00:00+00:00");
        let refused = dated("2026-11-20T11:00:00.001Z").unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains("`update_date`") && text.contains("1h") && text.contains("11:00:00.001Z"),
            "{text}"
        );
        assert!(dated("2099-01-01T00:00:00Z").is_err());
        assert!(
            dated("2001-01-01T00:00:00Z").is_ok(),
            "the past is not limited"
        );
        let mut undated = observation();
        undated.occurred_at = None;
        let e = CanonicalEvent::from_observation(undated, received, Duration::ZERO).unwrap();
        assert_eq!(e.occurred_at, received);
        let far = CanonicalEvent::from_observation(observation(), received, Duration::MAX);
        assert!(far.is_ok(), "a skew past chrono's range is no limit");
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        let key = observation().key;
        let p = key.partition(16);
        assert!(p < 16);
        assert_eq!(p, key.partition(16));
        // Pinned (computed apart, in Python): a change would reshuffle a live log.
        assert_eq!(key.partition(1_000_003), 218_979);
    }

    #[test]
    fn numeric_ids_spread_over_every_partition() {
        let mut counts = [0u32; 16];
        for n in 0..1600u64 {
            let key = FulfillmentKey {
                store: "acme".into(),
                order_ref: (450_000_000 + n).to_string(),
                fulfillment_ref: (255_000_000 + n).to_string(),
            };
            counts[key.partition(16) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (60..140).contains(&c)), "{counts:?}");
    }
}
