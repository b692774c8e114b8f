//! Orders created through the Redo-style API. Shopify and Carriyo never
//! create orders here: their fulfillments exist as soon as an event names
//! them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An order as a Redo-style client created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The store's config name.
    pub store: String,
    /// Our id for the order (Redo's `orderId` in its answers).
    pub id: String,
    /// The client's own id (`orderId` in the create request).
    pub external_id: String,
    pub created_at: DateTime<Utc>,
    /// The create request as sent, answered back by get-order.
    pub body: serde_json::Value,
}
