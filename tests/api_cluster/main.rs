//! The black-box suite of tests/api again, on the Redis backend with
//! `storage.redis_cluster`: the same modules, each app on a throwaway
//! three-node Redis Cluster started once for this binary, under a key
//! prefix of its own, so that every script, pipeline and key of the
//! backend is shown to work where a partition's slot lives on one node of
//! three. The module list mirrors tests/api/main.rs: keep the two in step.

#[path = "../api/automations.rs"]
mod automations;
#[path = "../api/carriyo.rs"]
mod carriyo;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/openapi.rs"]
mod openapi;
#[path = "../api/ops.rs"]
mod ops;
#[path = "../api/ops_surface.rs"]
mod ops_surface;
#[path = "../api/redo.rs"]
mod redo;
#[path = "../api/request_id.rs"]
mod request_id;
#[path = "../api/shopify.rs"]
mod shopify;
#[path = "../api/shopify_rest.rs"]
mod shopify_rest;

/// The storage backend the suite runs on here (read by `helpers`).
const BACKEND: helpers::SuiteStore = helpers::SuiteStore::RedisCluster;
