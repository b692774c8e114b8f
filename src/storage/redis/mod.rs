//! The production backend: one Redis 7 (or Redis Cluster) shared by every
//! gateway process, reached over a multiplexed connection per thread that
//! opens it (each HTTP worker thread and each background thread; see
//! [`crate::storage::reopen`]); on a Cluster, one that routes each command
//! to its slot's node ([`connection`]).
//!
//! Key layout, all under `storage.key_prefix` (`P` below). Everything one
//! event touches atomically lives in its partition's hash-tag slot
//! `{P:p<n>}`, so every script runs on one Cluster slot:
//! - `P:{P:p<n>}:log`: the partition's stream, with one consumer group;
//!   it keeps, beside the entries not yet acknowledged, the newest
//!   `storage.recent_events / partitions` acknowledged ones, which are the
//!   recent-events feed (see `lua/trim_log.lua`);
//! - `P:{P:p<n>}:seen:…`: dedup keys (content fingerprint; delivery id
//!   scoped to its fulfillment), valued with the event id that claimed them;
//! - `P:{P:p<n>}:stats`, `:unmapped`: counters and unmapped words of the
//!   partition, merged on read; `:store-stats`, `:store-unmapped` the same
//!   by store (fields and members are JSON arrays `[store, provider,
//!   outcome or word]`), for ops tokens scoped to stores;
//! - `P:{P:p<n>}:lease`: the worker holding the partition;
//! - `P:{P:p<n>}:fulfillment:…`: a hash of the version `v`, the summary
//!   `doc`, a field `e:<event id>` per history entry and `a:<event id>`
//!   per applied event, changed by a Lua compare-and-set on `v` that
//!   writes only the fields an apply changed. The same script queues the
//!   automation deliveries the change fired and sets the stall watch, in
//!   the partition's outbox keys (see [`outbox`]).
//!
//! Outside the partitions: `P:order-fulfillments:…` (a set per order),
//! `P:fulfillment-orders:…` (a set per store and fulfillment reference),
//! `P:{P:orders:<store>}:…` (orders and their two ids), `P:seq:…`,
//! `P:stats` (refused requests, added in batches), `P:{P:limit:…}` (a
//! store's rate-limit bucket for one provider, expiring once full; see
//! [`limits`]) and `P:workers` (live workers, for fair lease shares).

mod batched;
mod connection;
mod feed;
mod fulfillments;
mod keys;
mod limits;
mod log;
mod orders;
mod outbox;
mod scripts;
mod upgrades;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use redis::{ErrorKind, RedisError};

use self::connection::{Connection, Endpoint};
use self::keys::Keys;
use self::log::TrimMark;
use self::scripts::Scripts;
use super::{Storage, StorageError};
use crate::canonical::FulfillmentKey;
use crate::config::StorageSettings;

/// The consumer group every partition stream is read through.
const GROUP: &str = "workers";

/// The stream field holding the event's JSON (as `claim_and_append` writes it).
const EVENT_FIELD: &str = "event";

/// How often a process that started while Redis was down tries again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// The Redis storage backend.
pub struct RedisStorage {
    /// Empty until Redis first answers; a process started while Redis was
    /// down fills it from a background task.
    connection: Arc<OnceLock<Connection>>,
    /// `host:port` for messages: the URL may carry a password.
    address: String,
    keys: Keys,
    scripts: Scripts,
    partitions: u32,
    dedup_ttl_ms: u64,
    recent_per_partition: usize,
    /// Where this process's worker may next trim each partition's log.
    trim_marks: Mutex<HashMap<u32, TrimMark>>,
}

impl From<RedisError> for StorageError {
    fn from(e: RedisError) -> Self {
        if e.kind() == ErrorKind::TypeError || e.code() == Some("WRONGTYPE") {
            StorageError::Corrupt(format!("redis: {e}"))
        } else {
            StorageError::Unavailable(format!("redis: {e}"))
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}

/// Milliseconds for PX/PEXPIRE, which refuse 0.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `value`'s JSON as a script argument, written into a buffer of about
/// its size: `serde_json::to_string` starts at 128 bytes and grows it
/// three times for an event, on every ingest and apply.
fn json_argument<T: serde::Serialize + ?Sized>(
    value: &T,
    size: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut json = Vec::with_capacity(size);
    serde_json::to_writer(&mut json, value).map_err(corrupt)?;
    Ok(json)
}

/// Connects (see [`Endpoint::connect`] for the timeouts) and makes sure
/// every partition's consumer group exists.
async fn establish(
    endpoint: &Endpoint,
    keys: &Keys,
    partitions: u32,
) -> Result<Connection, RedisError> {
    let mut connection = endpoint.connect().await?;
    create_groups(&mut connection, keys, partitions).await?;
    Ok(connection)
}

/// Creates each partition's stream and consumer group if missing (at
/// start, and again if Redis lost them), and deletes what older versions
/// left beside the logs ([`upgrades`]).
async fn create_groups(
    connection: &mut Connection,
    keys: &Keys,
    partitions: u32,
) -> Result<(), RedisError> {
    let created = join_all((0..partitions).map(|p| {
        let mut connection = connection.clone();
        let log = keys.log(p);
        async move {
            upgrades::forget_recent_list(&mut connection, keys, p).await?;
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(log)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async::<()>(&mut connection)
                .await
        }
    }))
    .await;
    for result in created {
        match result {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Tries to connect every second until Redis answers or the storage is
/// dropped.
async fn keep_connecting(
    cell: Weak<OnceLock<Connection>>,
    endpoint: Endpoint,
    keys: Keys,
    partitions: u32,
) {
    loop {
        tokio::time::sleep(RECONNECT_EVERY).await;
        let Some(cell) = cell.upgrade() else {
            return;
        };
        match establish(&endpoint, &keys, partitions).await {
            Ok(connection) => {
                let _ = cell.set(connection);
                tracing::info!("connected to Redis (storage.redis_url)");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "Redis still unreachable"),
        }
    }
}

impl RedisStorage {
    /// Connects to `storage.redis_url`. A URL that cannot work fails here;
    /// an unreachable Redis does not: the process starts, answers 503 and
    /// `/ready` fails until Redis answers, so a deployment does not
    /// crash-loop while Redis restarts.
    pub async fn connect(settings: &StorageSettings) -> Result<Self, StorageError> {
        let partitions = settings.partitions;
        let unusable = |e: RedisError| {
            StorageError::Unavailable(format!("storage.redis_url is not a usable Redis URL: {e}"))
        };
        let (endpoint, address) =
            Endpoint::parse(settings.redis_url.expose(), settings.redis_cluster)
                .map_err(unusable)?;
        let keys = Keys::new(&settings.key_prefix, partitions);
        let connection = Arc::new(OnceLock::new());
        match establish(&endpoint, &keys, partitions).await {
            Ok(manager) => {
                let _ = connection.set(manager);
            }
            Err(e) => {
                tracing::error!(
                    redis = %address,
                    error = %e,
                    "cannot reach Redis at storage.redis_url; answering 503 until it does"
                );
                tokio::spawn(keep_connecting(
                    Arc::downgrade(&connection),
                    endpoint,
                    keys.clone(),
                    partitions,
                ));
            }
        }
        Ok(Self {
            connection,
            address,
            keys,
            scripts: Scripts::new(),
            partitions,
            dedup_ttl_ms: millis(settings.dedup_ttl),
            recent_per_partition: (settings.recent_events / partitions as usize).max(1),
            trim_marks: Mutex::new(HashMap::new()),
        })
    }

    /// A handle on the shared connection (cheap: it is multiplexed).
    fn connection(&self) -> Result<Connection, StorageError> {
        self.connection.get().cloned().ok_or_else(|| {
            StorageError::Unavailable(format!(
                "not connected to Redis at {} (storage.redis_url) yet",
                self.address
            ))
        })
    }

    fn partition_of(&self, key: &FulfillmentKey) -> u32 {
        key.partition(self.partitions)
    }
}

#[async_trait]
impl Storage for RedisStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        let mut connection = self.connection()?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
}
