//! How each planned update looks on the wire: the real samples of
//! `providers/<provider>/samples` (the catalogue `shipgate send-sample`
//! ships) with the update's fulfillment, word, time and message written in,
//! and the headers `shipgate sign` would print for them.

use std::fmt;

use rand::Rng;
use serde_json::{json, Value};
use shipgate::canonical::Provider;
use shipgate::cli::send_sample::SAMPLES;
use shipgate::cli::sign::{provider_headers, DeliveryArgs};
use shipgate::fulfillment::timestamp;

use crate::defined::{DefinedWire, News};
use crate::plan::{Fulfillment, Update};

/// Shopify's numeric ids of one run start at its id times this, so
/// `--fulfillments` stays below it.
pub const MAX_FULFILLMENTS: u32 = 1_000_000;
/// Shopify's event ids of one run start at its id times this.
const EVENT_IDS_PER_RUN: u64 = 1_000_000_000;

/// Names everything one run creates, so that runs against the same
/// gateway never touch each other's fulfillments.
#[derive(Debug, Clone, Copy)]
pub struct RunId(u32);

impl RunId {
    pub fn random() -> Self {
        Self(rand::thread_rng().gen())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// What the gateway under load accepts from each provider.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub shop: String,
    pub shopify_secret: String,
    pub carriyo_tenant: String,
    pub carriyo_key: String,
    pub redo_store_id: String,
    pub redo_token: String,
    /// The store's name: data-defined senders' paths name it.
    pub store: String,
    pub aftership_secret: String,
    pub easypost_secret: String,
}

impl Credentials {
    /// Whether they can be written raw into a request, as the load does:
    /// header values without control characters (a line break would end
    /// the field), the Redo store id as a single path segment.
    fn check(&self) -> Result<(), String> {
        let headers = [
            ("--shop", &self.shop),
            ("--carriyo-tenant", &self.carriyo_tenant),
            ("--carriyo-key", &self.carriyo_key),
            ("--redo-token", &self.redo_token),
        ];
        for (flag, value) in headers {
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(format!("{flag} holds a control character"));
            }
        }
        let segment = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        if self.redo_store_id.is_empty() || !self.redo_store_id.chars().all(segment) {
            return Err(format!(
                "--redo-store-id '{}' is not letters, digits and -._~",
                self.redo_store_id
            ));
        }
        Ok(())
    }
}

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A fulfillment's references, as its provider sends them and as the read
/// API takes them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Refs {
    pub order: String,
    pub fulfillment: String,
}

/// How an update is found in its fulfillment's `trackingHistory`: by its
/// unique message, or for Carriyo, whose shipments carry no message, by its
/// unique time among the fulfillment's Carriyo entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mark {
    Message(String),
    CarriyoTime(String),
}

impl Mark {
    /// The marks one history entry bears, to count against.
    pub fn of_entry(entry: &Value) -> impl Iterator<Item = Mark> {
        let text = |field: &str| entry[field].as_str().map(str::to_owned);
        let message = text("message").map(Mark::Message);
        let time = (entry["provider"] == "carriyo")
            .then(|| text("datetime").map(Mark::CarriyoTime))
            .flatten();
        message.into_iter().chain(time)
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message(m) => write!(f, "message '{m}'"),
            Self::CarriyoTime(t) => write!(f, "Carriyo entry at {t}"),
        }
    }
}

/// The samples, parsed once, and what varies them.
pub struct Wire {
    run: RunId,
    credentials: Credentials,
    shopify_event: Value,
    carriyo_shipment: Value,
    redo_order: Value,
    redo_fulfillment: Value,
    redo_status: Value,
    defined: DefinedWire,
}

/// A compiled-in sample, parsed.
fn sample(provider: Provider, name: &str) -> Result<Value, String> {
    let sample = SAMPLES
        .iter()
        .find(|s| s.provider == provider && s.name == name)
        .ok_or_else(|| format!("shipgate ships no {provider} sample '{name}'"))?;
    serde_json::from_str(sample.body).map_err(|e| format!("the {provider} sample '{name}': {e}"))
}

impl Wire {
    pub fn new(run: RunId, credentials: Credentials) -> Result<Self, String> {
        credentials.check()?;
        Ok(Self {
            run,
            shopify_event: sample(Provider::Shopify, "fulfillment_event_create")?,
            carriyo_shipment: sample(Provider::Carriyo, "shipment_in_transit")?,
            redo_order: sample(Provider::Redo, "create_order")?,
            redo_fulfillment: sample(Provider::Redo, "create_fulfillment")?,
            redo_status: sample(Provider::Redo, "shipment_status")?,
            defined: DefinedWire::new(
                &credentials.store,
                &credentials.aftership_secret,
                &credentials.easypost_secret,
            )?,
            credentials,
        })
    }

    /// Shopify's numeric order and fulfillment id of a fulfillment.
    fn shopify_id(&self, f: &Fulfillment) -> u64 {
        u64::from(self.run.0) * u64::from(MAX_FULFILLMENTS) + u64::from(f.number)
    }

    pub fn refs(&self, f: &Fulfillment) -> Refs {
        let run = self.run;
        let n = f.number;
        match f.provider {
            Provider::Shopify => Refs {
                order: self.shopify_id(f).to_string(),
                fulfillment: self.shopify_id(f).to_string(),
            },
            Provider::Carriyo => Refs {
                order: format!("LOAD-{run}-{n}"),
                fulfillment: format!("LOAD-{run}-{n}-1"),
            },
            Provider::Redo | Provider::Defined(_) => Refs {
                order: format!("load-{run}-{n}"),
                fulfillment: format!("load-{run}-{n}-1"),
            },
        }
    }

    /// How update `n` is found again in its fulfillment's history.
    pub fn mark(&self, n: usize, update: &Update, f: &Fulfillment) -> Mark {
        match f.provider {
            Provider::Carriyo => Mark::CarriyoTime(timestamp(update.occurred_at)),
            Provider::Shopify | Provider::Redo | Provider::Defined(_) => {
                Mark::Message(self.message(n))
            }
        }
    }

    fn message(&self, n: usize) -> String {
        format!("load {} {n}", self.run)
    }

    /// The delivery that carries update `n`; built again for a retry, it
    /// is the same body with the same delivery id.
    pub fn delivery(&self, n: usize, update: &Update, f: &Fulfillment) -> Delivery {
        let refs = self.refs(f);
        let at = timestamp(update.occurred_at);
        let delivery_id = Some(update.delivery_id.to_string());
        match f.provider {
            Provider::Shopify => {
                let id = u64::from(self.run.0) * EVENT_IDS_PER_RUN + n as u64;
                let mut body = self.shopify_event.clone();
                body["id"] = json!(id);
                body["admin_graphql_api_id"] =
                    json!(format!("gid://shopify/FulfillmentEvent/{id}"));
                body["order_id"] = json!(self.shopify_id(f));
                body["fulfillment_id"] = json!(self.shopify_id(f));
                body["status"] = json!(update.word);
                body["message"] = json!(self.message(n));
                body["happened_at"] = json!(at);
                self.signed(
                    Provider::Shopify,
                    &self.credentials.shopify_secret,
                    "/webhooks/shopify".into(),
                    delivery_id,
                    &body,
                )
            }
            Provider::Carriyo => {
                let mut body = self.carriyo_shipment.clone();
                body["shipment_id"] = json!(format!("SHP-{}-{}", self.run, f.number));
                body["tenant"] = json!(self.credentials.carriyo_tenant);
                body["references"]["partner_order_reference"] = json!(refs.order);
                body["references"]["partner_shipment_reference"] = json!(refs.fulfillment);
                body["post_shipping_info"]["status"] = json!(update.word);
                body["update_date"] = json!(at);
                self.signed(
                    Provider::Carriyo,
                    &self.credentials.carriyo_key,
                    "/webhooks/carriyo".into(),
                    delivery_id,
                    &body,
                )
            }
            Provider::Redo => {
                let mut body = self.redo_status.clone();
                body["status"] = json!(update.word);
                body["message"] = json!(self.message(n));
                body["datetime"] = json!(at);
                let path = format!(
                    "{}/{}/fulfillments/{}/shipment-status",
                    self.redo_orders_path(),
                    refs.order,
                    refs.fulfillment
                );
                self.signed(
                    Provider::Redo,
                    &self.credentials.redo_token,
                    path,
                    delivery_id,
                    &body,
                )
            }
            Provider::Defined(name) => self.defined.delivery(
                name,
                &News {
                    refs: &refs,
                    word: update.word,
                    at: &at,
                    message: &self.message(n),
                    delivery_id: &update.delivery_id.to_string(),
                },
            ),
        }
    }

    /// The Redo order and fulfillment a Redo fulfillment needs before any
    /// shipment status can be posted to it.
    pub fn redo_setup(&self, f: &Fulfillment) -> [Delivery; 2] {
        let refs = self.refs(f);
        let mut order = self.redo_order.clone();
        order["orderId"] = json!(refs.order);
        let mut fulfillment = self.redo_fulfillment.clone();
        fulfillment["fulfillmentId"] = json!(refs.fulfillment);
        let orders = self.redo_orders_path();
        [
            self.signed(
                Provider::Redo,
                &self.credentials.redo_token,
                orders.clone(),
                None,
                &order,
            ),
            self.signed(
                Provider::Redo,
                &self.credentials.redo_token,
                format!("{orders}/{}/fulfillments", refs.order),
                None,
                &fulfillment,
            ),
        ]
    }

    fn redo_orders_path(&self) -> String {
        format!("/v2.2/stores/{}/orders", self.credentials.redo_store_id)
    }

    /// `body` with the headers its provider sends, its credential made
    /// from `secret`.
    fn signed(
        &self,
        provider: Provider,
        secret: &str,
        path: String,
        delivery_id: Option<String>,
        body: &Value,
    ) -> Delivery {
        let body = body.to_string().into_bytes();
        let c = &self.credentials;
        let args = DeliveryArgs {
            secret: secret.to_owned(),
            topic: None,
            shop: c.shop.clone(),
            event_id: delivery_id,
            tenant: Some(c.carriyo_tenant.clone()),
        };
        Delivery {
            headers: provider_headers(provider, &args, &body),
            path,
            body,
        }
    }
}
