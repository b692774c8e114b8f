//! What only the Redis backend has to prove with whole gateways: the
//! fault tests (gateways killed under load, two gateways sharing one
//! Redis, a Redis outage, a duplicate storm) and automations across
//! gateway processes, each against a redis-server (or Cluster) of its own
//! that it may stop and restart. The storage boundary itself is
//! tests/storage.

mod automations;
mod faults;
#[path = "../helpers/mod.rs"]
mod helpers;
