//! Shopify: FulfillmentEvent and Fulfillment webhooks, and the body of the
//! REST-shaped events API. Signed with `X-Shopify-Hmac-Sha256` (base64
//! HMAC-SHA256 of the raw body under the app's client secret).
//!
//! Every `X-Shopify-…` header is also read in the newer spelling without
//! `X-` (`Shopify-Hmac-Sha256`, …), as Shopify's own API libraries do.

use std::fmt;

use actix_web::http::header::HeaderMap;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::status_map::StatusMap;
use super::{
    bounded_id, bounded_optional_id, header, known, parse_eta, parse_event_time, parse_json,
    parse_time, verify, Rejection,
};
use crate::canonical::{
    Direction, EventKind, FulfillmentKey, Location, Observation, Pairing, Provider, ProviderTime,
};
use crate::config::Secret;

pub const HMAC_HEADER: &str = "X-Shopify-Hmac-Sha256";
pub const SHOP_DOMAIN_HEADER: &str = "X-Shopify-Shop-Domain";
pub const TOPIC_HEADER: &str = "X-Shopify-Topic";
pub const EVENT_ID_HEADER: &str = "X-Shopify-Event-Id";
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";
pub const API_VERSION_HEADER: &str = "X-Shopify-API-Version";
pub const TRIGGERED_AT_HEADER: &str = "X-Shopify-Triggered-At";
pub const ACCESS_TOKEN_HEADER: &str = "X-Shopify-Access-Token";

/// The status map table for FulfillmentEvent words.
const EVENT_WORDS: &str = "fulfillment_event";
/// The status map table for Fulfillment.status words.
const FULFILLMENT_WORDS: &str = "fulfillment";

/// A Shopify header in whichever spelling the delivery uses: `name`
/// (`X-Shopify-…`) first, else the same name without `X-`.
fn shopify_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Rejection> {
    match header(headers, name)? {
        Some(value) => Ok(Some(value)),
        None => header(headers, unprefixed(name)),
    }
}

/// A Shopify header that must be present in one of its spellings.
fn required_shopify_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
    missing: fn(String) -> Rejection,
) -> Result<&'a str, Rejection> {
    shopify_header(headers, name)?.ok_or_else(|| {
        missing(format!(
            "header {name} (or {}) is missing",
            unprefixed(name)
        ))
    })
}

/// `X-Shopify-Topic` → `Shopify-Topic`.
fn unprefixed(name: &str) -> &str {
    name.strip_prefix("X-").unwrap_or(name)
}

/// The webhook topics shipgate takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    FulfillmentEventCreate,
    FulfillmentEventDelete,
    FulfillmentCreate,
    FulfillmentUpdate,
}

impl Topic {
    /// Every topic, in the order errors list them.
    pub const ALL: [Topic; 4] = [
        Self::FulfillmentEventCreate,
        Self::FulfillmentEventDelete,
        Self::FulfillmentCreate,
        Self::FulfillmentUpdate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FulfillmentEventCreate => "fulfillment_events/create",
            Self::FulfillmentEventDelete => "fulfillment_events/delete",
            Self::FulfillmentCreate => "fulfillments/create",
            Self::FulfillmentUpdate => "fulfillments/update",
        }
    }

    /// The topic, or `None` for one shipgate does not take.
    fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// A Shopify API version: a quarterly release (`2025-10`) or `unstable`.
/// Ordered by release, `unstable` after every stable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiVersion {
    Stable { year: u16, month: u8 },
    Unstable,
}

/// Why a path's API version is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "API version '{0}' does not exist: use `unstable` or a quarterly version \
         (January, April, July, October) such as 2026-10"
    )]
    NotAVersion(String),
    #[error(
        "API version '{asked}' is not released yet; the newest is {newest} (release candidate)"
    )]
    NotReleased { asked: String, newest: ApiVersion },
}

impl ApiVersion {
    /// `unstable`, or `YYYY-MM` for a quarter from 2019-04 (the first
    /// version Shopify released) on.
    pub fn parse(value: &str) -> Option<Self> {
        if value == "unstable" {
            return Some(Self::Unstable);
        }
        let (year, month) = value.split_once('-')?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) {
            return None;
        }
        let version = Self::Stable {
            year: year.parse().ok()?,
            month: month.parse().ok()?,
        };
        let first = Self::Stable {
            year: 2019,
            month: 4,
        };
        (matches!(month, "01" | "04" | "07" | "10") && version >= first).then_some(version)
    }

    /// The version that serves a call made with `path`, on `today`. An
    /// unsupported (too old) version falls forward to the oldest supported
    /// one, as Shopify does; one later than the release candidate does not
    /// exist yet.
    pub fn served(path: &str, today: NaiveDate) -> Result<Self, VersionError> {
        let asked = Self::parse(path).ok_or_else(|| VersionError::NotAVersion(path.to_owned()))?;
        let latest = Self::latest(today);
        let candidate = latest.quarters_later(1);
        if asked == Self::Unstable {
            return Ok(asked);
        }
        if asked > candidate {
            return Err(VersionError::NotReleased {
                asked: path.to_owned(),
                newest: candidate,
            });
        }
        Ok(asked.max(Self::oldest_supported(today)))
    }

    /// Shopify supports each stable version for twelve months from its
    /// release on the first of its month (shopify.dev, "About Shopify API
    /// versioning"), so four at a time: the latest and the three before.
    pub fn oldest_supported(today: NaiveDate) -> Self {
        Self::latest(today).quarters_later(-3)
    }

    /// The stable version released last, on the first of its quarter.
    fn latest(today: NaiveDate) -> Self {
        let month = (today.month0() / 3 * 3 + 1) as u8;
        Self::Stable {
            year: u16::try_from(today.year()).unwrap_or(u16::MAX),
            month,
        }
    }

    fn quarters_later(self, quarters: i32) -> Self {
        match self {
            Self::Unstable => self,
            Self::Stable { year, month } => {
                let index = i32::from(year) * 4 + i32::from(month - 1) / 3 + quarters;
                Self::Stable {
                    year: u16::try_from(index.div_euclid(4)).unwrap_or(0),
                    month: (index.rem_euclid(4) * 3 + 1) as u8,
                }
            }
        }
    }

    /// Whether `word` is a FulfillmentEvent `status` of this version.
    pub fn has_event_status(self, word: &str) -> bool {
        EVENT_STATUSES
            .iter()
            .any(|&(w, since)| w == word && since.is_none_or(|since| self >= since))
    }

    /// The FulfillmentEvent `status` words of this version, for messages.
    pub fn event_statuses(self) -> Vec<&'static str> {
        EVENT_STATUSES
            .iter()
            .filter(|(_, since)| since.is_none_or(|since| self >= since))
            .map(|&(w, _)| w)
            .collect()
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stable { year, month } => write!(f, "{year:04}-{month:02}"),
            Self::Unstable => f.write_str("unstable"),
        }
    }
}

/// Shopify's FulfillmentEventStatus words and the first version that has
/// each (`None`: every version). Per shopify.dev's FulfillmentEvent
/// resource and FulfillmentEventStatus enum by version: `delayed` came in
/// 2025-01, `carrier_picked_up` in 2025-10; the Customer API's words are
/// only in `unstable` on the Admin API.
const EVENT_STATUSES: [(&str, Option<ApiVersion>); 15] = {
    const UNSTABLE: Option<ApiVersion> = Some(ApiVersion::Unstable);
    [
        ("attempted_delivery", None),
        ("confirmed", None),
        ("delivered", None),
        ("failure", None),
        ("in_transit", None),
        ("label_printed", None),
        ("label_purchased", None),
        ("out_for_delivery", None),
        ("ready_for_pickup", None),
        (
            "delayed",
            Some(ApiVersion::Stable {
                year: 2025,
                month: 1,
            }),
        ),
        (
            "carrier_picked_up",
            Some(ApiVersion::Stable {
                year: 2025,
                month: 10,
            }),
        ),
        ("picked_up", UNSTABLE),
        ("buyer_action_required", UNSTABLE),
        ("ready_for_recipient_pickup", UNSTABLE),
        ("returning_to_sender", UNSTABLE),
    ]
};

/// The shop a webhook says it is from, to find the store and its secrets.
pub fn shop_domain(headers: &HeaderMap) -> Result<&str, Rejection> {
    required_shopify_header(headers, SHOP_DOMAIN_HEADER, Rejection::Unauthorized)
}

/// The REST caller's access token, which picks its store.
pub fn access_token(headers: &HeaderMap) -> Result<&str, Rejection> {
    super::required_header(headers, ACCESS_TOKEN_HEADER, Rejection::Unauthorized)
}

/// Checks the webhook's signature against every secret of its store.
pub fn verify_webhook(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), Rejection> {
    let signature = required_shopify_header(headers, HMAC_HEADER, Rejection::Unauthorized)?;
    if verify::base64_hmac_matches(secrets, body, signature) {
        Ok(())
    } else {
        Err(Rejection::Unauthorized(
            "header X-Shopify-Hmac-Sha256 does not match the body under any webhook secret of this shop"
                .into(),
        ))
    }
}

/// A FulfillmentEvent as webhooks carry it and REST clients create it.
/// The ids are required of webhooks; REST clients give them in the path.
/// Flat, without `#[serde(flatten)]`, so that parse errors name the field.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyFulfillmentEvent)]
pub struct FulfillmentEvent {
    pub id: Option<u64>,
    pub fulfillment_id: Option<u64>,
    pub order_id: Option<u64>,
    /// Required; optional here so that a missing one is named as Shopify
    /// names it.
    #[schema(required)]
    pub status: Option<String>,
    pub message: Option<String>,
    pub happened_at: Option<String>,
    pub estimated_delivery_at: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    pub zip: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A webhook's id field, which Shopify always sends.
fn required_id(field: &str, value: Option<u64>) -> Result<u64, Rejection> {
    value.ok_or_else(|| Rejection::Invalid(format!("field `{field}` is missing")))
}

/// What the delete topic needs: which event, of which fulfillment.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyDeletedEvent)]
pub struct DeletedEvent {
    id: u64,
    fulfillment_id: u64,
    order_id: u64,
    status: Option<String>,
}

/// A Fulfillment resource (`fulfillments/*` topics).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyFulfillment)]
pub struct Fulfillment {
    id: u64,
    order_id: u64,
    status: String,
    shipment_status: Option<String>,
    tracking_company: Option<String>,
    tracking_number: Option<String>,
    #[serde(default)]
    tracking_numbers: Vec<String>,
    updated_at: Option<String>,
    created_at: Option<String>,
}

/// A webhook body: the REST resource its `X-Shopify-Topic` names. Only the
/// OpenAPI document uses this type: the adapter reads the topic first, then
/// the one shape it names.
#[derive(ToSchema)]
#[schema(as = ShopifyWebhookBody)]
#[serde(untagged)]
pub enum WebhookBody {
    /// `fulfillment_events/create`
    Event(FulfillmentEvent),
    /// `fulfillment_events/delete`
    Deleted(DeletedEvent),
    /// `fulfillments/create`, `fulfillments/update`
    Fulfillment(Fulfillment),
}

/// The body of the REST create call: `{"event": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyCreateEventRequest)]
pub struct CreateEventRequest {
    pub event: FulfillmentEvent,
}

/// What a verified webhook delivery comes to.
#[derive(Debug)]
// Made once per delivery and matched at once: boxing the update would
// cost every webhook an allocation to save a move.
#[allow(clippy::large_enum_variant)]
pub enum Webhook {
    /// News about a fulfillment, to record.
    Observed(Update),
    /// A topic shipgate does not take (`orders/create`, `app/uninstalled`,
    /// the compliance topics, …): answered 200 so that Shopify keeps the
    /// subscription, and recorded nowhere.
    Ignored { topic: String },
}

/// An observation and what Shopify said beside it that the canonical
/// observation does not carry.
#[derive(Debug)]
pub struct Update {
    pub observation: Observation,
    /// The version the delivery was written in: `X-Shopify-API-Version`
    /// of a webhook, the served version of a REST call.
    pub api_version: Option<ApiVersion>,
    /// `estimated_delivery_at` when it is a time, not only a date.
    pub estimated_delivery_at: Option<DateTime<Utc>>,
    /// How the delivery pairs with the other topic's telling of the same
    /// shipment change (see [`pairing`]).
    pub pairing: Pairing,
}

/// Turns a verified webhook into an observation for `store`, or says that
/// its topic is not one shipgate takes.
pub fn parse_webhook(
    store: &str,
    map: &StatusMap,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Webhook, Rejection> {
    let topic_name = required_shopify_header(headers, TOPIC_HEADER, Rejection::Invalid)?;
    let Some(topic) = Topic::parse(topic_name) else {
        return Ok(Webhook::Ignored {
            topic: topic_name.to_owned(),
        });
    };
    let api_version = webhook_api_version(headers)?;
    let triggered_at = shopify_header(headers, TRIGGERED_AT_HEADER)?
        .map(|at| {
            parse_time(TRIGGERED_AT_HEADER, at)
                .map(|at| ProviderTime {
                    at,
                    field: TRIGGERED_AT_HEADER.into(),
                })
                .map_err(|_| {
                    Rejection::Invalid(format!(
                        "header {TRIGGERED_AT_HEADER} '{at}' is not an RFC 3339 date-time like \
                         2026-11-20T10:00:00Z"
                    ))
                })
        })
        .transpose()?;
    // The shipment change the delivery reports, at the time the body gives
    // it: what pairs a FulfillmentEvent with its Fulfillment update.
    let mut change = None;
    let mut estimated_delivery_at = None;
    let mut obs = match topic {
        Topic::FulfillmentEventCreate => {
            let event: FulfillmentEvent = parse_json(body)?;
            let order_id = required_id("order_id", event.order_id)?;
            let fulfillment_id = required_id("fulfillment_id", event.fulfillment_id)?;
            let id = required_id("id", event.id)?;
            let (mut obs, eta_at) =
                observe_event(store, map, order_id, fulfillment_id, event, |_, r| r)?;
            obs.source_id = Some(id.to_string());
            estimated_delivery_at = eta_at;
            change = obs.occurred_at.as_ref().map(|t| (Side::Event, t.at));
            obs
        }
        Topic::FulfillmentEventDelete => {
            let event: DeletedEvent = parse_json(body)?;
            let mut obs = blank(
                store,
                event.order_id,
                event.fulfillment_id,
                EventKind::Retraction,
            );
            obs.raw_status = event.status.unwrap_or_default();
            obs.source_id = Some(event.id.to_string());
            obs
        }
        Topic::FulfillmentCreate | Topic::FulfillmentUpdate => {
            let f: Fulfillment = parse_json(body)?;
            let ended = map.kind(FULFILLMENT_WORDS, &f.status);
            // A fulfillment the map gives a status of its own (cancelled,
            // error, failure: Shopify's Fulfillment.status words for one
            // that will not arrive) says so whatever its last
            // shipment_status was, which Shopify leaves set.
            let shipment = known(f.shipment_status).filter(|_| !is_status(ended));
            let reports_shipment = shipment.is_some();
            let (kind, word) = match shipment {
                Some(word) => (map.kind(EVENT_WORDS, &word), word),
                None => (ended, f.status),
            };
            let mut obs = blank(store, f.order_id, f.id, kind);
            obs.raw_status = word;
            obs.carrier = known(f.tracking_company);
            obs.tracking_number = match known(f.tracking_number) {
                Some(number) => Some(bounded_id("field `tracking_number`", number)?),
                None => bounded_optional_id(
                    "field `tracking_numbers`",
                    f.tracking_numbers.into_iter().find(|n| !n.is_empty()),
                )?,
            };
            obs.occurred_at = match f.updated_at {
                Some(at) => parse_event_time("updated_at", Some(&at))?,
                None => parse_event_time("created_at", f.created_at.as_deref())?,
            };
            if reports_shipment {
                change = obs.occurred_at.as_ref().map(|t| (Side::Fulfillment, t.at));
            }
            obs
        }
    };
    obs.occurred_at = obs.occurred_at.or(triggered_at);
    obs.delivery_id = Some(delivery_id(headers, topic, body_id(&obs, topic))?);
    let pairing = change
        .map(|(side, at)| pairing(&obs, side, at))
        .unwrap_or_default();
    Ok(Webhook::Observed(Update {
        observation: obs,
        api_version,
        estimated_delivery_at,
        pairing,
    }))
}

/// `X-Shopify-API-Version`, when sent; one that is not a Shopify version
/// is refused, naming it.
fn webhook_api_version(headers: &HeaderMap) -> Result<Option<ApiVersion>, Rejection> {
    shopify_header(headers, API_VERSION_HEADER)?
        .map(|v| {
            ApiVersion::parse(v).ok_or_else(|| {
                Rejection::Invalid(format!(
                    "header {API_VERSION_HEADER} '{v}' is not a Shopify API version \
                     (`unstable` or a quarterly one such as 2026-10)"
                ))
            })
        })
        .transpose()
}

fn is_status(kind: EventKind) -> bool {
    matches!(kind, EventKind::Status(_))
}

/// Which telling of a shipment change a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `fulfillment_events/create`, at the event's `happened_at`.
    Event,
    /// `fulfillments/*` with a `shipment_status`, at the fulfillment's
    /// `updated_at`.
    Fulfillment,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Fulfillment => "fulfillment",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Event => Self::Fulfillment,
            Self::Fulfillment => Self::Event,
        }
    }
}

/// One shipment change reaches a shop subscribed to both
/// `fulfillment_events/create` and `fulfillments/*` twice: as the event
/// (at its `happened_at`) and as the fulfillment's new `shipment_status`
/// (at its `updated_at`, seconds later). Each side marks the change, by
/// its canonical word (the raw one when unmapped) and the UTC minute of
/// its time, and watches the other side's marks of that minute and the
/// two beside it: two tellings less than a minute apart always pair (at
/// most two apart may). Storage checks the watched keys per fulfillment in
/// the atomic step that claims and appends, so whichever comes first is
/// recorded and the other is a duplicate, on every backend and however
/// they interleave; two events (or two updates) never pair with each
/// other, so distinct scans of one minute are all kept.
fn pairing(obs: &Observation, side: Side, at: DateTime<Utc>) -> Pairing {
    let word = match obs.kind {
        EventKind::Status(status) => format!("status:{}", status.as_str()),
        EventKind::Event(event) => format!("event:{}", event.as_str()),
        EventKind::Unmapped => format!("unmapped:{}", obs.raw_status),
        EventKind::Details | EventKind::Retraction => return Pairing::default(),
    };
    let minute = at.timestamp().div_euclid(60);
    let key = |side: Side, minute: i64| format!("pair:{}:{word}:{minute}", side.as_str());
    Pairing {
        mark: Some(key(side, minute)),
        watch: (minute - 1..=minute + 1)
            .map(|m| key(side.other(), m))
            .collect(),
    }
}

/// Turns a REST create request into an observation without the new
/// event's id: the caller numbers it only once the event is admitted, so
/// a refused request uses up no id. Refuses, as Shopify does with 422, a
/// field it cannot take or a status word `version` does not define.
pub fn parse_rest_event(
    store: &str,
    map: &StatusMap,
    version: ApiVersion,
    order_id: u64,
    fulfillment_id: u64,
    body: &[u8],
) -> Result<Update, Rejection> {
    let CreateEventRequest { event } =
        parse_json(body).map_err(|plain| event_field_error(body).unwrap_or(plain))?;
    admin_event(store, map, version, order_id, fulfillment_id, event)
}

/// An event an Admin API call creates (the REST body's `event`, or the
/// GraphQL mutation's input in REST's words), as an update in `version`,
/// without its id: the caller numbers it once it is admitted.
/// A field it cannot take, or a status word `version` does not define, is
/// refused as [`Rejection::Unprocessable`] naming the field in REST's
/// words: the REST API answers it 422, GraphQL as a `userErrors` entry.
pub fn admin_event(
    store: &str,
    map: &StatusMap,
    version: ApiVersion,
    order_id: u64,
    fulfillment_id: u64,
    event: FulfillmentEvent,
) -> Result<Update, Rejection> {
    if let Some(word) = known(event.status.clone()) {
        if !version.has_event_status(&word) {
            return Err(Rejection::Unprocessable {
                field: "status".into(),
                message: format!(
                    "is not included in the list: '{word}' is not a fulfillment event status \
                     of API version {version} ({})",
                    version.event_statuses().join(", ")
                ),
            });
        }
    }
    let unprocessable = |field: &str, r: Rejection| match r {
        Rejection::Invalid(_) if field == "status" => Rejection::Unprocessable {
            field: field.into(),
            message: "can't be blank".into(),
        },
        r => Rejection::Unprocessable {
            field: field.into(),
            message: format!("is invalid: {r}"),
        },
    };
    let (observation, estimated_delivery_at) =
        observe_event(store, map, order_id, fulfillment_id, event, unprocessable)?;
    Ok(Update {
        observation,
        api_version: Some(version),
        estimated_delivery_at,
        pairing: Pairing::default(),
    })
}

/// The field of `event` a REST body cannot be read at, as a 422; `None`
/// when the body is not JSON or has no `event` object (a 400, as Shopify
/// answers a missing parameter).
fn event_field_error(body: &[u8]) -> Option<Rejection> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let e = serde_path_to_error::deserialize::<_, CreateEventRequest>(&mut de).err()?;
    if e.inner().is_syntax() || e.inner().is_eof() {
        return None;
    }
    let path = e.path().to_string();
    let field = path.strip_prefix("event.")?;
    Some(Rejection::Unprocessable {
        field: field.to_owned(),
        message: format!("is invalid: {}", e.inner()),
    })
}

/// The retraction of a REST-created event (`DELETE .../events/{id}.json`).
pub fn rest_retraction(store: &str, order_id: u64, fulfillment_id: u64, id: u64) -> Observation {
    let mut obs = blank(store, order_id, fulfillment_id, EventKind::Retraction);
    obs.source_id = Some(id.to_string());
    obs
}

/// A FulfillmentEvent as an observation and its ETA as a time (when it is
/// one). `refuse` turns the field at fault and why into the caller's
/// rejection: webhooks answer 400, the REST API Shopify's 422.
fn observe_event(
    store: &str,
    map: &StatusMap,
    order_id: u64,
    fulfillment_id: u64,
    details: FulfillmentEvent,
    refuse: impl Fn(&str, Rejection) -> Rejection,
) -> Result<(Observation, Option<DateTime<Utc>>), Rejection> {
    let status = known(details.status).ok_or_else(|| {
        refuse(
            "status",
            Rejection::Invalid("field `status` is missing".into()),
        )
    })?;
    let kind = map.kind(EVENT_WORDS, &status);
    let mut obs = blank(store, order_id, fulfillment_id, kind);
    obs.raw_status = status;
    obs.message = known(details.message);
    obs.occurred_at = parse_event_time("happened_at", details.happened_at.as_deref())
        .map_err(|r| refuse("happened_at", r))?;
    let eta = details.estimated_delivery_at.as_deref();
    obs.estimated_delivery =
        parse_eta("estimated_delivery_at", eta).map_err(|r| refuse("estimated_delivery_at", r))?;
    let eta_at = eta.and_then(|at| parse_time("estimated_delivery_at", at).ok());
    obs.location = Location {
        address1: known(details.address1),
        city: known(details.city),
        state: known(details.province),
        country: known(details.country),
        postal_code: known(details.zip),
        latitude: details.latitude,
        longitude: details.longitude,
    }
    .non_empty();
    Ok((obs, eta_at))
}

/// The key of a Shopify fulfillment: webhooks and the REST API name it by
/// the same two integers, so both land on one fulfillment.
pub fn fulfillment_key(store: &str, order_id: u64, fulfillment_id: u64) -> FulfillmentKey {
    FulfillmentKey {
        store: store.to_owned(),
        order_ref: order_id.to_string(),
        fulfillment_ref: fulfillment_id.to_string(),
    }
}

fn blank(store: &str, order_id: u64, fulfillment_id: u64, kind: EventKind) -> Observation {
    Observation {
        provider: Provider::Shopify,
        key: fulfillment_key(store, order_id, fulfillment_id),
        direction: Direction::Forward,
        carrier: None,
        tracking_number: None,
        kind,
        raw_status: String::new(),
        message: None,
        occurred_at: None,
        estimated_delivery: None,
        location: None,
        source_id: None,
        delivery_id: None,
    }
}

fn body_id(obs: &Observation, topic: Topic) -> String {
    match topic {
        Topic::FulfillmentCreate | Topic::FulfillmentUpdate => obs.key.fulfillment_ref.clone(),
        Topic::FulfillmentEventCreate | Topic::FulfillmentEventDelete => {
            obs.source_id.clone().unwrap_or_default()
        }
    }
}

/// Shopify's guidance: dedup on (Event-Id, topic); else the delivery's
/// Webhook-Id; else the topic and the resource id. Both ids are bounded
/// whenever sent, not only the one used, so that what is refused does not
/// depend on which other header came along.
fn delivery_id(headers: &HeaderMap, topic: Topic, body_id: String) -> Result<String, Rejection> {
    let event_id = bounded_optional_id(
        &format!("header {EVENT_ID_HEADER}"),
        shopify_header(headers, EVENT_ID_HEADER)?,
    )?;
    let webhook_id = bounded_optional_id(
        &format!("header {WEBHOOK_ID_HEADER}"),
        shopify_header(headers, WEBHOOK_ID_HEADER)?,
    )?;
    Ok(match (event_id, webhook_id) {
        (Some(event_id), _) => format!("event:{event_id}:{}", topic.as_str()),
        (None, Some(webhook_id)) => format!("webhook:{webhook_id}"),
        (None, None) => format!("resource:{}:{body_id}", topic.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::ShipmentStatus;
    use crate::providers::status_map::StatusMaps;
    use crate::providers::test_support::{headers, sample};

    fn observed(webhook: Webhook) -> Update {
        match webhook {
            Webhook::Observed(update) => update,
            Webhook::Ignored { topic } => panic!("{topic} was ignored"),
        }
    }

    fn parse(pairs: &[(&str, &str)], body: &[u8]) -> Result<Webhook, Rejection> {
        let maps = StatusMaps::load(None).unwrap();
        parse_webhook("acme", &maps.shopify, &headers(pairs), body)
    }

    #[test]
    fn a_fulfillment_event_becomes_a_status_with_its_location_and_eta() {
        let h = [
            (TOPIC_HEADER, "fulfillment_events/create"),
            (EVENT_ID_HEADER, "e-1"),
            (API_VERSION_HEADER, "2025-10"),
        ];
        let update =
            observed(parse(&h, &sample("shopify", "fulfillment_event_create.json")).unwrap());
        let obs = update.observation;
        assert_eq!(obs.kind, EventKind::Status(ShipmentStatus::InTransit));
        assert_eq!(obs.key.order_ref, "450789469");
        assert_eq!(obs.key.fulfillment_ref, "255858046");
        assert!(obs.occurred_at.is_some() && obs.estimated_delivery.is_some());
        assert!(obs.location.is_some());
        assert_eq!(
            obs.delivery_id.as_deref(),
            Some("event:e-1:fulfillment_events/create")
        );
        assert_eq!(update.api_version, ApiVersion::parse("2025-10"));
        assert_eq!(
            update.estimated_delivery_at,
            Some("2026-11-25T02:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn headers_are_read_in_either_spelling() {
        let h = [
            ("Shopify-Topic", "fulfillment_events/create"),
            ("Shopify-Event-Id", "e-2"),
            ("Shopify-API-Version", "2026-01"),
        ];
        let body = br#"{"id":1,"fulfillment_id":2,"order_id":3,"status":"in_transit"}"#;
        let update = observed(parse(&h, body).unwrap());
        assert_eq!(
            update.observation.delivery_id.as_deref(),
            Some("event:e-2:fulfillment_events/create")
        );
        assert_eq!(update.api_version, ApiVersion::parse("2026-01"));
        let shop = headers(&[("Shopify-Shop-Domain", "acme.myshopify.com")]);
        assert_eq!(shop_domain(&shop), Ok("acme.myshopify.com"));
        let err = shop_domain(&headers(&[])).unwrap_err().to_string();
        assert!(
            err.contains("X-Shopify-Shop-Domain") && err.contains("(or Shopify-Shop-Domain)"),
            "{err}"
        );
    }

    #[test]
    fn without_an_event_id_the_webhook_id_then_the_resource_id_dedup() {
        let body = sample("shopify", "fulfillment_event_create.json");
        let body = body.as_slice();
        let h = [
            (TOPIC_HEADER, "fulfillment_events/create"),
            (WEBHOOK_ID_HEADER, "w-9"),
        ];
        let obs = observed(parse(&h, body).unwrap()).observation;
        assert_eq!(obs.delivery_id.as_deref(), Some("webhook:w-9"));
        let h = [(TOPIC_HEADER, "fulfillment_events/create")];
        let obs = observed(parse(&h, body).unwrap()).observation;
        assert_eq!(
            obs.delivery_id.as_deref(),
            Some("resource:fulfillment_events/create:944956392")
        );
    }

    #[test]
    fn the_triggered_at_header_dates_a_body_without_a_time() {
        let body = br#"{"id":7,"fulfillment_id":2,"order_id":3,"status":"in_transit"}"#;
        let h = [
            (TOPIC_HEADER, "fulfillment_events/create"),
            (TRIGGERED_AT_HEADER, "2026-11-21T15:00:00Z"),
        ];
        let obs = observed(parse(&h, body).unwrap()).observation;
        assert_eq!(
            obs.occurred_at.map(|t| t.at),
            Some("2026-11-21T15:00:00Z".parse().unwrap())
        );
        let h = [
            (TOPIC_HEADER, "fulfillment_events/create"),
            (TRIGGERED_AT_HEADER, "yesterday"),
        ];
        let err = parse(&h, body).unwrap_err().to_string();
        assert!(
            err.contains("X-Shopify-Triggered-At") && err.contains("'yesterday'"),
            "{err}"
        );
        let h = [
            (TOPIC_HEADER, "fulfillment_events/create"),
            (API_VERSION_HEADER, "latest"),
        ];
        let err = parse(&h, body).unwrap_err().to_string();
        assert!(
            err.contains("X-Shopify-API-Version") && err.contains("'latest'"),
            "{err}"
        );
    }

    #[test]
    fn an_over_long_webhook_id_is_refused_even_beside_an_event_id() {
        let long = "w".repeat(256);
        let h = [
            (TOPIC_HEADER, "fulfillment_events/create"),
            (EVENT_ID_HEADER, "e-1"),
            (WEBHOOK_ID_HEADER, long.as_str()),
        ];
        let err = parse(&h, &sample("shopify", "fulfillment_event_create.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("X-Shopify-Webhook-Id") && err.contains("256 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_fulfillment_event_and_its_fulfillment_update_watch_each_others_marks() {
        let event = |at: &str| {
            let body = format!(
                r#"{{"id":7,"fulfillment_id":2,"order_id":3,"status":"out_for_delivery","happened_at":"{at}"}}"#
            );
            let h = [(TOPIC_HEADER, "fulfillment_events/create")];
            observed(parse(&h, body.as_bytes()).unwrap()).pairing
        };
        let update = |at: &str| {
            let body = format!(
                r#"{{"id":2,"order_id":3,"status":"success","shipment_status":"out_for_delivery","updated_at":"{at}"}}"#
            );
            let h = [(TOPIC_HEADER, "fulfillments/update")];
            observed(parse(&h, body.as_bytes()).unwrap()).pairing
        };
        let pairs = |a: &Pairing, b: &Pairing| {
            a.watch.contains(b.mark.as_ref().unwrap()) && b.watch.contains(a.mark.as_ref().unwrap())
        };
        let e = event("2026-11-23T07:45:05-05:00");
        assert!(pairs(&e, &update("2026-11-23T07:45:12-05:00")));
        assert!(
            pairs(&e, &update("2026-11-23T07:44:59-05:00")),
            "across a minute"
        );
        assert!(
            !pairs(&e, &update("2026-11-23T07:48:00-05:00")),
            "minutes apart"
        );
        assert!(
            !e.watch
                .contains(event("2026-11-23T07:45:06-05:00").mark.as_ref().unwrap()),
            "two events never pair"
        );
        let cancelled = br#"{"id":2,"order_id":3,"status":"cancelled","shipment_status":"in_transit","updated_at":"2026-11-23T07:45:12-05:00"}"#;
        let h = [(TOPIC_HEADER, "fulfillments/update")];
        assert!(observed(parse(&h, cancelled).unwrap()).pairing.is_empty());
    }

    #[test]
    fn a_fulfillment_without_shipment_status_carries_details_only() {
        let h = [(TOPIC_HEADER, "fulfillments/create")];
        let obs =
            observed(parse(&h, &sample("shopify", "fulfillment_create.json")).unwrap()).observation;
        assert_eq!(obs.kind, EventKind::Details);
        assert!(obs.carrier.is_some() && obs.tracking_number.is_some());
        let h = [(TOPIC_HEADER, "fulfillments/update")];
        let obs =
            observed(parse(&h, &sample("shopify", "fulfillment_update.json")).unwrap()).observation;
        assert_eq!(obs.kind, EventKind::Status(ShipmentStatus::OutForDelivery));
    }

    #[test]
    fn a_cancelled_fulfillment_is_cancelled_whatever_its_shipment_status() {
        let h = [(TOPIC_HEADER, "fulfillments/update")];
        for (word, status) in [
            ("cancelled", ShipmentStatus::Cancelled),
            ("failure", ShipmentStatus::Failure),
            ("error", ShipmentStatus::Error),
        ] {
            let body = format!(
                r#"{{"id":2,"order_id":3,"status":"{word}","shipment_status":"in_transit","updated_at":"2026-11-23T07:45:12-05:00"}}"#
            );
            let obs = observed(parse(&h, body.as_bytes()).unwrap()).observation;
            assert_eq!(obs.kind, EventKind::Status(status), "{word}");
            assert_eq!(obs.raw_status, word);
        }
    }

    #[test]
    fn a_delete_needs_only_the_ids() {
        let h = [(TOPIC_HEADER, "fulfillment_events/delete")];
        let body = br#"{"id": 944956395, "fulfillment_id": 255858046, "order_id": 450789469}"#;
        let obs = observed(parse(&h, body).unwrap()).observation;
        assert_eq!(obs.kind, EventKind::Retraction);
        assert_eq!(obs.source_id.as_deref(), Some("944956395"));
    }

    #[test]
    fn other_topics_are_ignored_and_bad_fields_are_named() {
        let h = [(TOPIC_HEADER, "orders/create")];
        match parse(&h, b"{}").unwrap() {
            Webhook::Ignored { topic } => assert_eq!(topic, "orders/create"),
            other => panic!("{other:?}"),
        }
        let h = [(TOPIC_HEADER, "fulfillment_events/create")];
        let body = br#"{"id":1,"fulfillment_id":2,"order_id":3,"status":"in_transit","happened_at":"yesterday"}"#;
        let err = parse(&h, body).unwrap_err();
        assert!(err.to_string().contains("happened_at"), "{err}");
        let body =
            br#"{"id":1,"fulfillment_id":2,"order_id":3,"status":"in_transit","latitude":"north"}"#;
        let err = parse(&h, body).unwrap_err();
        assert!(err.to_string().contains("`latitude`"), "{err}");
        let body = br#"{"fulfillment_id":2,"order_id":3,"status":"in_transit"}"#;
        let err = parse(&h, body).unwrap_err();
        assert!(err.to_string().contains("`id` is missing"), "{err}");
        let body = br#"{"id":1,"fulfillment_id":2,"order_id":3}"#;
        let err = parse(&h, body).unwrap_err();
        assert!(matches!(err, Rejection::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("`status` is missing"), "{err}");
    }

    fn day(date: &str) -> NaiveDate {
        date.parse().unwrap()
    }

    #[test]
    fn api_versions_are_unstable_or_quarterly_from_2019_04() {
        for good in ["unstable", "2019-04", "2021-04", "2025-07", "2026-10"] {
            assert_eq!(ApiVersion::parse(good).unwrap().to_string(), good);
        }
        for bad in [
            "2019-01",
            "2024-05",
            "2024-1",
            "+202-01",
            "latest",
            "2024-04-01",
            "",
        ] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_unsupported_version_falls_forward_to_the_oldest_supported_one() {
        let today = day("2026-12-06");
        assert_eq!(ApiVersion::oldest_supported(today).to_string(), "2026-01");
        let served = |v: &str| ApiVersion::served(v, today).map(|v| v.to_string());
        assert_eq!(served("2020-01").unwrap(), "2026-01");
        assert_eq!(served("2025-10").unwrap(), "2026-01");
        assert_eq!(served("2026-04").unwrap(), "2026-04");
        assert_eq!(
            served("2027-01").unwrap(),
            "2027-01",
            "the release candidate"
        );
        assert_eq!(served("unstable").unwrap(), "unstable");
        assert!(matches!(
            ApiVersion::served("2027-04", today),
            Err(VersionError::NotReleased { .. })
        ));
        assert!(matches!(
            ApiVersion::served("2024-05", today),
            Err(VersionError::NotAVersion(_))
        ));
        assert_eq!(
            ApiVersion::oldest_supported(day("2027-01-01")).to_string(),
            "2026-04"
        );
        assert_eq!(
            ApiVersion::oldest_supported(day("2026-03-31")).to_string(),
            "2025-04"
        );
    }

    #[test]
    fn event_status_words_come_with_their_versions() {
        let v = |s: &str| ApiVersion::parse(s).unwrap();
        assert!(v("2024-10").has_event_status("in_transit"));
        assert!(!v("2024-10").has_event_status("delayed"));
        assert!(v("2025-01").has_event_status("delayed"));
        assert!(!v("2025-07").has_event_status("carrier_picked_up"));
        assert!(v("2025-10").has_event_status("carrier_picked_up"));
        assert!(!v("2026-10").has_event_status("picked_up"));
        assert!(v("unstable").has_event_status("picked_up"));
        assert!(!v("unstable").has_event_status("teleported"));
    }

    #[test]
    fn rest_fields_are_refused_as_shopify_does() {
        let maps = StatusMaps::load(None).unwrap();
        let version = ApiVersion::parse("2026-01").unwrap();
        let rest = |body: &[u8]| parse_rest_event("acme", &maps.shopify, version, 3, 2, body);
        let field = |body: &[u8]| match rest(body).unwrap_err() {
            Rejection::Unprocessable { field, message } => (field, message),
            other => panic!("{other:?}"),
        };
        let (f, m) = field(br#"{"event": {"status": "teleported"}}"#);
        assert_eq!(f, "status");
        assert!(
            m.starts_with("is not included in the list") && m.contains("'teleported'"),
            "{m}"
        );
        assert_eq!(
            field(br#"{"event": {"message": "hi"}}"#),
            ("status".into(), "can't be blank".into())
        );
        let (f, m) = field(br#"{"event": {"status": 7}}"#);
        assert_eq!(f, "status");
        assert!(m.starts_with("is invalid"), "{m}");
        let (f, _) = field(br#"{"event": {"status": "in_transit", "happened_at": "22/11/2026"}}"#);
        assert_eq!(f, "happened_at");
        let (f, _) =
            field(br#"{"event": {"status": "in_transit", "estimated_delivery_at": "soon"}}"#);
        assert_eq!(f, "estimated_delivery_at");
        for bad in [&b"status=in_transit"[..], br#"{"status": "in_transit"}"#] {
            assert!(matches!(rest(bad), Err(Rejection::Invalid(_))));
        }
        let update = rest(&sample("shopify", "rest_event_create.json")).unwrap();
        assert_eq!(update.api_version, Some(version));
        assert_eq!(
            update.estimated_delivery_at,
            Some("2026-11-24T02:00:00Z".parse().unwrap())
        );
    }
}
