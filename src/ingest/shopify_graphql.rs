//! Shopify's GraphQL Admin API, the part a tracking client uses: the
//! `fulfillmentEventCreate` mutation and the `fulfillment(id:) { events }`
//! query, at `POST /admin/api/{version}/graphql.json`.
//!
//! It is the REST events API in another shape: the same access tokens and
//! API versions, the same status map, event ids from the same sequence (a
//! `gid://shopify/FulfillmentEvent/N` here is event `N` there), the same
//! dedup, and a create applied before it is answered. A GraphQL id names a
//! fulfillment without its order; the order is looked up in storage, so a
//! fulfillment must be known (from a webhook or a REST call) before
//! GraphQL can add to it, as on Shopify.
//!
//! Answers follow Shopify's: bad input to the mutation is a `userErrors`
//! entry with the path of its field; a query that does not parse or
//! validate (an unknown enum value included) is a 200 with `errors`, and
//! so is a status the served API version's enum lacks; a missing or
//! unknown token, an API version that is none or not released yet, or a
//! body that is not a GraphQL request are refused in the REST API's error
//! shape. Versions are served as REST serves them, and every answer says
//! which in `X-Shopify-API-Version`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::middleware::from_fn;
use actix_web::{post, web, HttpRequest, HttpResponse};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, InputObject, InputValueError,
    InputValueResult, Object, Scalar, ScalarType, Schema, ServerError, SimpleObject,
    Value as GraphQlValue, Variables, ID,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::shopify::{
    admit_store, eta_time, not_shown, record_update, served_version_header, EVENT_SEQUENCE,
};
use super::{read_json_body, IngestError, Refusal, ShopifyError, ShopifyErrorBody};
use crate::app::AppState;
use crate::canonical::{Location, Provider};
use crate::domain::{Fulfillment, HistoryEntry};
use crate::providers::shopify::{self as adapter, ApiVersion};
use crate::providers::{parse_eta, parse_json, parse_time, Rejection};
use crate::storage::{Claim, Outcome, StorageError};

/// The most events one page may ask for, as on Shopify.
const PAGE_LIMIT: i32 = 250;

/// Registers the GraphQL endpoint.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(graphql);
}

/// `POST /admin/api/{version}/graphql.json`: runs one GraphQL request as
/// the store whose access token it carries.
#[utoipa::path(
    operation_id = "shopify_graphql",
    tag = "shopify",
    summary = "Shopify GraphQL Admin API: fulfillmentEventCreate and fulfillment(id:) { events }",
    description = "A GraphQL request as Shopify takes it. The mutation `fulfillmentEventCreate(fulfillmentEvent: \
        FulfillmentEventInput!)` records an event of a known fulfillment and applies it before answering; \
        bad input is a `userErrors` entry. The query `fulfillment(id:)` reads a fulfillment's events as a \
        connection (`events(first: N) { edges { node { ... } } }` or `nodes`). Event ids are the REST API's. \
        A query that does not parse or validate is a 200 with `errors`.",
    params(("version" = String, Path, min_length = 1, description = "`unstable` or a quarterly version such as 2026-10; one Shopify no \
        longer supports is served as the oldest supported one, as by the REST API")),
    request_body(content = GraphQlRequest),
    responses(
        (status = 200, description = "The GraphQL answer: `data`, and `errors` when a query did not run", body = GraphQlAnswer,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 400, description = "The body is not a GraphQL request (`query`, optional `variables`, `operationName`); nothing stored", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 404, description = "The API version does not exist, or is later than the release candidate", body = ShopifyErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 415, description = "Content-Type is not application/json", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"), ("X-Shopify-API-Version" = String, description = "The version that served the call"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[post(
    "/admin/api/{version}/graphql.json",
    wrap = "from_fn(served_version_header)"
)]
async fn graphql(
    state: web::Data<AppState>,
    req: HttpRequest,
    version: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ShopifyError> {
    let (store, version) = admit_store(&state, &req, &version).await?;
    let store = store.name.clone();
    let body = read_json_body(&req, payload, &state.settings.server).await?;
    let GraphQlRequest {
        query,
        variables,
        operation_name,
    } = parse_json(&body)?;
    let mut request = async_graphql::Request::new(query).variables(Variables::from_json(
        serde_json::Value::Object(variables.unwrap_or_default()),
    ));
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    let call = Arc::new(Call {
        state: state.into_inner(),
        store,
        version,
        failure: Mutex::new(None),
        malformed: AtomicBool::new(false),
    });
    let answer = schema().execute(request.data(call.clone())).await;
    if let Some(failure) = call.failure() {
        return Err(failure.into());
    }
    let refused = !answer.errors.is_empty() || call.malformed.load(Ordering::Relaxed);
    let mut response = HttpResponse::Ok().json(GraphQlAnswer {
        data: answer.data,
        errors: answer.errors,
    });
    if refused {
        // Counted as invalid, as the REST API's 400s are, though answered
        // 200 as Shopify answers them.
        response.extensions_mut().insert(Refusal {
            provider: Provider::Shopify,
            outcome: Some(Outcome::Invalid),
            storage_failed: false,
        });
    }
    Ok(response)
}

/// The body of a GraphQL call, as Shopify's clients send it.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyGraphQlRequest)]
#[serde(rename_all = "camelCase")]
struct GraphQlRequest {
    /// The GraphQL document.
    query: String,
    /// Values of the document's `$variables`.
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// Which operation of the document to run, when it has several.
    operation_name: Option<String>,
}

/// A GraphQL answer, as Shopify's: the library's, without its extensions.
#[derive(Serialize, ToSchema)]
#[schema(as = ShopifyGraphQlAnswer)]
struct GraphQlAnswer {
    /// Null when the document did not parse or validate.
    #[schema(value_type = Option<Object>)]
    data: GraphQlValue,
    /// Each with `message`, and `locations` and `path` where known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Option<Vec<Object>>)]
    errors: Vec<ServerError>,
}

/// The schema, built once: it holds no state of its own.
type AdminSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

fn schema() -> &'static AdminSchema {
    static SCHEMA: OnceLock<AdminSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::build(QueryRoot, MutationRoot, EmptySubscription).finish())
}

/// One GraphQL call: the caller's store, and the storage failure that
/// turns its answer into a 503 (a GraphQL `errors` entry would be a 200,
/// which a provider takes for "recorded").
struct Call {
    state: Arc<AppState>,
    store: String,
    /// The version that serves the call: the statuses it defines, and the
    /// `apiVersion` its events keep.
    version: ApiVersion,
    failure: Mutex<Option<StorageError>>,
    /// Whether the mutation refused malformed input (a `userErrors` entry
    /// other than an unknown or ambiguous fulfillment).
    malformed: AtomicBool,
}

impl Call {
    /// The call of a resolver's context; the handler always puts it there.
    fn of<'c>(ctx: &Context<'c>) -> async_graphql::Result<&'c Arc<Call>> {
        ctx.data::<Arc<Call>>()
    }

    /// Keeps a storage failure for the handler to answer with.
    fn failed(&self, error: StorageError) -> async_graphql::Error {
        let message = error.to_string();
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(error);
        }
        async_graphql::Error::new(message)
    }

    fn failure(&self) -> Option<StorageError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// The payload refusing malformed input, which the stats count.
    fn malformed(&self, errors: Vec<UserError>) -> FulfillmentEventCreatePayload {
        self.malformed.store(true, Ordering::Relaxed);
        FulfillmentEventCreatePayload::refused(errors)
    }

    /// The fulfillment `id` names in the caller's store, with its order.
    async fn find(&self, id: u64) -> Result<Found, StorageError> {
        let reference = id.to_string();
        let orders = self
            .state
            .storage
            .orders_of_fulfillment(&self.store, &reference)
            .await?;
        let mut found = Vec::new();
        // A Shopify order id is an integer; another provider's order that
        // happens to hold a fulfillment of that reference is not Shopify's.
        for order_id in orders.iter().filter_map(|o| o.parse::<u64>().ok()) {
            let key = adapter::fulfillment_key(&self.store, order_id, id);
            if let Some(fulfillment) = self.state.core.get(&key).await? {
                found.push((order_id, fulfillment));
            }
        }
        Ok(match found.len() {
            0 => Found::Nothing,
            1 => {
                let (order_id, fulfillment) = found.remove(0);
                Found::One {
                    order_id,
                    fulfillment: Box::new(fulfillment),
                }
            }
            _ => Found::Several(found.into_iter().map(|(o, _)| o.to_string()).collect()),
        })
    }

    /// `fulfillmentEventCreate`: the payload, or why storage failed.
    async fn create(
        &self,
        input: FulfillmentEventInput,
    ) -> Result<FulfillmentEventCreatePayload, StorageError> {
        let fulfillment_id = parse_gid(FULFILLMENT, input.fulfillment_id.as_str());
        let mut errors = Vec::new();
        if fulfillment_id.is_none() {
            errors.push(UserError::at(
                "fulfillmentId",
                format!(
                    "'{}' is not a fulfillment id like gid://shopify/Fulfillment/255858046",
                    input.fulfillment_id.as_str()
                ),
            ));
        }
        let happened_at = input.happened_at.as_ref().map(|t| t.0.as_str());
        if let Some(Err(e)) = happened_at.map(|t| parse_time("happenedAt", t)) {
            errors.push(UserError::at("happenedAt", e.to_string()));
        }
        let eta = input.estimated_delivery_at.as_ref().map(|t| t.0.as_str());
        if let Err(e) = parse_eta("estimatedDeliveryAt", eta) {
            errors.push(UserError::at("estimatedDeliveryAt", e.to_string()));
        }
        let Some(fulfillment_id) = fulfillment_id.filter(|_| errors.is_empty()) else {
            return Ok(self.malformed(errors));
        };
        let order_id = match self.find(fulfillment_id).await? {
            Found::One { order_id, .. } => order_id,
            Found::Nothing => {
                return Ok(FulfillmentEventCreatePayload::refused(vec![UserError::at(
                    "fulfillmentId",
                    format!(
                        "fulfillment {} is not known here: it comes into being with its first \
                         webhook or REST event",
                        input.fulfillment_id.as_str()
                    ),
                )]))
            }
            Found::Several(orders) => {
                return Ok(FulfillmentEventCreatePayload::refused(vec![UserError::at(
                    "fulfillmentId",
                    format!(
                        "fulfillment {} belongs to several orders here ({}): create the event \
                         with the REST API, whose path names the order",
                        input.fulfillment_id.as_str(),
                        orders.join(", ")
                    ),
                )]))
            }
        };
        let state = &self.state;
        let details = adapter::FulfillmentEvent {
            id: None,
            fulfillment_id: Some(fulfillment_id),
            order_id: Some(order_id),
            status: Some(input.status.word().to_owned()),
            message: input.message,
            happened_at: happened_at.map(str::to_owned),
            estimated_delivery_at: eta.map(str::to_owned),
            address1: input.address1,
            city: input.city,
            province: input.province,
            country: input.country,
            zip: input.zip,
            latitude: input.latitude,
            longitude: input.longitude,
        };
        let mut update = match adapter::admin_event(
            &self.store,
            &state.maps.shopify,
            self.version,
            order_id,
            fulfillment_id,
            details,
        ) {
            Ok(update) => update,
            // What REST answers 422 is a userErrors entry on the same field.
            Err(Rejection::Unprocessable { field, message }) => {
                return Ok(self.malformed(vec![UserError::at(&camel_case(&field), message)]))
            }
            Err(e) => return Ok(self.malformed(vec![UserError::whole(e.to_string())])),
        };
        // Numbered only once the input is taken, so a refusal uses up no id.
        let id = state.storage.next_in_sequence(EVENT_SEQUENCE).await?;
        update.observation.source_id = Some(id.to_string());
        let recorded = match record_update(state, update).await {
            Ok(recorded) => recorded,
            Err(IngestError::Storage(e)) => return Err(e),
            Err(e) => return Ok(self.malformed(vec![UserError::whole(e.to_string())])),
        };
        if recorded.claim == Claim::Accepted {
            state.core.apply(&recorded.event).await?;
        }
        let created = state.core.get(&recorded.event.key).await?.and_then(|f| {
            f.history
                .iter()
                .find(|h| h.event_id == recorded.event_id())
                .and_then(FulfillmentEvent::of)
        });
        Ok(match created {
            Some(event) => FulfillmentEventCreatePayload {
                fulfillment_event: Some(event),
                user_errors: Vec::new(),
            },
            None => FulfillmentEventCreatePayload::refused(vec![UserError::whole(
                not_shown(&recorded, id).to_string(),
            )]),
        })
    }
}

/// What a fulfillment id names in the caller's store.
enum Found {
    Nothing,
    /// Boxed, so the answers that found none stay small.
    One {
        order_id: u64,
        fulfillment: Box<Fulfillment>,
    },
    /// The orders, when more than one has a fulfillment of that id.
    Several(Vec<String>),
}

/// A REST field name in GraphQL's spelling: `happened_at` → `happenedAt`.
fn camel_case(field: &str) -> String {
    let mut words = field.split('_');
    let mut camel = words.next().unwrap_or_default().to_owned();
    for word in words {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            camel.extend(first.to_uppercase());
            camel.push_str(chars.as_str());
        }
    }
    camel
}

/// The type part of a Fulfillment's global id.
const FULFILLMENT: &str = "Fulfillment";
/// The type part of a FulfillmentEvent's global id.
const FULFILLMENT_EVENT: &str = "FulfillmentEvent";

/// The number of a Shopify global id `gid://shopify/{kind}/N`, N > 0.
fn parse_gid(kind: &str, id: &str) -> Option<u64> {
    id.strip_prefix("gid://shopify/")?
        .strip_prefix(kind)?
        .strip_prefix('/')?
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
}

fn gid(kind: &str, n: u64) -> ID {
    ID(format!("gid://shopify/{kind}/{n}"))
}

/// The root of queries.
struct QueryRoot;

#[Object]
impl QueryRoot {
    /// A fulfillment of the caller's store by its global id; null when none
    /// is known here.
    async fn fulfillment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<FulfillmentNode>> {
        let call = Call::of(ctx)?;
        let number = parse_gid(FULFILLMENT, id.as_str()).ok_or_else(|| {
            async_graphql::Error::new(format!(
                "Invalid global id '{}': a fulfillment id is like gid://shopify/Fulfillment/255858046",
                id.as_str()
            ))
        })?;
        match call.find(number).await.map_err(|e| call.failed(e))? {
            Found::Nothing => Ok(None),
            Found::One { fulfillment, .. } => Ok(Some(FulfillmentNode {
                id: number,
                fulfillment: *fulfillment,
            })),
            Found::Several(orders) => Err(async_graphql::Error::new(format!(
                "fulfillment {} belongs to several orders here ({}): read it with the REST API, \
                 whose path names the order",
                id.as_str(),
                orders.join(", ")
            ))),
        }
    }
}

/// The root of mutations.
struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Creates a fulfillment event of a known fulfillment and applies it
    /// before answering; the same event again answers the first one.
    async fn fulfillment_event_create(
        &self,
        ctx: &Context<'_>,
        fulfillment_event: FulfillmentEventInput,
    ) -> async_graphql::Result<FulfillmentEventCreatePayload> {
        let call = Call::of(ctx)?;
        let status = fulfillment_event.status;
        if !call.version.has_event_status(status.word()) {
            // Shopify's schema is per version, and its enum lacks a status
            // the version does not define (shopify.dev, FulfillmentEventStatus
            // by version): a GraphQL error, not a userErrors entry, counted
            // invalid as every answer with `errors` is.
            return Err(async_graphql::Error::new(format!(
                "Argument 'status' on InputObject 'FulfillmentEventInput' has an invalid value \
                 ({}): FulfillmentEventStatus of API version {} is one of {}",
                status.name(),
                call.version,
                FulfillmentEventStatus::of_version(call.version).join(", ")
            )));
        }
        call.create(fulfillment_event)
            .await
            .map_err(|e| call.failed(e))
    }
}

/// Shopify's `DateTime` scalar (ISO 8601 text). Taken as text, so that a
/// malformed time is a `userErrors` entry naming its field, like the
/// mutation's other bad input.
#[derive(Debug, Clone)]
struct DateTimeText(String);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTimeText {
    fn parse(value: GraphQlValue) -> InputValueResult<Self> {
        match value {
            GraphQlValue::String(text) => Ok(Self(text)),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> GraphQlValue {
        GraphQlValue::String(self.0.clone())
    }
}

impl DateTimeText {
    /// As Shopify's GraphQL writes times: UTC, to the second.
    fn of(t: DateTime<Utc>) -> Self {
        Self(t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

/// Shopify's FulfillmentEventStatus: the REST API's words in capitals,
/// mapped through the same status map. Every word the map knows is here:
/// the Admin API's (CARRIER_PICKED_UP from 2025-10, DELAYED from 2025-01,
/// PICKED_UP in unstable) and the three only the Customer API's unstable
/// version lists, so that every event a webhook brought reads back. The
/// mutation takes only those of the served version
/// ([`ApiVersion::has_event_status`]), as Shopify's per-version enum does.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
enum FulfillmentEventStatus {
    AttemptedDelivery,
    BuyerActionRequired,
    CarrierPickedUp,
    Confirmed,
    Delayed,
    Delivered,
    Failure,
    InTransit,
    LabelPrinted,
    LabelPurchased,
    OutForDelivery,
    PickedUp,
    ReadyForPickup,
    ReadyForRecipientPickup,
    ReturningToSender,
}

impl FulfillmentEventStatus {
    const ALL: [Self; 15] = [
        Self::AttemptedDelivery,
        Self::BuyerActionRequired,
        Self::CarrierPickedUp,
        Self::Confirmed,
        Self::Delayed,
        Self::Delivered,
        Self::Failure,
        Self::InTransit,
        Self::LabelPrinted,
        Self::LabelPurchased,
        Self::OutForDelivery,
        Self::PickedUp,
        Self::ReadyForPickup,
        Self::ReadyForRecipientPickup,
        Self::ReturningToSender,
    ];

    /// The REST API's (and webhooks') word for this status.
    fn word(self) -> &'static str {
        match self {
            Self::AttemptedDelivery => "attempted_delivery",
            Self::BuyerActionRequired => "buyer_action_required",
            Self::CarrierPickedUp => "carrier_picked_up",
            Self::Confirmed => "confirmed",
            Self::Delayed => "delayed",
            Self::Delivered => "delivered",
            Self::Failure => "failure",
            Self::InTransit => "in_transit",
            Self::LabelPrinted => "label_printed",
            Self::LabelPurchased => "label_purchased",
            Self::OutForDelivery => "out_for_delivery",
            Self::PickedUp => "picked_up",
            Self::ReadyForPickup => "ready_for_pickup",
            Self::ReadyForRecipientPickup => "ready_for_recipient_pickup",
            Self::ReturningToSender => "returning_to_sender",
        }
    }

    fn of_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.word() == word)
    }

    /// Its name in the schema: the word in capitals.
    fn name(self) -> String {
        self.word().to_ascii_uppercase()
    }

    /// The names `version`'s enum has, for messages.
    fn of_version(version: ApiVersion) -> Vec<String> {
        Self::ALL
            .into_iter()
            .filter(|s| version.has_event_status(s.word()))
            .map(Self::name)
            .collect()
    }
}

/// Shopify's FulfillmentEventInput.
#[derive(InputObject)]
struct FulfillmentEventInput {
    /// `gid://shopify/Fulfillment/N` of a fulfillment known here.
    fulfillment_id: ID,
    status: FulfillmentEventStatus,
    happened_at: Option<DateTimeText>,
    /// A date-time, kept as given; a date alone is kept as that day.
    estimated_delivery_at: Option<DateTimeText>,
    message: Option<String>,
    address1: Option<String>,
    city: Option<String>,
    province: Option<String>,
    country: Option<String>,
    zip: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// Shopify's FulfillmentEventCreatePayload.
#[derive(SimpleObject)]
struct FulfillmentEventCreatePayload {
    fulfillment_event: Option<FulfillmentEvent>,
    user_errors: Vec<UserError>,
}

impl FulfillmentEventCreatePayload {
    fn refused(user_errors: Vec<UserError>) -> Self {
        Self {
            fulfillment_event: None,
            user_errors,
        }
    }
}

/// Shopify's UserError: the path of the input field at fault, and why.
#[derive(SimpleObject)]
struct UserError {
    field: Option<Vec<String>>,
    message: String,
}

impl UserError {
    /// An error of one field of the mutation's `fulfillmentEvent` argument.
    fn at(field: &str, message: String) -> Self {
        Self {
            field: Some(vec!["fulfillmentEvent".into(), field.into()]),
            message,
        }
    }

    /// An error of the event as a whole.
    fn whole(message: String) -> Self {
        Self {
            field: Some(vec!["fulfillmentEvent".into()]),
            message,
        }
    }
}

/// Shopify's FulfillmentEvent, made from a history entry.
#[derive(SimpleObject)]
#[graphql(complex)]
struct FulfillmentEvent {
    id: ID,
    #[graphql(skip)]
    number: u64,
    /// Kept as sent, so that a word no status here names still reads back
    /// (as an error on this field).
    #[graphql(skip)]
    word: String,
    happened_at: DateTimeText,
    created_at: DateTimeText,
    /// A date-time as the REST API answers it: as given, or midnight UTC
    /// of an ETA known only as a date.
    estimated_delivery_at: Option<DateTimeText>,
    message: Option<String>,
    address1: Option<String>,
    city: Option<String>,
    province: Option<String>,
    country: Option<String>,
    zip: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[ComplexObject]
impl FulfillmentEvent {
    async fn status(&self) -> async_graphql::Result<FulfillmentEventStatus> {
        FulfillmentEventStatus::of_word(&self.word).ok_or_else(|| {
            async_graphql::Error::new(format!(
                "event {} has status '{}', which is not a FulfillmentEventStatus; \
                 the REST API answers it as it came",
                self.number, self.word
            ))
        })
    }
}

impl FulfillmentEvent {
    /// The entry as a FulfillmentEvent; `None` unless it is a Shopify event
    /// with a Shopify id (as the REST API shows them).
    fn of(entry: &HistoryEntry) -> Option<Self> {
        if entry.provider != Provider::Shopify {
            return None;
        }
        let number: u64 = entry.source_id.as_deref()?.parse().ok()?;
        let location = entry.location.as_ref();
        let text = |f: fn(&Location) -> &Option<String>| location.and_then(|l| f(l).clone());
        Some(Self {
            id: gid(FULFILLMENT_EVENT, number),
            number,
            word: entry.raw_status.clone(),
            happened_at: DateTimeText::of(entry.occurred_at),
            created_at: DateTimeText::of(entry.received_at),
            estimated_delivery_at: eta_time(entry).map(DateTimeText::of),
            message: entry.message.clone(),
            address1: text(|l| &l.address1),
            city: text(|l| &l.city),
            province: text(|l| &l.state),
            country: text(|l| &l.country),
            zip: text(|l| &l.postal_code),
            latitude: location.and_then(|l| l.latitude),
            longitude: location.and_then(|l| l.longitude),
        })
    }
}

/// How `Fulfillment.events` may be ordered.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
enum FulfillmentEventSortKeys {
    HappenedAt,
    #[default]
    Id,
}

/// Shopify's Fulfillment, as far as tracking goes.
struct FulfillmentNode {
    id: u64,
    fulfillment: Fulfillment,
}

#[Object(name = "Fulfillment")]
impl FulfillmentNode {
    async fn id(&self) -> ID {
        gid(FULFILLMENT, self.id)
    }

    /// When the gateway first heard of it.
    async fn created_at(&self) -> DateTimeText {
        DateTimeText::of(self.fulfillment.created_at)
    }

    async fn updated_at(&self) -> DateTimeText {
        DateTimeText::of(self.fulfillment.updated_at)
    }

    /// The fulfillment's Shopify events, one page of them: `first` or
    /// `last` (at most 250) is required, as on Shopify; cursors are the
    /// events' ids.
    // One parameter per argument of Shopify's `Fulfillment.events`.
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default)] reverse: bool,
        #[graphql(default)] sort_key: FulfillmentEventSortKeys,
    ) -> async_graphql::Result<Connection<String, FulfillmentEvent>> {
        let first = page_size("first", first)?;
        let last = page_size("last", last)?;
        if first.is_none() && last.is_none() {
            return Err(async_graphql::Error::new(
                "you must provide one of first or last",
            ));
        }
        // The history is in time order.
        let mut events: Vec<FulfillmentEvent> = self
            .fulfillment
            .history
            .iter()
            .filter_map(FulfillmentEvent::of)
            .collect();
        if sort_key == FulfillmentEventSortKeys::Id {
            events.sort_by_key(|e| e.number);
        }
        if reverse {
            events.reverse();
        }
        let at = |cursor: &str| {
            events
                .iter()
                .position(|e| e.number.to_string() == cursor)
                .ok_or_else(|| {
                    async_graphql::Error::new(format!(
                        "cursor '{cursor}' is not an event of this fulfillment"
                    ))
                })
        };
        let mut start = match &after {
            Some(cursor) => at(cursor)? + 1,
            None => 0,
        };
        let mut end = match &before {
            Some(cursor) => at(cursor)?,
            None => events.len(),
        }
        .max(start);
        if let Some(n) = first {
            end = end.min(start + n);
        }
        if let Some(n) = last {
            start = start.max(end.saturating_sub(n));
        }
        let mut page = Connection::new(start > 0, end < events.len());
        page.edges.extend(
            events
                .drain(start..end)
                .map(|e| Edge::new(e.number.to_string(), e)),
        );
        Ok(page)
    }
}

/// A page size argument: 0 to [`PAGE_LIMIT`].
fn page_size(name: &str, value: Option<i32>) -> async_graphql::Result<Option<usize>> {
    value
        .map(|n| {
            usize::try_from(n)
                .ok()
                .filter(|_| n <= PAGE_LIMIT)
                .ok_or_else(|| {
                    async_graphql::Error::new(format!(
                        "argument `{name}` is {n}: it must be between 0 and {PAGE_LIMIT}"
                    ))
                })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_name_their_kind_and_a_positive_number() {
        assert_eq!(
            parse_gid(FULFILLMENT, "gid://shopify/Fulfillment/255858046"),
            Some(255858046)
        );
        for bad in [
            "255858046",
            "gid://shopify/Fulfillment/0",
            "gid://shopify/Fulfillment/abc",
            "gid://shopify/FulfillmentEvent/1",
            "gid://shopify/Order/1",
            "gid://other/Fulfillment/1",
            "",
        ] {
            assert_eq!(parse_gid(FULFILLMENT, bad), None, "{bad}");
        }
    }

    #[test]
    fn rest_field_names_read_in_graphql_spelling() {
        assert_eq!(camel_case("status"), "status");
        assert_eq!(camel_case("happened_at"), "happenedAt");
        assert_eq!(camel_case("estimated_delivery_at"), "estimatedDeliveryAt");
    }

    #[test]
    fn every_status_is_a_word_of_the_status_map() {
        let maps = crate::providers::status_map::StatusMaps::load(None).unwrap();
        for status in FulfillmentEventStatus::ALL {
            let word = status.word();
            assert_eq!(FulfillmentEventStatus::of_word(word), Some(status));
            assert_ne!(
                maps.shopify.kind("fulfillment_event", word),
                crate::canonical::EventKind::Unmapped,
                "{word}"
            );
        }
    }
}
