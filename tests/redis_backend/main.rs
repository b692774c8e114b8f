//! What only the Redis backend has to prove: its Lua scripts and edge
//! cases through the `Storage` trait against a real Redis, and the fault
//! tests (gateways killed under load, two gateways sharing one Redis, a
//! Redis outage, a duplicate storm), each against a redis-server of its
//! own that it may stop and restart.

mod automations;
mod faults;
// Shared with tests/api, where every helper is used; here only some are.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod storage;

/// The storage backend `spawn_app` uses here (read by `helpers`).
const BACKEND: helpers::SuiteStore = helpers::SuiteStore::Redis;
