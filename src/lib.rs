//! shipgate: a webhook ingestion gateway for shipment tracking.
//!
//! A delivery flows through the modules in this order:
//!
//! - [`ingest`]: the HTTP edge for providers. Bounds and reads the body,
//!   finds the store, and answers in the provider's own shapes.
//! - [`providers`]: one adapter per provider (Shopify, Carriyo, Redo) that
//!   verifies a delivery and turns it into an observation, using the
//!   data-driven status maps of `providers/<provider>/status_map.toml`.
//! - [`canonical`]: the one event shape and vocabulary everything after the
//!   adapters speaks.
//! - [`storage`]: the durable boundary: dedup claim + log append in one
//!   atomic step, the partitioned event log, fulfillment state with
//!   compare-and-set; `memory` and `redis` backends.
//! - [`fulfillment`]: the core that applies events to each fulfillment
//!   (status vs event, stale guard, ETA, history) and the workers that feed
//!   it from the log.
//! - [`ops`]: the admin API, health checks, Prometheus metrics and the
//!   dashboard's timeline.
//!
//! [`http`] holds what the two HTTP boundaries ([`ingest`], [`ops`]) share:
//! request ids, the request span, `Retry-After`.
//!
//! [`app`] wires them together from [`config`], serving one route table
//! that also writes the OpenAPI document; [`telemetry`] sets up logs;
//! [`cli`] holds the binary's tools besides `serve` (check-config, sign,
//! send-sample).

pub mod app;
pub mod canonical;
pub mod cli;
pub mod config;
pub mod fulfillment;
pub mod http;
pub mod ingest;
pub mod ops;
pub mod providers;
pub mod storage;
pub mod telemetry;
