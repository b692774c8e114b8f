//! `shipgate sign` and `shipgate send-sample`: the headers a provider would
//! send with a body, so integrators can craft deliveries by hand
//! (`curl -H @headers.txt --data-binary @body.json ...`) or have a
//! compiled-in sample sent for them.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::canonical::Provider;
use crate::providers::defined::Catalog;
use crate::providers::{carriyo, redo, shopify, verify};

/// The Shopify topic signed when none is given.
const DEFAULT_TOPIC: &str = "fulfillment_events/create";
/// The Shopify API version the headers claim.
const SHOPIFY_API_VERSION: &str = "2025-10";

/// What a delivery carries besides its body.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// The provider's credential: Shopify's webhook secret (its access
    /// token for the REST-shaped sample), Carriyo's API key, Redo's bearer
    /// token.
    #[arg(long, env = "SHIPGATE_SIGN_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Shopify: X-Shopify-Topic [default: fulfillment_events/create, or
    /// the sample's own topic].
    #[arg(long)]
    pub topic: Option<String>,
    /// Shopify: X-Shopify-Shop-Domain.
    #[arg(long, default_value = "acme.myshopify.com")]
    pub shop: String,
    /// The delivery's id: Shopify's X-Shopify-Event-Id, Carriyo's event-id,
    /// Redo's Idempotency-Key [default: a fresh UUID; none for Redo].
    #[arg(long)]
    pub event_id: Option<String>,
    /// Carriyo: tenant-id [default: the body's `tenant`].
    #[arg(long)]
    pub tenant: Option<String>,
}

/// `shipgate sign <provider>`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Whose headers: shopify, carriyo or redo.
    pub provider: Provider,
    /// The body to sign, byte for byte [default: standard input].
    #[arg(long)]
    pub body: Option<PathBuf>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// The headers `provider` sends with `body`, in sending order.
pub fn provider_headers(
    provider: Provider,
    delivery: &DeliveryArgs,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let fresh_id = || {
        delivery
            .event_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
    };
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    match provider {
        Provider::Shopify => headers.extend([
            (
                shopify::TOPIC_HEADER,
                delivery
                    .topic
                    .as_deref()
                    .unwrap_or(DEFAULT_TOPIC)
                    .to_owned(),
            ),
            (shopify::SHOP_DOMAIN_HEADER, delivery.shop.clone()),
            ("X-Shopify-API-Version", SHOPIFY_API_VERSION.to_owned()),
            (shopify::EVENT_ID_HEADER, fresh_id()),
            (shopify::WEBHOOK_ID_HEADER, uuid::Uuid::now_v7().to_string()),
            (
                shopify::HMAC_HEADER,
                verify::hmac_sha256_base64(&delivery.secret, body),
            ),
        ]),
        Provider::Carriyo => {
            let shipment: Option<serde_json::Value> = serde_json::from_slice(body).ok();
            let field = |pointer: &str| {
                shipment
                    .as_ref()
                    .and_then(|s| s.pointer(pointer))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            headers.push((carriyo::API_KEY_HEADER, delivery.secret.clone()));
            if let Some(tenant) = delivery.tenant.clone().or_else(|| field("/tenant")) {
                headers.push((carriyo::TENANT_HEADER, tenant));
            }
            headers.push((carriyo::EVENT_ID_HEADER, fresh_id()));
            if let Some(status) = field("/post_shipping_info/status") {
                headers.push(("trigger", status));
            }
        }
        Provider::Redo => {
            headers.push((
                redo::AUTHORIZATION_HEADER,
                format!("Bearer {}", delivery.secret),
            ));
            if let Some(key) = &delivery.event_id {
                headers.push((redo::IDEMPOTENCY_KEY_HEADER, key.clone()));
            }
        }
        Provider::Defined(name) => {
            // Parsing the provider's name found its definition, so the
            // shipped catalog has it.
            let catalog = Catalog::load(None).unwrap_or_default();
            if let Some(definition) = catalog.get(name.as_str()) {
                let auth = &definition.auth;
                // A one-shot command: the name lives as long as the process.
                let name: &'static str = Box::leak(auth.header().to_owned().into_boxed_str());
                headers.push((name, auth.credential(&delivery.secret, body)));
            }
        }
    }
    headers
}

/// Prints the headers, one `Name: value` a line, as curl's `-H @file`
/// reads them.
pub fn sign(args: SignArgs) -> ExitCode {
    let body = match &args.body {
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map(|_| body)
                .map_err(|e| format!("standard input: {e}"))
        }
    };
    match body {
        Ok(body) => {
            for (name, value) in provider_headers(args.provider, &args.delivery, &body) {
                println!("{name}: {value}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shipgate sign: cannot read the body: {e}");
            ExitCode::FAILURE
        }
    }
}
