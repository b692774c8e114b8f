//! The storage boundary against every backend through the `Storage`
//! trait: the contract every backend keeps runs on memory, Redis and a
//! Redis Cluster (`contract`); what only the Redis backend has to prove,
//! its keys, trimming, older versions' keys and reconnecting, runs on a
//! real Redis (`redis_only`).

mod contract;
mod fixtures;
#[path = "../helpers/mod.rs"]
mod helpers;
mod redis_only;
