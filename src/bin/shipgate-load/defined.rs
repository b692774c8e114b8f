//! The data-defined senders on the wire: AfterShip and EasyPost
//! deliveries built from their shipped samples and signed as each
//! provider signs, with the header its shipped definition names, to
//! `POST /webhooks/{provider}/{store}`.

use serde_json::{json, Value};
use shipgate::canonical::{DefinedName, Provider};
use shipgate::providers::defined::{Catalog, Loaded};

use crate::wire::{Delivery, Refs};

/// The defined providers the load can send as.
pub const SENDERS: [&str; 2] = ["aftership", "easypost"];

/// Each sender's status words in the order a shipment goes through them:
/// AfterShip's tags, EasyPost's tracker statuses.
pub fn words(provider: DefinedName) -> &'static [&'static str] {
    match provider.as_str() {
        "aftership" => &[
            "InfoReceived",
            "InTransit",
            "InTransit",
            "OutForDelivery",
            "AttemptFail",
            "OutForDelivery",
            "Delivered",
        ],
        _ => &[
            "pre_transit",
            "in_transit",
            "in_transit",
            "out_for_delivery",
            "out_for_delivery",
            "delivered",
        ],
    }
}

/// What varies one delivery of a defined sender.
pub struct News<'a> {
    pub refs: &'a Refs,
    pub word: &'a str,
    /// RFC 3339.
    pub at: &'a str,
    pub message: &'a str,
    pub delivery_id: &'a str,
}

/// The shipped samples and definitions, and the store's secrets.
pub struct DefinedWire {
    catalog: Catalog,
    aftership: Value,
    easypost: Value,
    store: String,
    aftership_secret: String,
    easypost_secret: String,
}

/// A shipped sample of a defined sender, parsed.
fn sample(loaded: &[Loaded], provider: &str, name: &str) -> Result<Value, String> {
    let sample = loaded
        .iter()
        .filter(|l| l.definition.name.as_str() == provider)
        .flat_map(|l| &l.samples)
        .find(|s| s.file.ends_with(&format!("/{name}.json")))
        .ok_or_else(|| format!("shipgate ships no {provider} sample '{name}'"))?;
    serde_json::from_slice(&sample.body).map_err(|e| format!("the {provider} sample '{name}': {e}"))
}

impl DefinedWire {
    /// `store`'s deliveries, signed with these secrets.
    pub fn new(store: &str, aftership_secret: &str, easypost_secret: &str) -> Result<Self, String> {
        let segment = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        if store.is_empty() || !store.chars().all(segment) {
            return Err(format!("--store '{store}' is not letters, digits and -._~"));
        }
        let loaded = shipgate::providers::defined::load_all(None)
            .map_err(|e| format!("the shipped definitions: {e}"))?;
        Ok(Self {
            catalog: Catalog::of(&loaded),
            aftership: sample(&loaded, "aftership", "tracking_update_in_transit")?,
            easypost: sample(&loaded, "easypost", "tracker_updated_in_transit")?,
            store: store.to_owned(),
            aftership_secret: aftership_secret.to_owned(),
            easypost_secret: easypost_secret.to_owned(),
        })
    }

    /// The delivery of `news` from `provider`.
    pub fn delivery(&self, provider: DefinedName, news: &News<'_>) -> Delivery {
        let (body, secret) = match provider.as_str() {
            "aftership" => (self.aftership_body(news), &self.aftership_secret),
            _ => (self.easypost_body(news), &self.easypost_secret),
        };
        let body = body.to_string().into_bytes();
        let mut headers = vec![("Content-Type", "application/json".to_owned())];
        if let Some(definition) = self.catalog.get(provider.as_str()) {
            let auth = &definition.auth;
            let name = match auth.header() {
                "aftership-hmac-sha256" => "aftership-hmac-sha256",
                "x-hmac-signature" => "X-Hmac-Signature",
                _ => "Authorization",
            };
            headers.push((name, auth.credential(secret, &body)));
        }
        Delivery {
            path: format!("/webhooks/{}/{}", Provider::Defined(provider), self.store),
            headers,
            body,
        }
    }

    /// An AfterShip tracking_update whose latest checkpoint is the news.
    fn aftership_body(&self, news: &News<'_>) -> Value {
        let mut body = self.aftership.clone();
        body["event_id"] = json!(news.delivery_id);
        let msg = &mut body["msg"];
        msg["id"] = json!(news.refs.fulfillment);
        msg["order_id"] = json!(news.refs.order);
        msg["tag"] = json!(news.word);
        msg["subtag"] = json!(format!("{}_001", news.word));
        if let Some(latest) = msg["checkpoints"].as_array_mut().and_then(|c| c.last_mut()) {
            latest["checkpoint_time"] = json!(news.at);
            latest["message"] = json!(news.message);
        }
        body
    }

    /// An EasyPost tracker.updated whose latest detail is the news.
    fn easypost_body(&self, news: &News<'_>) -> Value {
        let mut body = self.easypost.clone();
        body["id"] = json!(format!("evt_{}", news.delivery_id.replace('-', "")));
        let result = &mut body["result"];
        result["id"] = json!(news.refs.fulfillment);
        result["shipment_id"] = json!(news.refs.order);
        result["status"] = json!(news.word);
        if let Some(latest) = result["tracking_details"]
            .as_array_mut()
            .and_then(|d| d.last_mut())
        {
            latest["datetime"] = json!(news.at);
            latest["message"] = json!(news.message);
        }
        body
    }
}
