//! shipgate: a webhook ingestion gateway for shipment tracking.
//!
//! The modules stand in layers, each using only the ones below it
//! (`tests/layering.rs` checks it); a delivery climbs down them:
//!
//! - [`app`]: wires everything from [`config`] and serves it: the route
//!   table and the OpenAPI document, the background threads, shutdown.
//! - [`ingest`]: the HTTP edge for providers. Bounds and reads the body,
//!   finds the store, and answers in the provider's own shapes.
//!   [`ops`]: the admin API, health checks, Prometheus metrics and the
//!   dashboard. [`cli`]: the binary's tools besides `serve`
//!   (check-config, sign, send-sample).
//! - [`fulfillment`]: the core that applies events to each fulfillment,
//!   the workers that feed it from the log, and the automations an apply
//!   fires (rules, dispatch, retries, dead letters).
//! - [`storage`]: the durable boundary, split by capability (the event
//!   log with its atomic claim + append, fulfillments, orders, the
//!   outbox, stats and the feed); `memory` and `redis` backends.
//!   [`providers`]: one adapter per provider (Shopify, Carriyo, Redo)
//!   that verifies a delivery and turns it into an observation, using
//!   the status maps of `providers/<provider>/status_map.toml`.
//!   [`telemetry`]: logs. [`http`]: what the two HTTP boundaries share
//!   (request ids, the request span, `Retry-After`).
//! - [`config`]: the layered settings, parsed into domain types.
//! - [`domain`]: the records storage keeps and the core changes: a
//!   fulfillment with its pure apply rules, orders, outbox deliveries.
//! - [`canonical`]: the one event shape and vocabulary everything after
//!   the adapters speaks.

pub mod app;
pub mod canonical;
pub mod cli;
pub mod config;
pub mod domain;
pub mod fulfillment;
pub mod http;
pub mod ingest;
pub mod ops;
pub mod providers;
pub mod storage;
pub mod telemetry;
