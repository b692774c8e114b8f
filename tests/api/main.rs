//! The black-box suite: every test starts the real application on a free
//! port with its own configuration and talks to it over HTTP only, once
//! on each backend (`#[apply(backends)]`: memory, Redis, Redis Cluster),
//! the test's name ending in the backend's. The Redis and the Cluster are
//! throwaway servers started once for this binary (or `REDIS_URL`), each
//! app under a key prefix of its own.

mod automations;
mod carriyo;
mod carriyo_edge;
mod carriyo_returns;
mod defined_providers;
#[path = "../helpers/mod.rs"]
mod helpers;
mod hostile_inputs;
mod hostile_transport;
mod openapi;
mod openapi_property;
mod ops;
mod ops_surface;
mod redo;
mod redo_schema;
mod request_id;
mod shopify;
mod shopify_graphql;
mod shopify_rest;
mod store_limits;
mod tenant_ops;
