//! `shipgate send-sample`: posts one of the compiled-in provider samples
//! (`providers/<provider>/samples/`) to a running gateway, on the path and
//! with the headers that provider uses, and prints the answer.

use std::process::ExitCode;

use clap::Args;

use super::sign::{provider_headers, DeliveryArgs};
use crate::canonical::Provider;
use crate::providers::shopify;

/// Where a sample goes and how it is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A provider's own signed or keyed delivery, on `path`.
    Delivery { path: &'static str },
    /// A Shopify webhook on `topic`.
    ShopifyWebhook { topic: &'static str },
    /// Shopify's REST-shaped events API, with an access token.
    ShopifyRest { path: &'static str },
}

/// One sample and where it goes; `{storeId}` in a path is the Redo store.
pub struct Sample {
    pub provider: Provider,
    pub name: &'static str,
    pub body: &'static str,
    route: Route,
}

macro_rules! sample {
    ($provider:ident, $dir:literal, $name:literal, $route:expr) => {
        Sample {
            provider: Provider::$provider,
            name: $name,
            body: include_str!(concat!(
                "../../providers/",
                $dir,
                "/samples/",
                $name,
                ".json"
            )),
            route: $route,
        }
    };
}

/// The Redo-style order and fulfillment the samples create and update.
const REDO_FULFILLMENTS: &str = "/v2.2/stores/{storeId}/orders/R-2001/fulfillments";
const REDO_SHIPMENT_STATUS: &str =
    "/v2.2/stores/{storeId}/orders/R-2001/fulfillments/F-2001-1/shipment-status";

/// Every sample shipped with shipgate.
pub const SAMPLES: &[Sample] = &[
    sample!(
        Shopify,
        "shopify",
        "fulfillment_create",
        Route::ShopifyWebhook {
            topic: "fulfillments/create"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "fulfillment_update",
        Route::ShopifyWebhook {
            topic: "fulfillments/update"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "fulfillment_event_create",
        Route::ShopifyWebhook {
            topic: "fulfillment_events/create"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "fulfillment_event_delivered",
        Route::ShopifyWebhook {
            topic: "fulfillment_events/create"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "fulfillment_event_out_for_delivery",
        Route::ShopifyWebhook {
            topic: "fulfillment_events/create"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "fulfillment_cancelled",
        Route::ShopifyWebhook {
            topic: "fulfillments/update"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "orders_create",
        Route::ShopifyWebhook {
            topic: "orders/create"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "app_uninstalled",
        Route::ShopifyWebhook {
            topic: "app/uninstalled"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "customers_redact",
        Route::ShopifyWebhook {
            topic: "customers/redact"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "fulfillment_event_delete",
        Route::ShopifyWebhook {
            topic: "fulfillment_events/delete"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "rest_event_create",
        Route::ShopifyRest {
            path: "/admin/api/2025-10/orders/450789469/fulfillments/255858046/events.json"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "graphql_fulfillment_event_create",
        Route::ShopifyRest {
            path: "/admin/api/2025-10/graphql.json"
        }
    ),
    sample!(
        Shopify,
        "shopify",
        "graphql_fulfillment_events",
        Route::ShopifyRest {
            path: "/admin/api/2025-10/graphql.json"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_in_transit",
        Route::Delivery {
            path: "/webhooks/carriyo"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_delivered",
        Route::Delivery {
            path: "/webhooks/carriyo"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_failed_delivery_attempt",
        Route::Delivery {
            path: "/webhooks/carriyo"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_promised_delivery_update",
        Route::Delivery {
            path: "/webhooks/carriyo"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_return_delivered",
        Route::Delivery {
            path: "/webhooks/carriyo"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_without_shipment_reference",
        Route::Delivery {
            path: "/webhooks/carriyo"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_local_time",
        Route::Delivery {
            path: "/webhooks/carriyo"
        }
    ),
    sample!(
        Carriyo,
        "carriyo",
        "shipment_status_update",
        Route::Delivery {
            path: "/orders/shipment-status-update"
        }
    ),
    sample!(
        Redo,
        "redo",
        "create_order",
        Route::Delivery {
            path: "/v2.2/stores/{storeId}/orders"
        }
    ),
    sample!(
        Redo,
        "redo",
        "create_fulfillment",
        Route::Delivery {
            path: REDO_FULFILLMENTS
        }
    ),
    sample!(
        Redo,
        "redo",
        "shipment_status",
        Route::Delivery {
            path: REDO_SHIPMENT_STATUS
        }
    ),
    sample!(
        Redo,
        "redo",
        "shipment_event",
        Route::Delivery {
            path: REDO_SHIPMENT_STATUS
        }
    ),
];

/// `shipgate send-sample <provider> <sample>`.
#[derive(Debug, Args)]
pub struct SendSampleArgs {
    /// Whose sample: shopify, carriyo or redo.
    pub provider: Provider,
    /// The sample's file name in providers/<provider>/samples, without
    /// `.json` (an unknown name lists the known ones).
    pub sample: String,
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Redo: the store id in the path.
    #[arg(long, default_value = "64e5a8a1af49a89df37e4ee7")]
    pub store_id: String,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

impl Sample {
    /// The path this sample is posted to.
    fn path(&self, store_id: &str) -> String {
        let path = match self.route {
            Route::Delivery { path } | Route::ShopifyRest { path } => path,
            Route::ShopifyWebhook { .. } => "/webhooks/shopify",
        };
        path.replace("{storeId}", store_id)
    }

    /// The headers it is sent with.
    fn headers(&self, delivery: &DeliveryArgs) -> Vec<(&'static str, String)> {
        match self.route {
            Route::ShopifyRest { .. } => vec![
                ("Content-Type", "application/json".to_owned()),
                (shopify::ACCESS_TOKEN_HEADER, delivery.secret.clone()),
            ],
            Route::ShopifyWebhook { topic } => {
                let delivery = DeliveryArgs {
                    topic: delivery.topic.clone().or_else(|| Some(topic.to_owned())),
                    ..delivery.clone()
                };
                provider_headers(self.provider, &delivery, self.body.as_bytes())
            }
            Route::Delivery { .. } => {
                provider_headers(self.provider, delivery, self.body.as_bytes())
            }
        }
    }
}

/// Posts the sample and prints the gateway's answer; fails unless 2xx.
pub async fn send_sample(args: SendSampleArgs) -> ExitCode {
    let Some(sample) = SAMPLES
        .iter()
        .find(|s| s.provider == args.provider && s.name == args.sample)
    else {
        let known: Vec<&str> = SAMPLES
            .iter()
            .filter(|s| s.provider == args.provider)
            .map(|s| s.name)
            .collect();
        eprintln!(
            "shipgate send-sample: {} has no sample '{}'; known: {}",
            args.provider,
            args.sample,
            known.join(", ")
        );
        return ExitCode::FAILURE;
    };
    let url = format!(
        "{}{}",
        args.url.trim_end_matches('/'),
        sample.path(&args.store_id)
    );
    let mut request = reqwest::Client::new().post(&url).body(sample.body);
    for (name, value) in sample.headers(&args.delivery) {
        request = request.header(name, value);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("shipgate send-sample: POST {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let answer = response.text().await.unwrap_or_default();
    println!("POST {url} -> {status}");
    println!("{answer}");
    if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_file_is_in_the_catalogue() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/providers");
        for provider in Provider::ALL {
            let dir = format!("{root}/{provider}/samples");
            for entry in std::fs::read_dir(&dir).unwrap() {
                let file = entry.unwrap().file_name().into_string().unwrap();
                let name = file.trim_end_matches(".json");
                assert!(
                    SAMPLES
                        .iter()
                        .any(|s| s.provider == provider && s.name == name),
                    "{dir}/{file} is not in send-sample's catalogue"
                );
            }
        }
    }
}
