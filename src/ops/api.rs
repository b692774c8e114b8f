//! The admin API, `/api/v1`, behind the admin bearer tokens: what ops
//! people and the dashboard read. Each answer is cut to the token's
//! stores: another store's data is answered as absent, never as
//! forbidden, so store names do not leak.

use std::collections::BTreeMap;

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::admin::Admin;
use super::error::{OpsError, OpsErrorBody};

use crate::app::AppState;
use crate::canonical::{CanonicalEvent, Direction, EventId, FulfillmentKey, Provider};
use crate::config::Role;
use crate::domain::Trigger;
use crate::domain::{Delivery, DeliveryFilter, DeliveryState, FailureReason, Requeued};
use crate::fulfillment::{FulfillmentView, OpsFulfillment};
use crate::storage::{EventFilter, Outcome, UnmappedWord};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// Registers the admin API.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(fulfillment)
        .service(events)
        .service(stats)
        .service(unmapped)
        .service(backlog)
        .service(automations)
        .service(deliveries)
        .service(dead_letters)
        .service(replay_dead_letters)
        .service(replay_dead_letter);
}

type ApiResult = Result<HttpResponse, OpsError>;

/// One fulfillment: Redo's shape plus where it belongs and, per history
/// entry, which provider said what.
#[utoipa::path(
    operation_id = "ops_get_fulfillment",
    tag = "ops",
    summary = "Read a fulfillment with its whole tracking history",
    params(
        ("store" = String, Path, min_length = 1, description = "The store's name in config (`acme`)"),
        ("order" = String, Path, min_length = 1, description = "The provider's order reference"),
        ("fulfillment" = String, Path, min_length = 1, description = "The provider's fulfillment reference"),
    ),
    responses(
        (status = 200, description = "The fulfillment", body = OpsFulfillment),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 404, description = "No such fulfillment", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/stores/{store}/orders/{order}/fulfillments/{fulfillment}")]
async fn fulfillment(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> ApiResult {
    let (store, order_ref, fulfillment_ref) = path.into_inner();
    let key = FulfillmentKey {
        store,
        order_ref,
        fulfillment_ref,
    };
    let found = if admin.sees(&key.store) {
        state.core.get(&key).await?
    } else {
        None
    };
    match found {
        Some(f) => Ok(HttpResponse::Ok().json(FulfillmentView::ops(&f))),
        None => Err(OpsError::NotFound(format!("no fulfillment {key} is known"))),
    }
}

/// Which recent events to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// `shopify`, `carriyo` or `redo`.
    #[param(value_type = Option<Provider>, inline)]
    provider: Option<String>,
    /// The store's name in config.
    store: Option<String>,
    /// 1 to 1000; 50 when absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// An event id: only events older than it (the next page).
    #[param(format = Uuid)]
    before: Option<String>,
}

/// `GET /api/v1/events`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct EventsPage {
    /// Newest first.
    events: Vec<CanonicalEvent>,
}

/// Recent canonical events, newest first, a page at a time.
#[utoipa::path(
    operation_id = "ops_list_events",
    tag = "ops",
    summary = "Recent canonical events, newest first",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventsPage),
        (status = 400, description = "A query parameter is malformed (named)", body = OpsErrorBody),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/events")]
async fn events(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let query = web::Query::<EventsQuery>::from_query(req.query_string())
        .map_err(OpsError::query)?
        .into_inner();
    let provider = query_word::<Provider>("provider", query.provider)?;
    let before = query
        .before
        .map(|b| {
            b.parse::<EventId>()
                .map_err(|_| OpsError::Invalid(format!("query `before`: '{b}' is not an event id")))
        })
        .transpose()?;
    let limit = checked_limit(query.limit)?;
    let filter = EventFilter {
        provider,
        store: query.store.filter(|s| !s.is_empty()),
        scope: admin.scope(),
        before,
        limit,
    };
    let events = state.storage.recent_events(&filter).await?;
    Ok(HttpResponse::Ok().json(EventsPage { events }))
}

/// `GET /api/v1/stats`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct StatsAnswer {
    /// Counts by provider, then by outcome (accepted, duplicate,
    /// unauthorized, invalid, unmapped); every one present.
    providers: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

/// Ingest outcomes since the storage was new, per provider; for a token
/// scoped to stores, those of its stores' events that reached the log.
#[utoipa::path(
    operation_id = "ops_stats",
    tag = "ops",
    summary = "Ingest outcomes per provider",
    responses(
        (status = 200, description = "Every provider and outcome, zeros included", body = StatsAnswer),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/stats")]
async fn stats(admin: Admin, state: web::Data<AppState>) -> ApiResult {
    let counted = match admin.scope() {
        None => state.refusals.stats(&*state.storage).await?,
        Some(stores) => state.storage.store_stats(&stores).await?,
    };
    // Every provider and outcome appears, zeros included, so a dashboard
    // or script never has to guess whether a key is missing or zero.
    let providers = state
        .metrics
        .providers()
        .map(|p| {
            let counts = Outcome::ALL
                .into_iter()
                .map(|o| {
                    let n = counted
                        .get(&p)
                        .and_then(|c| c.get(&o))
                        .copied()
                        .unwrap_or(0);
                    (o.as_str(), n)
                })
                .collect();
            (p.as_str(), counts)
        })
        .collect();
    Ok(HttpResponse::Ok().json(StatsAnswer { providers }))
}

/// `GET /api/v1/unmapped`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct UnmappedAnswer {
    unmapped: Vec<UnmappedWord>,
}

/// Provider words the status maps do not know, with how often each came
/// (in the token's stores' events).
#[utoipa::path(
    operation_id = "ops_unmapped_words",
    tag = "ops",
    summary = "Provider words the status maps do not know",
    responses(
        (status = 200, description = "The words, with counts", body = UnmappedAnswer),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/unmapped")]
async fn unmapped(admin: Admin, state: web::Data<AppState>) -> ApiResult {
    let words = match admin.scope() {
        None => state.storage.unmapped_words().await?,
        Some(stores) => state.storage.store_unmapped_words(&stores).await?,
    };
    Ok(HttpResponse::Ok().json(UnmappedAnswer { unmapped: words }))
}

/// `GET /api/v1/backlog`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct BacklogAnswer {
    /// Waiting entries, by partition number.
    partitions: Vec<u64>,
    total: u64,
}

/// Entries waiting in each partition of the event log: how far the
/// workers are behind. Shown to every token: partitions mix stores, and
/// the lag is the same for all of them.
#[utoipa::path(
    operation_id = "ops_backlog",
    tag = "ops",
    summary = "Event-log entries waiting to be applied, per partition",
    responses(
        (status = 200, description = "The backlog", body = BacklogAnswer),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/backlog")]
async fn backlog(_: Admin, state: web::Data<AppState>) -> ApiResult {
    let partitions = state.storage.backlog().await?;
    let total: u64 = partitions.iter().sum();
    Ok(HttpResponse::Ok().json(BacklogAnswer { partitions, total }))
}

/// A query parameter parsed as a word of the API (a provider, a state, a
/// reason). Empty is refused like any word outside the document's enum.
fn query_word<T>(name: &str, value: Option<String>) -> Result<Option<T>, OpsError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| OpsError::Invalid(format!("query `{name}`: {e}")))
}

/// The `limit` of a listing, within bounds.
fn checked_limit(limit: Option<usize>) -> Result<usize, OpsError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(OpsError::Invalid(format!(
            "query `limit`: {limit} is not between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

/// An automation rule as ops read it; secrets are only said to be set.
#[derive(Debug, Serialize, ToSchema)]
struct RuleView<'a> {
    name: &'a str,
    /// The statuses and events it fires on.
    #[schema(value_type = Vec<String>)]
    on: &'a [Trigger],
    /// Only fulfillments going these ways (`forward`, `return`).
    directions: &'a [Direction],
    /// Only these stores' fulfillments (those the token sees); empty for
    /// every store.
    #[schema(value_type = Vec<String>)]
    stores: Vec<&'a str>,
    /// The target URL (config refuses credentials in it).
    url: String,
    /// Whether it sends `Authorization: Bearer`.
    bearer_token: bool,
    /// Whether it signs with Standard Webhooks headers.
    signed: bool,
}

/// `GET /api/v1/automations`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct AutomationsAnswer<'a> {
    automations: Vec<RuleView<'a>>,
}

#[utoipa::path(
    operation_id = "ops_automations",
    tag = "ops",
    summary = "The automation rules",
    responses(
        (status = 200, description = "The rules", body = AutomationsAnswer),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/automations")]
async fn automations(admin: Admin, state: web::Data<AppState>) -> ApiResult {
    let automations = state
        .automations
        .rules()
        .all()
        .iter()
        .filter_map(|rule| {
            let stores: Vec<&str> = rule
                .stores
                .iter()
                .filter(|s| admin.sees(s))
                .map(String::as_str)
                .collect();
            // A rule for every store fires for the token's too; one for
            // named stores only if it names one the token sees.
            (rule.stores.is_empty() || !stores.is_empty()).then_some((rule, stores))
        })
        .map(|(rule, stores)| RuleView {
            name: &rule.name,
            on: &rule.on,
            directions: &rule.directions,
            stores,
            url: rule.display_url(),
            bearer_token: rule.bearer_token.is_some(),
            signed: rule.signing_secret.is_some(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(AutomationsAnswer { automations }))
}

/// Filters for deliveries and dead letters.
#[derive(Debug, Deserialize)]
struct DeliveryQuery {
    rule: Option<String>,
    store: Option<String>,
    order: Option<String>,
    /// The provider's fulfillment reference.
    fulfillment: Option<String>,
    state: Option<String>,
    reason: Option<String>,
    limit: Option<usize>,
    /// Replay even a delivered message.
    force: Option<bool>,
}

impl DeliveryQuery {
    fn read(req: &HttpRequest) -> Result<Self, OpsError> {
        Ok(web::Query::<Self>::from_query(req.query_string())
            .map_err(OpsError::query)?
            .into_inner())
    }

    /// The filter it asks for, within the token's stores; dead-letter
    /// paths always mean state dead.
    fn filter(self, admin: &Admin, dead_only: bool) -> Result<DeliveryFilter, OpsError> {
        let state = if dead_only {
            Some(DeliveryState::Dead)
        } else {
            query_word::<DeliveryState>("state", self.state)?
        };
        let text = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok(DeliveryFilter {
            rule: text(self.rule),
            store: text(self.store),
            order_ref: text(self.order),
            fulfillment_ref: text(self.fulfillment),
            state,
            reason: query_word::<FailureReason>("reason", self.reason)?,
            scope: admin.scope(),
            limit: checked_limit(self.limit)?,
        })
    }
}

/// A delivery as ops read it.
#[derive(Serialize, ToSchema)]
#[schema(as = Delivery)]
struct DeliveryView<'a> {
    id: &'a str,
    rule: &'a str,
    store: &'a str,
    order: &'a str,
    fulfillment: &'a str,
    trigger: &'static str,
    state: DeliveryState,
    /// A dead letter's reason: why its last attempt failed.
    reason: Option<FailureReason>,
    created_at: chrono::DateTime<chrono::Utc>,
    next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    attempts: &'a [crate::domain::Attempt],
    /// The body sent: `{type, trigger, at, store, order, fulfillment, event}`.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// `GET /api/v1/deliveries`'s answer.
#[derive(Serialize, ToSchema)]
struct DeliveriesAnswer<'a> {
    /// Newest first.
    deliveries: Vec<DeliveryView<'a>>,
}

/// `GET /api/v1/dead-letters`'s answer.
#[derive(Serialize, ToSchema)]
struct DeadLettersAnswer<'a> {
    /// Newest first.
    dead_letters: Vec<DeliveryView<'a>>,
}

/// `POST /api/v1/dead-letters/{id}/replay`'s answer.
#[derive(Serialize, ToSchema)]
struct ReplayAnswer<'a> {
    /// The delivery, queued again.
    replayed: DeliveryView<'a>,
}

/// `POST /api/v1/dead-letters/replay`'s answer.
#[derive(Serialize, ToSchema)]
struct BulkReplayAnswer {
    /// How many dead letters were queued again.
    replayed: usize,
    ids: Vec<String>,
}

impl<'a> From<&'a Delivery> for DeliveryView<'a> {
    fn from(d: &'a Delivery) -> Self {
        Self {
            id: &d.id,
            rule: &d.rule,
            store: &d.fulfillment.store,
            order: &d.fulfillment.order_ref,
            fulfillment: &d.fulfillment.fulfillment_ref,
            trigger: d.trigger.as_str(),
            state: d.state,
            reason: (d.state == DeliveryState::Dead)
                .then(|| d.last_failure())
                .flatten(),
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            attempts: &d.attempts,
            payload: serde_json::from_str(&d.body).unwrap_or(serde_json::Value::Null),
        }
    }
}

async fn list_deliveries(
    admin: &Admin,
    state: &AppState,
    req: &HttpRequest,
    dead_only: bool,
) -> Result<Vec<Delivery>, OpsError> {
    let filter = DeliveryQuery::read(req)?.filter(admin, dead_only)?;
    Ok(state.automations.storage().deliveries(&filter).await?)
}

/// `GET /api/v1/deliveries?rule=&store=&order=&fulfillment=&state=&reason=&limit=`,
/// newest first.
#[utoipa::path(
    operation_id = "ops_list_deliveries",
    tag = "ops",
    summary = "Automation deliveries, newest first",
    params(
        ("rule" = Option<String>, Query, description = "A rule's name"),
        ("store" = Option<String>, Query, description = "The store's name in config"),
        ("order" = Option<String>, Query, description = "The provider's order reference"),
        ("fulfillment" = Option<String>, Query, description = "The provider's fulfillment reference"),
        ("state" = Option<DeliveryState>, Query, description = "pending, delivered or dead"),
        ("reason" = Option<FailureReason>, Query, description = "Why the last attempt failed"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000; 50 when absent"),
    ),
    responses(
        (status = 200, description = "The deliveries that pass the filter", body = DeliveriesAnswer),
        (status = 400, description = "A query parameter is malformed (named)", body = OpsErrorBody),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/deliveries")]
async fn deliveries(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let found = list_deliveries(&admin, &state, &req, false).await?;
    let deliveries = found.iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(DeliveriesAnswer { deliveries }))
}

/// `GET /api/v1/dead-letters?reason=&rule=&...`, newest first.
#[utoipa::path(
    operation_id = "ops_list_dead_letters",
    tag = "ops",
    summary = "Dead letters: deliveries whose every attempt failed, newest first",
    params(
        ("rule" = Option<String>, Query, description = "A rule's name"),
        ("store" = Option<String>, Query, description = "The store's name in config"),
        ("order" = Option<String>, Query, description = "The provider's order reference"),
        ("fulfillment" = Option<String>, Query, description = "The provider's fulfillment reference"),
        ("reason" = Option<FailureReason>, Query, description = "Why the last attempt failed"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000; 50 when absent"),
    ),
    responses(
        (status = 200, description = "The dead letters that pass the filter", body = DeadLettersAnswer),
        (status = 400, description = "A query parameter is malformed (named)", body = OpsErrorBody),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/dead-letters")]
async fn dead_letters(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let found = list_deliveries(&admin, &state, &req, true).await?;
    let dead_letters = found.iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(DeadLettersAnswer { dead_letters }))
}

/// `POST /api/v1/dead-letters/{id}/replay[?force=true]`: sends a dead
/// letter again, with its `webhook-id`. A delivered message is refused
/// unless forced, so a replay clicked twice does not notify twice.
/// Another store's delivery is unknown (404); a `read` token's replay of
/// its own store's is forbidden (403).
#[utoipa::path(
    operation_id = "ops_replay_dead_letter",
    tag = "ops",
    summary = "Send a dead letter again",
    params(
        ("id" = String, Path, min_length = 1, description = "The delivery's id (its webhook-id)"),
        ("force" = Option<bool>, Query, description = "Send it again even if it was delivered"),
    ),
    responses(
        (status = 200, description = "Queued again", body = ReplayAnswer),
        (status = 400, description = "A query parameter is malformed (named)", body = OpsErrorBody),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 403, description = "The token's role may not replay (read)", body = OpsErrorBody),
        (status = 404, description = "No such delivery in the token's stores", body = OpsErrorBody),
        (status = 409, description = "Delivered already (unless forced), or queued already", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[post("/api/v1/dead-letters/{id}/replay")]
async fn replay_dead_letter(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult {
    let force = DeliveryQuery::read(&req)?.force.unwrap_or(false);
    let id = id.into_inner();
    let unknown = || OpsError::NotFound(format!("no delivery {id} is known"));
    if !admin.sees_all() {
        let delivery = state.automations.storage().delivery(&id).await?;
        if !delivery.is_some_and(|d| admin.sees(&d.fulfillment.store)) {
            return Err(unknown());
        }
    }
    admin.may(Role::Operate, "replay dead letters")?;
    match state.automations.replay(&id, force).await? {
        Requeued::Queued(d) => Ok(HttpResponse::Ok().json(ReplayAnswer {
            replayed: DeliveryView::from(&*d),
        })),
        Requeued::AlreadyDelivered => Err(OpsError::Conflict(format!(
            "delivery {id} was delivered already; add ?force=true to send it again"
        ))),
        Requeued::AlreadyPending => Err(OpsError::Conflict(format!(
            "delivery {id} is queued for delivery already"
        ))),
        Requeued::NotFound => Err(unknown()),
    }
}

/// `POST /api/v1/dead-letters/replay?reason=&rule=&...`: sends every
/// matching dead letter of the token's stores again, paced by
/// `delivery.replay_pace`; a `read` token is refused (403).
#[utoipa::path(
    operation_id = "ops_replay_dead_letters",
    tag = "ops",
    summary = "Send every matching dead letter again, paced by delivery.replay_pace",
    params(
        ("rule" = Option<String>, Query, description = "A rule's name"),
        ("store" = Option<String>, Query, description = "The store's name in config"),
        ("order" = Option<String>, Query, description = "The provider's order reference"),
        ("fulfillment" = Option<String>, Query, description = "The provider's fulfillment reference"),
        ("reason" = Option<FailureReason>, Query, description = "Why the last attempt failed"),
    ),
    responses(
        (status = 200, description = "The dead letters queued again", body = BulkReplayAnswer),
        (status = 400, description = "A query parameter is malformed (named)", body = OpsErrorBody),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 403, description = "The token's role may not replay (read)", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[post("/api/v1/dead-letters/replay")]
async fn replay_dead_letters(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult {
    admin.may(Role::Operate, "replay dead letters")?;
    let filter = DeliveryQuery::read(&req)?.filter(&admin, true)?;
    let ids = state.automations.replay_dead_letters(&filter).await?;
    Ok(HttpResponse::Ok().json(BulkReplayAnswer {
        replayed: ids.len(),
        ids,
    }))
}
