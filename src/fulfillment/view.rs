//! A fulfillment in Redo's fulfillment shape, the one outward shape for a
//! fulfillment: Redo-style answers use it as is, the ops API with its
//! extra fields.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::canonical::{Direction, Location, Provider};
use crate::domain::{EntryKind, Fulfillment, HistoryEntry, LineItem};

/// Redo's `fulfillment` object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Fulfillment)]
pub struct FulfillmentView {
    pub id: String,
    pub created_at: String,
    pub line_items: Vec<LineItem>,
    pub tracking_company: Option<String>,
    pub tracking_number: Option<String>,
    pub status: &'static str,
    pub estimated_delivery_date: Option<NaiveDate>,
    pub delivered_at: Option<String>,
    pub tracking_history: Vec<HistoryView>,
    /// Ops only: which store, order and when it last changed.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub ops: Option<OpsFields>,
}

/// The fields the ops API adds to the fulfillment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpsFields {
    pub store: String,
    pub order_id: String,
    pub updated_at: String,
    /// `forward`, or `return` for a customer's return; not in Redo's
    /// shape, whose schema allows no other keys.
    pub direction: Direction,
}

/// One `trackingHistory` entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TrackingHistoryEntry)]
pub struct HistoryView {
    pub message: String,
    pub status: String,
    pub datetime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationView>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub ops: Option<HistoryOpsFields>,
}

/// The fields the ops API adds to each history entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryOpsFields {
    pub event_id: String,
    pub provider: Provider,
    pub raw_status: String,
    pub kind: EntryKind,
    pub stale: bool,
    /// The provider API version the entry's delivery was written in
    /// (Shopify's `X-Shopify-API-Version`), when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// Redo's tracking location.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TrackingLocation)]
pub struct LocationView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

/// The schema of [`FulfillmentView::ops`]: Redo's fulfillment with
/// [`OpsFields`], each history entry with [`HistoryOpsFields`]. Only the
/// OpenAPI document uses this type, as the two shapes share one struct.
pub struct OpsFulfillment;

impl PartialSchema for OpsFulfillment {
    fn schema() -> RefOr<Schema> {
        let entry = AllOfBuilder::new()
            .item(Ref::from_schema_name(HistoryView::name()))
            .item(Ref::from_schema_name(HistoryOpsFields::name()));
        AllOfBuilder::new()
            .item(Ref::from_schema_name(FulfillmentView::name()))
            .item(Ref::from_schema_name(OpsFields::name()))
            .item(
                ObjectBuilder::new().property("trackingHistory", ArrayBuilder::new().items(entry)),
            )
            .into()
    }
}

impl ToSchema for OpsFulfillment {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.extend([
            (FulfillmentView::name().into(), FulfillmentView::schema()),
            (OpsFields::name().into(), OpsFields::schema()),
            (HistoryView::name().into(), HistoryView::schema()),
            (HistoryOpsFields::name().into(), HistoryOpsFields::schema()),
        ]);
        FulfillmentView::schemas(schemas);
        HistoryOpsFields::schemas(schemas);
    }
}

/// Times as Redo writes them: RFC 3339 in UTC with milliseconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl FulfillmentView {
    /// Redo's shape, as Redo-style clients get it.
    pub fn redo(f: &Fulfillment) -> Self {
        Self::build(f, false)
    }

    /// Redo's shape with the ops API's extra fields.
    pub fn ops(f: &Fulfillment) -> Self {
        Self::build(f, true)
    }

    fn build(f: &Fulfillment, ops: bool) -> Self {
        Self {
            id: f.key.fulfillment_ref.clone(),
            created_at: timestamp(f.created_at),
            line_items: f.line_items.clone(),
            tracking_company: f.carrier.clone(),
            tracking_number: f.tracking_number.clone(),
            status: f.status.as_str(),
            estimated_delivery_date: f.estimated_delivery_date,
            delivered_at: f.delivered_at.map(timestamp),
            tracking_history: f
                .history
                .iter()
                .map(|h| HistoryView::build(h, ops))
                .collect(),
            ops: ops.then(|| OpsFields {
                store: f.key.store.clone(),
                order_id: f.key.order_ref.clone(),
                updated_at: timestamp(f.updated_at),
                direction: f.direction,
            }),
        }
    }
}

impl HistoryView {
    fn build(h: &HistoryEntry, ops: bool) -> Self {
        Self {
            message: h.message.clone().unwrap_or_default(),
            status: h.status.clone(),
            datetime: timestamp(h.occurred_at),
            location: h.location.as_ref().map(LocationView::from),
            ops: ops.then(|| HistoryOpsFields {
                event_id: h.event_id.to_string(),
                provider: h.provider,
                raw_status: h.raw_status.clone(),
                kind: h.kind,
                stale: h.stale,
                api_version: h.api_version.clone(),
            }),
        }
    }
}

impl From<&Location> for LocationView {
    fn from(l: &Location) -> Self {
        Self {
            city: l.city.clone(),
            state: l.state.clone(),
            country: l.country.clone(),
            postal_code: l.postal_code.clone(),
        }
    }
}
