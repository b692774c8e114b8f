//! The production backend: one Redis 7 (or Redis Cluster) shared by every
//! gateway process, reached over a multiplexed connection per thread that
//! opens it (each HTTP worker thread and the workers' thread; see
//! [`crate::storage::reopen`]); on a Cluster, one that routes each command
//! to its slot's node ([`connection`]).
//!
//! Key layout, all under `storage.key_prefix` (`P` below). Everything one
//! event touches atomically lives in its partition's hash-tag slot
//! `{P:p<n>}`, so every script runs on one Cluster slot:
//! - `P:{P:p<n>}:log`: the partition's stream, with one consumer group;
//!   it keeps, beside the entries not yet acknowledged, the newest
//!   `storage.recent_events / partitions` acknowledged ones, which are the
//!   recent-events feed (see `TRIM_LOG`);
//! - `P:{P:p<n>}:seen:…`: dedup keys (content fingerprint; delivery id
//!   scoped to its fulfillment), valued with the event id that claimed them;
//! - `P:{P:p<n>}:stats`, `:unmapped`: counters and unmapped words of the
//!   partition, merged on read;
//! - `P:{P:p<n>}:lease`: the worker holding the partition;
//! - `P:{P:p<n>}:fulfillment:…`: a hash of the version `v`, the summary
//!   `doc`, a field `e:<event id>` per history entry and `a:<event id>`
//!   per applied event, changed by a Lua compare-and-set on `v` that
//!   writes only the fields an apply changed. The same script queues the
//!   automation deliveries the change fired and sets the stall watch, in
//!   the partition's outbox keys (see [`outbox`]).
//!
//! Outside the partitions: `P:order-fulfillments:…` (a set per order),
//! `P:{P:orders:<store>}:…` (orders and their two ids), `P:seq:…`,
//! `P:stats` (refused requests) and `P:workers` (live workers, for fair
//! lease shares).

mod connection;
mod outbox;
mod script;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use redis::{ErrorKind, RedisError, Script, Value};
use tokio::time::Instant;

use self::connection::{Connection, Endpoint};
use self::script::{run_pipeline, ScriptCall};
use super::{
    Claim, EventFilter, FulfillmentWrite, LogEntry, LogPosition, OrderFulfillment, Outcome, Stats,
    Storage, StorageError, UnmappedWord, Versioned,
};
use crate::canonical::{self, CanonicalEvent, EventId, EventKind, FulfillmentKey, Provider};
use crate::config::StorageSettings;
use crate::domain::{
    Delivery, DeliveryFilter, Fulfillment, HistoryChange, HistoryEntry, Order, OutboxWrite,
    Requeued,
};

/// The consumer group every partition stream is read through.
const GROUP: &str = "workers";
/// The stream field holding the event's JSON (as `claim_and_append` writes it).
const EVENT_FIELD: &str = "event";
/// Prefixes of the fulfillment hash's fields besides `v` and `doc`: one
/// per history entry and one per applied event, so an apply writes its own
/// fields and never the whole history again.
const HISTORY_FIELD: &str = "e:";
const APPLIED_FIELD: &str = "a:";
/// How often a process that started while Redis was down tries again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// How often an idle worker looks for new entries. Polling rather than a
/// blocking XREADGROUP, which would stall the shared connection.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// Recent events read per partition and round trip when listing them.
const RECENT_PAGE: usize = 64;

/// A Lua function that claims both dedup keys and appends the event, or
/// only counts a duplicate; answers the id that claimed the event first,
/// or false when this claim is new. KEYS from `k + 1`: log, stats,
/// unmapped, then the dedup keys (delivery first, as the memory backend
/// checks) up to the last key. ARGV from `a + 1`: event id, dedup ttl ms,
/// event JSON, provider, "1" if unmapped, raw word.
/// `SET NX GET` (Redis 7) claims a key and reads a holder in one call; a
/// claim made before a later key turns out taken is undone, so a duplicate
/// writes nothing; so is every claim if the append fails (the only write
/// that can fail on a sound key space), so that the sender's retry is not
/// taken for a duplicate of an event never recorded. The log itself is the
/// recent-events feed (see `TRIM_LOG`), so an event is written once.
const CLAIM_AND_APPEND_FN: &str = r"
local function claim_and_append(k, a)
  for i = k + 4, #KEYS do
    local original = redis.call('SET', KEYS[i], ARGV[a + 1], 'NX', 'PX', ARGV[a + 2], 'GET')
    if original then
      for j = k + 4, i - 1 do
        redis.call('DEL', KEYS[j])
      end
      redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':duplicate', 1)
      return original
    end
  end
  local appended = redis.pcall('XADD', KEYS[k + 1], '*', 'event', ARGV[a + 3])
  if type(appended) == 'table' and appended.err then
    for j = k + 4, #KEYS do
      redis.call('DEL', KEYS[j])
    end
    return appended
  end
  redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':accepted', 1)
  if ARGV[a + 5] == '1' then
    redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':unmapped', 1)
    redis.call('ZINCRBY', KEYS[k + 3], 1, ARGV[a + 4] .. ':' .. ARGV[a + 6])
  end
  return false
end
";

/// A Lua function that writes a fulfillment if its version is still the
/// expected one ("" for none yet), with the change to its history, and
/// what the change fired: the stall watch and the deliveries (queued by
/// `outbox::ENQUEUE`, which must precede it). Answers 1, or 0 when the
/// version moved. KEYS: the partition's outbox, due, next and stall keys,
/// the fulfillment hash, then a queue and a document per delivery. ARGV:
/// delivery count, stall ("" to leave, "clear", or the stall time in ms),
/// the fulfillment's stall member, expected, new version, summary, the
/// number of history fields to set and to delete, those fields (name and
/// value pairs, then names), then the deliveries.
const COMPARE_AND_SET_FN: &str = r"
local function compare_and_set()
  local current = redis.call('HGET', KEYS[5], 'v')
  if ARGV[4] == '' then
    if current then return 0 end
  elseif current ~= ARGV[4] then
    return 0
  end
  local sets, dels = tonumber(ARGV[7]), tonumber(ARGV[8])
  local at = 9 + 2 * sets
  redis.call('HSET', KEYS[5], 'v', ARGV[5], 'doc', ARGV[6], unpack(ARGV, 9, at - 1))
  if dels > 0 then
    redis.call('HDEL', KEYS[5], unpack(ARGV, at, at + dels - 1))
  end
  if ARGV[2] == 'clear' then
    redis.call('ZREM', KEYS[4], ARGV[3])
  elseif ARGV[2] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
  end
  enqueue(at + dels, tonumber(ARGV[1]))
  return 1
end
";

/// `claim_and_append` on its own: KEYS and ARGV as it takes them.
const CLAIM_AND_APPEND: &str = "return claim_and_append(0, 0)";

/// `compare_and_set` on its own: KEYS and ARGV as it takes them.
const COMPARE_AND_SET: &str = "return compare_and_set()";

/// Claims and appends an event and, if the claim is new, writes its
/// fulfillment, in one step: the paths that apply an update before they
/// answer pay one round trip for both. KEYS: `compare_and_set`'s, then
/// `claim_and_append`'s; ARGV likewise, the claim's last. Answers the
/// first claimant's id for a duplicate (nothing written), else 1 or 0 as
/// `compare_and_set` (the event is appended either way).
const CLAIM_APPEND_AND_SET: &str = r"
local original = claim_and_append(5 + 2 * tonumber(ARGV[1]), #ARGV - 6)
if original then return original end
return compare_and_set()
";

/// `compare_and_set` for several fulfillments of one partition whose writes
/// fire no deliveries, in one call: a worker's batch pays the script's
/// overhead once per partition, not once per fulfillment. KEYS: the
/// partition's stall key, then the fulfillment hashes. ARGV, per hash in
/// KEYS order: stall, stall member, expected, new version, summary, the
/// number of history fields to set and to delete, those fields. Answers 1
/// (written) or 0 (the version moved) per hash.
const COMPARE_AND_SET_MANY: &str = r"
local written, at = {}, 1
for k = 2, #KEYS do
  local stall, member, expected = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local sets, dels = tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6])
  local fields = at + 7
  local after = fields + 2 * sets + dels
  local current = redis.call('HGET', KEYS[k], 'v')
  if (expected == '' and not current) or (expected ~= '' and current == expected) then
    redis.call('HSET', KEYS[k], 'v', ARGV[at + 3], 'doc', ARGV[at + 4],
      unpack(ARGV, fields, fields + 2 * sets - 1))
    if dels > 0 then
      redis.call('HDEL', KEYS[k], unpack(ARGV, fields + 2 * sets, after - 1))
    end
    if stall == 'clear' then
      redis.call('ZREM', KEYS[1], member)
    elseif stall ~= '' then
      redis.call('ZADD', KEYS[1], stall, member)
    end
    written[k - 1] = 1
  else
    written[k - 1] = 0
  end
  at = after
end
return written
";

/// Drops the log entries before a stream id, or before the oldest entry
/// still pending for any worker if that is older: every entry before both
/// is applied and acknowledged (entries are delivered in order, and one
/// delivered and not pending was acknowledged). Without its group (Redis
/// lost it) nothing can be known pending, so nothing is dropped, and the
/// acknowledgement it rides with still goes through. KEYS: log. ARGV:
/// group, id.
const TRIM_LOG: &str = r"
local function older(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, bms = tonumber(ams), tonumber(bms)
  return ams < bms or (ams == bms and tonumber(aseq) < tonumber(bseq))
end
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if pending.err then
  return 0
end
local bound = ARGV[2]
if pending[1] > 0 and older(pending[2], bound) then
  bound = pending[2]
end
return redis.call('XTRIM', KEYS[1], 'MINID', bound)
";

/// A partition's backlog: its entries not yet acknowledged, pending or
/// never delivered (the group's lag). KEYS: log. ARGV: group. Redis cannot
/// always tell the lag of a stream that entries were deleted from (older
/// versions deleted each on acknowledgement) until those deletions are
/// trimmed away; till then the stream's length, an upper bound, is the
/// answer.
const BACKLOG: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #group, 2 do
    fields[group[i]] = group[i + 1]
  end
  if fields['name'] == ARGV[1] and fields['lag'] then
    return fields['pending'] + fields['lag']
  end
end
return redis.call('XLEN', KEYS[1])
";

/// Stores an order under both its ids unless either is taken. KEYS: the
/// index of our id, the index of the client's id, the order document.
/// ARGV: our id, the order JSON.
const CREATE_ORDER: &str = r"
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
return 1
";

/// Marks a worker alive for `ttl` ms by Redis's clock (no skew between
/// machines), forgets expired ones and answers how many are alive.
const REGISTER_WORKER: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
";

/// Extends a lease if the worker still holds it. KEYS: lease. ARGV:
/// worker, ttl ms.
const RENEW_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Gives up a lease if the worker holds it, and drops the worker from the
/// partition's consumer group once nothing is pending for it, so restarts
/// do not pile up consumers. KEYS: lease, log. ARGV: worker, group.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
local pending = redis.pcall('XPENDING', KEYS[2], ARGV[2], '-', '+', 1, ARGV[1])
if type(pending) == 'table' and pending.err == nil and #pending == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], ARGV[1])
end
return 1
";

/// The Lua scripts, loaded into Redis on first use (EVALSHA, then a
/// reload when Redis lost its script cache).
struct Scripts {
    claim_and_append: Script,
    compare_and_set: Script,
    claim_append_and_set: Script,
    compare_and_set_many: Script,
    create_order: Script,
    register_worker: Script,
    renew_lease: Script,
    release_lease: Script,
    trim_log: Script,
    backlog: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            claim_and_append: Script::new(&format!("{CLAIM_AND_APPEND_FN}{CLAIM_AND_APPEND}")),
            compare_and_set: Script::new(&format!(
                "{}{COMPARE_AND_SET_FN}{COMPARE_AND_SET}",
                outbox::ENQUEUE
            )),
            claim_append_and_set: Script::new(&format!(
                "{}{CLAIM_AND_APPEND_FN}{COMPARE_AND_SET_FN}{CLAIM_APPEND_AND_SET}",
                outbox::ENQUEUE
            )),
            compare_and_set_many: Script::new(COMPARE_AND_SET_MANY),
            create_order: Script::new(CREATE_ORDER),
            register_worker: Script::new(REGISTER_WORKER),
            renew_lease: Script::new(RENEW_LEASE),
            release_lease: Script::new(RELEASE_LEASE),
            trim_log: Script::new(TRIM_LOG),
            backlog: Script::new(BACKLOG),
        }
    }
}

/// Names every key, so the layout in the module docs lives in one place.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    /// `P:{P:p<n>}:` for each partition, which starts every key in it:
    /// several such keys are built for every event ingested and applied.
    heads: Vec<String>,
}

impl Keys {
    fn new(prefix: &str, partitions: u32) -> Self {
        Self {
            prefix: prefix.to_owned(),
            heads: (0..partitions).map(|p| head_text(prefix, p)).collect(),
        }
    }

    /// The start of `partition`'s keys, with room for `more` bytes.
    fn head(&self, partition: u32, more: usize) -> String {
        match self.heads.get(partition as usize) {
            Some(head) => {
                let mut key = String::with_capacity(head.len() + more);
                key.push_str(head);
                key
            }
            // Only a partition number the settings do not know.
            None => head_text(&self.prefix, partition),
        }
    }

    /// `what` is written straight into the key.
    fn partition(&self, partition: u32, what: impl std::fmt::Display) -> String {
        let mut key = self.head(partition, 48);
        // Writing to a String cannot fail.
        let _ = write!(key, "{what}");
        key
    }

    /// A key of `partition` ending in `kind` and a fulfillment's id
    /// ([`fulfillment_id`]).
    fn of_fulfillment(&self, partition: u32, kind: &str, key: &FulfillmentKey) -> String {
        let id = fulfillment_id(key);
        let mut name = self.head(partition, kind.len() + id.len());
        name.push_str(kind);
        name.push_str(&id);
        name
    }

    fn log(&self, partition: u32) -> String {
        self.partition(partition, "log")
    }

    fn stats(&self, partition: u32) -> String {
        self.partition(partition, "stats")
    }

    fn unmapped(&self, partition: u32) -> String {
        self.partition(partition, "unmapped")
    }

    /// The recent-events list of versions before the log served the feed;
    /// deleted at start (see [`create_groups`]).
    fn superseded_recent_list(&self, partition: u32) -> String {
        self.partition(partition, "recent")
    }

    fn lease(&self, partition: u32) -> String {
        self.partition(partition, "lease")
    }

    fn content_seen(&self, partition: u32, fingerprint: &str) -> String {
        self.partition(partition, format_args!("seen:{fingerprint}"))
    }

    /// A delivery id is scoped to its fulfillment: the only scope Redis can
    /// check atomically with the append on a Cluster.
    fn delivery_seen(&self, partition: u32, key: &FulfillmentKey, delivery: &str) -> String {
        let mut name = self.of_fulfillment(partition, "seen:", key);
        name.push(':');
        name.push_str(delivery);
        name
    }

    fn fulfillment(&self, partition: u32, key: &FulfillmentKey) -> String {
        self.of_fulfillment(partition, "fulfillment:", key)
    }

    fn order_fulfillments(&self, store: &str, order_ref: &str) -> String {
        format!(
            "{}:order-fulfillments:{}",
            self.prefix,
            key_text(&[store, order_ref])
        )
    }

    fn order_index(&self, store: &str, id: &str) -> String {
        format!("{0}:{{{0}:orders:{store}}}:id:{id}", self.prefix)
    }

    fn order(&self, store: &str, id: &str) -> String {
        format!("{0}:{{{0}:orders:{store}}}:order:{id}", self.prefix)
    }

    fn sequence(&self, name: &str) -> String {
        format!("{}:seq:{name}", self.prefix)
    }

    fn refused_stats(&self) -> String {
        format!("{}:stats", self.prefix)
    }

    fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }
}

/// `P:{P:p<n>}:`, the start of every key of partition `n`: the hash tag
/// keeps them all in one Cluster slot.
fn head_text(prefix: &str, partition: u32) -> String {
    format!("{prefix}:{{{prefix}:p{partition}}}:")
}

/// An unambiguous text for a fulfillment key inside a Redis key.
fn fulfillment_id(key: &FulfillmentKey) -> String {
    key_text(&[&key.store, &key.order_ref, &key.fulfillment_ref])
}

/// Parts of a Redis key name as one unambiguous text: a JSON array of
/// strings, written without a `serde_json::Value` (these are built on
/// every ingest and apply).
fn key_text(parts: &[&str]) -> String {
    // Serialising strings cannot fail.
    serde_json::to_string(parts).unwrap_or_default()
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

/// The fulfillment hash's field holding one history entry.
fn history_field(id: &EventId) -> String {
    format!("{HISTORY_FIELD}{id}")
}

/// The fulfillment hash's field marking one event as applied.
fn applied_field(id: &EventId) -> String {
    format!("{APPLIED_FIELD}{id}")
}

/// A write's arguments as both compare-and-set scripts take them: stall,
/// stall member, expected version ("" for none), new version, summary, the
/// number of history fields to set and to delete, then those fields.
fn write_arguments(
    w: &FulfillmentWrite<'_>,
    call: &mut ScriptCall<'_>,
) -> Result<(), StorageError> {
    let change = w.change;
    call.arg(outbox::stall_argument(w.fired))
        .arg(fulfillment_id(&w.value.key))
        .arg(w.expected.map(|v| v.to_string()).unwrap_or_default())
        .arg(w.expected.map_or(1, |v| v + 1))
        .arg(json_argument(w.value, 512)?)
        .arg(change.applied.len() + change.added.len())
        .arg(change.removed.len());
    for id in &change.applied {
        call.arg(applied_field(id)).arg("");
    }
    for entry in &change.added {
        call.arg(history_field(&entry.event_id))
            .arg(json_argument(entry, 512)?);
    }
    for id in &change.removed {
        call.arg(history_field(id));
    }
    Ok(())
}

/// A fulfillment's version and summary document, without history.
fn summary(
    key: &FulfillmentKey,
    version: &str,
    doc: &str,
) -> Result<Versioned<Fulfillment>, StorageError> {
    Ok(Versioned {
        version: version
            .parse()
            .map_err(|e| corrupt(format!("fulfillment {key}: version '{version}': {e}")))?,
        value: serde_json::from_str(doc).map_err(|e| corrupt(format!("fulfillment {key}: {e}")))?,
    })
}

/// What applying `group` needs, from `HMGET v doc a:<id>…` (one applied
/// mark per event of the group): the summary, and which of the events
/// were applied already.
fn to_apply(
    key: &FulfillmentKey,
    group: &[&CanonicalEvent],
    fields: Vec<Option<String>>,
) -> Result<Option<Versioned<Fulfillment>>, StorageError> {
    let mut fields = fields.into_iter();
    let (Some(Some(version)), Some(Some(doc))) = (fields.next(), fields.next()) else {
        return Ok(None);
    };
    let mut read = summary(key, &version, &doc)?;
    for (event, mark) in group.iter().zip(fields) {
        if mark.is_some() {
            read.value.applied.insert(event.id);
        }
    }
    Ok(Some(read))
}

/// A whole fulfillment from all its hash's fields: version, summary,
/// history entries and applied marks. None when the hash is empty.
fn whole_fulfillment(
    key: &FulfillmentKey,
    fields: HashMap<String, String>,
) -> Result<Option<Versioned<Fulfillment>>, StorageError> {
    let (Some(version), Some(doc)) = (fields.get("v"), fields.get("doc")) else {
        return Ok(None);
    };
    let mut read = summary(key, version, doc)?;
    let value = &mut read.value;
    for (field, text) in &fields {
        if let Some(id) = field.strip_prefix(APPLIED_FIELD) {
            value.applied.insert(
                id.parse()
                    .map_err(|e| corrupt(format!("fulfillment {key}: field '{field}': {e}")))?,
            );
        } else if field.starts_with(HISTORY_FIELD) {
            value.history.push(
                serde_json::from_str(text)
                    .map_err(|e| corrupt(format!("fulfillment {key}: field '{field}': {e}")))?,
            );
        }
    }
    value
        .history
        .sort_by_key(|h: &HistoryEntry| (h.occurred_at, h.event_id));
    Ok(Some(read))
}

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

/// A partition's acknowledgements since its log was last trimmed. Trimming
/// to the entry acknowledged last a feed's worth of acknowledgements ago
/// keeps at least that many acknowledged entries (between one and two
/// feeds' worth), and costs one call per feed's worth.
#[derive(Debug, Default, Clone)]
struct TrimMark {
    /// The entry acknowledged last when the log was last trimmed.
    entry: Option<String>,
    /// Entries acknowledged since.
    since: usize,
}

impl TrimMark {
    /// The mark after `count` more acknowledgements ending with `last`,
    /// and the entry to trim before if it is time to.
    fn after(&self, count: usize, last: &str, feed: usize) -> (TrimMark, Option<String>) {
        let since = self.since + count;
        if since < feed {
            let mark = TrimMark {
                entry: self.entry.clone(),
                since,
            };
            return (mark, None);
        }
        let mark = TrimMark {
            entry: Some(last.to_owned()),
            since: 0,
        };
        (mark, self.entry.clone())
    }
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
/// start, and again if Redis lost them), and deletes the recent-events
/// list an older version kept beside the log.
async fn create_groups(
    connection: &mut Connection,
    keys: &Keys,
    partitions: u32,
) -> Result<(), RedisError> {
    let created = join_all((0..partitions).map(|p| {
        let mut connection = connection.clone();
        let log = keys.log(p);
        let superseded = keys.superseded_recent_list(p);
        async move {
            redis::cmd("DEL")
                .arg(superseded)
                .query_async::<()>(&mut connection)
                .await?;
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

    /// A call of `script` with `compare_and_set`'s keys and arguments for
    /// one write: the script of a write that fires deliveries, or of a
    /// claim with its write.
    fn compare_and_set_call<'s>(
        &'s self,
        script: &'s Script,
        w: &FulfillmentWrite<'_>,
    ) -> Result<ScriptCall<'s>, StorageError> {
        let key = &w.value.key;
        let p = self.partition_of(key);
        let mut call = ScriptCall::new(script);
        self.enqueue_keys(p, key, &mut call);
        call.arg(w.fired.deliveries.len());
        write_arguments(w, &mut call)?;
        self.enqueue_deliveries(p, w.fired, &mut call)?;
        Ok(call)
    }

    /// One call of COMPARE_AND_SET_MANY for `writes`, all of partition `p`
    /// and firing no deliveries.
    fn compare_and_set_many_call(
        &self,
        p: u32,
        writes: &[&FulfillmentWrite<'_>],
    ) -> Result<ScriptCall<'_>, StorageError> {
        let mut call = ScriptCall::new(&self.scripts.compare_and_set_many);
        call.key(self.stall_key(p));
        for w in writes {
            call.key(self.keys.fulfillment(p, &w.value.key));
            write_arguments(w, &mut call)?;
        }
        Ok(call)
    }

    /// The command that lists a new fulfillment in its order's set.
    fn order_listing(&self, key: &FulfillmentKey) -> redis::Cmd {
        let mut sadd = redis::cmd("SADD");
        sadd.arg(self.keys.order_fulfillments(&key.store, &key.order_ref))
            .arg(&key.fulfillment_ref);
        sadd
    }

    /// `claim_and_append`'s keys and arguments for `event`, after any the
    /// call already holds.
    fn claim_arguments(
        &self,
        event: &CanonicalEvent,
        call: &mut ScriptCall<'_>,
    ) -> Result<(), StorageError> {
        let p = self.partition_of(&event.key);
        call.key(self.keys.log(p))
            .key(self.keys.stats(p))
            .key(self.keys.unmapped(p));
        if let Some(delivery) = &event.dedup_key.delivery {
            call.key(self.keys.delivery_seen(p, &event.key, delivery));
        }
        call.key(self.keys.content_seen(p, &event.dedup_key.fingerprint))
            .arg(event.id.to_string())
            .arg(self.dedup_ttl_ms)
            .arg(json_argument(event, 1024)?)
            .arg(event.provider.as_str())
            .arg(if event.kind == EventKind::Unmapped {
                "1"
            } else {
                "0"
            })
            .arg(&event.raw_status);
        Ok(())
    }

    fn partition_of(&self, key: &FulfillmentKey) -> u32 {
        key.partition(self.partitions)
    }

    /// Runs `read`, and once more after recreating the consumer groups if
    /// Redis lost them (a restart without persistence, a flush).
    async fn with_groups<T, F, Fut>(&self, read: F) -> Result<T, StorageError>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let mut connection = self.connection()?;
        match read(connection.clone()).await {
            Err(e) if e.code() == Some("NOGROUP") => {
                tracing::warn!("Redis lost the event log's consumer groups; recreating them");
                create_groups(&mut connection, &self.keys, self.partitions).await?;
                Ok(read(connection).await?)
            }
            other => Ok(other?),
        }
    }

    /// Takes over every entry pending in `partitions` (this worker's own,
    /// and a dead holder's: the lease says it is gone), oldest first. Also
    /// answers the partitions with nothing left pending, the only ones
    /// where new entries may be read without overtaking old ones.
    async fn reclaim(
        &self,
        worker: &str,
        partitions: &[u32],
        max: usize,
    ) -> Result<(Vec<LogEntry>, Vec<u32>), StorageError> {
        let replies: Vec<Value> = self
            .with_groups(|mut connection| {
                let mut pipe = redis::pipe();
                for &p in partitions {
                    pipe.cmd("XAUTOCLAIM")
                        .arg(self.keys.log(p))
                        .arg(GROUP)
                        .arg(worker)
                        .arg(0)
                        .arg("0-0")
                        .arg("COUNT")
                        .arg(max);
                }
                async move { pipe.query_async(&mut connection).await }
            })
            .await?;
        let mut entries = Vec::new();
        let mut drained = Vec::new();
        for (&p, reply) in partitions.iter().zip(&replies) {
            let Value::Array(parts) = reply else {
                return Err(corrupt(format!("XAUTOCLAIM answered {reply:?}")));
            };
            let cursor: String = match parts.first() {
                Some(v) => redis::from_redis_value(v)?,
                None => return Err(corrupt("XAUTOCLAIM answered an empty array")),
            };
            if let Some(claimed) = parts.get(1) {
                entries.extend(log_entries(p, claimed)?);
            }
            if cursor == "0-0" {
                drained.push(p);
            }
        }
        Ok((entries, drained))
    }

    /// Reads up to `each` entries never delivered before from each of
    /// `partitions`.
    async fn read_new(
        &self,
        worker: &str,
        partitions: &[u32],
        each: usize,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let replies: Vec<Value> = self
            .with_groups(|mut connection| {
                let mut pipe = redis::pipe();
                for &p in partitions {
                    pipe.cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(GROUP)
                        .arg(worker)
                        .arg("COUNT")
                        .arg(each)
                        .arg("STREAMS")
                        .arg(self.keys.log(p))
                        .arg(">");
                }
                async move { pipe.query_async(&mut connection).await }
            })
            .await?;
        let mut entries = Vec::new();
        for (&p, reply) in partitions.iter().zip(&replies) {
            // Nil when nothing is new; else [[stream, entries]].
            if let Value::Array(streams) = reply {
                for stream in streams {
                    if let Value::Array(pair) = stream {
                        if let Some(items) = pair.get(1) {
                            entries.extend(log_entries(p, items)?);
                        }
                    }
                }
            }
        }
        Ok(entries)
    }

    /// Renews `held` leases and answers those still ours.
    async fn renew(
        &self,
        connection: &Connection,
        worker: &str,
        held: &[u32],
        ttl_ms: u64,
    ) -> Result<Vec<u32>, StorageError> {
        let renewed = join_all(held.iter().map(|&p| {
            let mut connection = connection.clone();
            let mut invocation = self.scripts.renew_lease.prepare_invoke();
            invocation.key(self.keys.lease(p)).arg(worker).arg(ttl_ms);
            async move {
                let renewed: bool = invocation.invoke_async(&mut connection).await?;
                Ok::<_, RedisError>(renewed.then_some(p))
            }
        }))
        .await;
        let mut kept = Vec::new();
        for result in renewed {
            kept.extend(result?);
        }
        Ok(kept)
    }

    /// Gives up `partitions` if `worker` holds them.
    async fn release(
        &self,
        connection: &Connection,
        worker: &str,
        partitions: impl Iterator<Item = u32>,
    ) -> Result<(), StorageError> {
        let released = join_all(partitions.map(|p| {
            let mut connection = connection.clone();
            let mut invocation = self.scripts.release_lease.prepare_invoke();
            invocation
                .key(self.keys.lease(p))
                .key(self.keys.log(p))
                .arg(worker)
                .arg(GROUP);
            async move { invocation.invoke_async::<()>(&mut connection).await }
        }))
        .await;
        for result in released {
            result?;
        }
        Ok(())
    }

    /// Tries to take each of the `free` partitions; answers those it got.
    async fn take(
        &self,
        connection: &Connection,
        worker: &str,
        free: Vec<u32>,
        ttl_ms: u64,
    ) -> Result<Vec<u32>, StorageError> {
        let taken = join_all(free.into_iter().map(|p| {
            let mut connection = connection.clone();
            let lease = self.keys.lease(p);
            async move {
                let set: Option<String> = redis::cmd("SET")
                    .arg(lease)
                    .arg(worker)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut connection)
                    .await?;
                Ok::<_, RedisError>(set.map(|_| p))
            }
        }))
        .await;
        let mut held = Vec::new();
        for result in taken {
            held.extend(result?);
        }
        Ok(held)
    }

    /// The order document stored under our id, `ours`, which the index
    /// gave for one of its ids.
    async fn order_by_our_id(
        &self,
        connection: &mut Connection,
        store: &str,
        ours: &str,
    ) -> Result<Option<Order>, StorageError> {
        let doc: Option<String> = redis::cmd("GET")
            .arg(self.keys.order(store, ours))
            .query_async(connection)
            .await?;
        doc.map(|doc| {
            serde_json::from_str(&doc).map_err(|e| corrupt(format!("order {store}/{ours}: {e}")))
        })
        .transpose()
    }

    /// Fetches the next page (newest first) of every cursor that ran dry,
    /// in one round trip.
    async fn recent_pages(
        &self,
        connection: &mut Connection,
        cursors: &mut [RecentCursor],
    ) -> Result<(), StorageError> {
        let wanted: Vec<usize> = (0..cursors.len())
            .filter(|&i| cursors[i].needs_page())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        // A log holds more than the feed between trims; readers stop at it.
        let cap = self.recent_per_partition;
        let page_size = |taken: usize| RECENT_PAGE.min(cap - taken);
        let mut pipe = redis::pipe();
        for &i in &wanted {
            let cursor = &cursors[i];
            let end = cursor
                .last
                .as_ref()
                .map_or_else(|| "+".to_owned(), |id| format!("({id}"));
            pipe.cmd("XREVRANGE")
                .arg(self.keys.log(cursor.partition))
                .arg(end)
                .arg("-")
                .arg("COUNT")
                .arg(page_size(cursor.taken));
        }
        let pages: Vec<Value> = pipe.query_async(connection).await?;
        for (i, page) in wanted.into_iter().zip(pages) {
            let cursor = &mut cursors[i];
            let wanted = page_size(cursor.taken);
            // XREVRANGE returns no deleted entries, so none is skipped.
            let entries = log_entries(cursor.partition, &page)?;
            cursor.taken += entries.len();
            cursor.exhausted = entries.len() < wanted || cursor.taken >= cap;
            cursor.last = entries.last().map(|e| e.position.entry.clone());
            cursor.buffer.extend(entries.into_iter().map(|e| e.event));
        }
        Ok(())
    }
}

/// A position in one partition's log while merging the logs, newest first,
/// into the recent-events feed.
struct RecentCursor {
    partition: u32,
    /// The oldest entry read so far.
    last: Option<String>,
    /// Entries read so far: no more than the feed's share are shown.
    taken: usize,
    buffer: VecDeque<CanonicalEvent>,
    exhausted: bool,
}

impl RecentCursor {
    fn needs_page(&self) -> bool {
        self.buffer.is_empty() && !self.exhausted
    }
}

/// Log entries of `partition` from a stream reply's entry array. Entries
/// deleted while pending come back without fields and are skipped: older
/// versions deleted an entry just before acknowledging it, once applied.
fn log_entries(partition: u32, items: &Value) -> Result<Vec<LogEntry>, StorageError> {
    let Value::Array(items) = items else {
        return Err(corrupt(format!("a stream reply held {items:?}")));
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(parts) = item else {
            return Err(corrupt(format!("a stream entry was {item:?}")));
        };
        let (Some(id), Some(Value::Array(fields))) = (parts.first(), parts.get(1)) else {
            continue;
        };
        let id: String = redis::from_redis_value(id)?;
        let json = fields
            .chunks(2)
            .find_map(|pair| match pair {
                [Value::BulkString(name), Value::BulkString(value)]
                    if name.as_slice() == EVENT_FIELD.as_bytes() =>
                {
                    Some(value)
                }
                _ => None,
            })
            .ok_or_else(|| {
                corrupt(format!(
                    "log entry {id} of partition {partition} has no event"
                ))
            })?;
        let event = canonical::json::from_bytes(json).map_err(|e| {
            corrupt(format!(
                "log entry {id} of partition {partition} is not an event: {e}"
            ))
        })?;
        entries.push(LogEntry {
            position: LogPosition {
                partition,
                entry: id,
            },
            event,
        });
    }
    Ok(entries)
}

/// The answer to a claim that lost to `id`, the event that claimed first.
fn duplicate_of(id: &str) -> Result<Claim, StorageError> {
    Ok(Claim::Duplicate {
        original: id
            .parse::<EventId>()
            .map_err(|e| corrupt(format!("dedup key holds '{id}': {e}")))?,
    })
}

/// A stats field `provider:outcome` back into its parts.
fn stats_field(field: &str) -> Result<(Provider, Outcome), StorageError> {
    let (provider, outcome) = field
        .split_once(':')
        .ok_or_else(|| corrupt(format!("stats field '{field}'")))?;
    let provider = provider.parse::<Provider>().map_err(corrupt)?;
    let outcome = Outcome::ALL
        .into_iter()
        .find(|o| o.as_str() == outcome)
        .ok_or_else(|| corrupt(format!("stats field '{field}' names no outcome")))?;
    Ok((provider, outcome))
}

#[async_trait]
impl Storage for RedisStorage {
    async fn claim_and_append(&self, event: &CanonicalEvent) -> Result<Claim, StorageError> {
        let mut connection = self.connection()?;
        let mut call = ScriptCall::new(&self.scripts.claim_and_append);
        self.claim_arguments(event, &mut call)?;
        let original: Option<String> = call.invoke(&mut connection).await?;
        match original {
            None => Ok(Claim::Accepted),
            Some(id) => duplicate_of(&id),
        }
    }

    async fn claim_append_and_set(
        &self,
        event: &CanonicalEvent,
        write: FulfillmentWrite<'_>,
    ) -> Result<(Claim, bool), StorageError> {
        let mut connection = self.connection()?;
        if write.expected.is_none() {
            // Listed before it exists, as `compare_and_set_many` lists.
            self.order_listing(&write.value.key)
                .query_async::<()>(&mut connection)
                .await?;
        }
        let mut call = self.compare_and_set_call(&self.scripts.claim_append_and_set, &write)?;
        self.claim_arguments(event, &mut call)?;
        match call.invoke(&mut connection).await? {
            Value::Int(written) => Ok((Claim::Accepted, written == 1)),
            Value::BulkString(id) => Ok((duplicate_of(&String::from_utf8_lossy(&id))?, false)),
            other => Err(corrupt(format!(
                "a claim with its write answered {other:?}"
            ))),
        }
    }

    async fn lease_partitions(
        &self,
        worker: &str,
        ttl: Duration,
    ) -> Result<Vec<u32>, StorageError> {
        let mut connection = self.connection()?;
        let ttl_ms = millis(ttl);
        let live: u32 = self
            .scripts
            .register_worker
            .key(self.keys.workers())
            .arg(worker)
            .arg(ttl_ms)
            .invoke_async(&mut connection)
            .await?;
        let share = self.partitions.div_ceil(live.max(1)) as usize;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.get(self.keys.lease(p));
        }
        let holders: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        let mine: Vec<u32> = (0..self.partitions)
            .filter(|&p| holders[p as usize].as_deref() == Some(worker))
            .collect();
        let (keep, extra) = mine.split_at(share.min(mine.len()));
        let mut held = self.renew(&connection, worker, keep, ttl_ms).await?;
        self.release(&connection, worker, extra.iter().copied())
            .await?;
        if held.len() < share {
            // A random start, so that workers joining together do not all
            // race for the same partitions.
            let start = rand::random::<u32>() % self.partitions;
            let free: Vec<u32> = (0..self.partitions)
                .map(|i| (start + i) % self.partitions)
                .filter(|&p| holders[p as usize].is_none())
                .take(share - held.len())
                .collect();
            held.extend(self.take(&connection, worker, free, ttl_ms).await?);
        }
        held.sort_unstable();
        Ok(held)
    }

    async fn release_partitions(&self, worker: &str) -> Result<(), StorageError> {
        let mut connection = self.connection()?;
        self.release(&connection, worker, 0..self.partitions)
            .await?;
        redis::cmd("ZREM")
            .arg(self.keys.workers())
            .arg(worker)
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    async fn read_log(
        &self,
        worker: &str,
        partitions: &[u32],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let deadline = Instant::now() + wait;
        let (mut entries, drained) = self.reclaim(worker, partitions, max).await?;
        loop {
            // New entries come in shares of what `max` leaves: asking every
            // partition for all of it would fetch and parse up to
            // `partitions` times more entries than are applied when they
            // all have a backlog. Partitions that filled their share may
            // have more, and share what is left. Entries read beyond `max`
            // stay pending for this worker and are reclaimed first next
            // time, in order.
            let mut open = drained.clone();
            while entries.len() < max && !open.is_empty() {
                let share = (max - entries.len()).div_ceil(open.len());
                let fresh = self.read_new(worker, &open, share).await?;
                open.retain(|&p| {
                    fresh.iter().filter(|e| e.position.partition == p).count() == share
                });
                entries.extend(fresh);
            }
            if !entries.is_empty() || Instant::now() >= deadline {
                entries.truncate(max);
                return Ok(entries);
            }
            tokio::time::sleep(POLL_EVERY.min(deadline - Instant::now())).await;
        }
    }

    async fn acknowledge(&self, positions: &[LogPosition]) -> Result<(), StorageError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection()?;
        let mut by_partition: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for position in positions {
            by_partition
                .entry(position.partition)
                .or_default()
                .push(&position.entry);
        }
        let mut pipe = redis::pipe();
        let mut moved = Vec::new();
        {
            let marks = self
                .trim_marks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (&p, ids) in &by_partition {
                let log = self.keys.log(p);
                pipe.cmd("XACK").arg(&log).arg(GROUP).arg(ids).ignore();
                let Some(last) = ids.last() else { continue };
                let mark = marks.get(&p).cloned().unwrap_or_default();
                let (next, trim_before) = mark.after(ids.len(), last, self.recent_per_partition);
                if let Some(entry) = trim_before {
                    let mut call = ScriptCall::new(&self.scripts.trim_log);
                    call.key(&log).arg(GROUP).arg(entry);
                    call.add_to(&mut pipe);
                    pipe.ignore();
                }
                moved.push((p, next));
            }
        }
        run_pipeline::<()>(&[&self.scripts.trim_log], &pipe, &mut connection).await?;
        // Only once Redis took them: a failed call is retried with the
        // same entries, which must not count twice.
        self.trim_marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(moved);
        Ok(())
    }

    async fn backlog(&self) -> Result<Vec<u64>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            let mut call = ScriptCall::new(&self.scripts.backlog);
            call.key(self.keys.log(p)).arg(GROUP);
            call.add_to(&mut pipe);
        }
        Ok(run_pipeline(&[&self.scripts.backlog], &pipe, &mut connection).await?)
    }

    async fn fulfillment(
        &self,
        key: &FulfillmentKey,
    ) -> Result<Option<Versioned<Fulfillment>>, StorageError> {
        let mut connection = self.connection()?;
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.fulfillment(self.partition_of(key), key))
            .query_async(&mut connection)
            .await?;
        whole_fulfillment(key, fields)
    }

    async fn fulfillment_to_apply(
        &self,
        event: &CanonicalEvent,
    ) -> Result<Option<Versioned<Fulfillment>>, StorageError> {
        if event.kind == EventKind::Retraction {
            return self.fulfillment(&event.key).await;
        }
        let groups = [vec![event]];
        let mut read = self.fulfillments_to_apply(&groups).await?;
        Ok(read.pop().flatten())
    }

    async fn compare_and_set_with_outbox(
        &self,
        expected: Option<u64>,
        value: &Fulfillment,
        change: &HistoryChange,
        fired: &OutboxWrite,
    ) -> Result<bool, StorageError> {
        let write = FulfillmentWrite {
            expected,
            value,
            change,
            fired,
        };
        let written = self.compare_and_set_many(&[write]).await?;
        // Read as "someone wrote first", a missing answer would have the
        // caller read and retry for ever.
        written
            .first()
            .copied()
            .ok_or_else(|| corrupt("Redis answered no compare-and-set"))
    }

    async fn fulfillments_to_apply(
        &self,
        groups: &[Vec<&CanonicalEvent>],
    ) -> Result<Vec<Option<Versioned<Fulfillment>>>, StorageError> {
        let mut pipe = redis::pipe();
        for group in groups {
            let Some(first) = group.first() else {
                continue;
            };
            let command = pipe
                .cmd("HMGET")
                .arg(
                    self.keys
                        .fulfillment(self.partition_of(&first.key), &first.key),
                )
                .arg("v")
                .arg("doc");
            for event in group {
                command.arg(applied_field(&event.id));
            }
        }
        let mut connection = self.connection()?;
        let replies: Vec<Vec<Option<String>>> = pipe.query_async(&mut connection).await?;
        let mut replies = replies.into_iter();
        let mut read = Vec::with_capacity(groups.len());
        for group in groups {
            let Some(first) = group.first() else {
                read.push(None);
                continue;
            };
            let fields = replies
                .next()
                .ok_or_else(|| corrupt("Redis answered fewer HMGETs than were sent"))?;
            read.push(to_apply(&first.key, group, fields)?);
        }
        Ok(read)
    }

    async fn compare_and_set_many(
        &self,
        writes: &[FulfillmentWrite<'_>],
    ) -> Result<Vec<bool>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        // A new fulfillment is listed in its order before it exists: a
        // crash in between leaves a name that readers skip, never a
        // fulfillment missing from its order. One pipeline runs in order;
        // on a Cluster the order's set is elsewhere and slots run apart,
        // so the listing goes first, on its own.
        let mut listing = redis::pipe();
        for w in writes.iter().filter(|w| w.expected.is_none()) {
            let key = &w.value.key;
            let first = if connection.runs_slots_apart() {
                &mut listing
            } else {
                &mut pipe
            };
            first.add_command(self.order_listing(key)).ignore();
        }
        if !listing.is_empty() {
            listing.query_async::<()>(&mut connection).await?;
        }
        // Which writes each reply answers: a write that fires deliveries
        // goes alone; the others go together per partition.
        let mut answers: Vec<Vec<usize>> = Vec::new();
        let mut quiet: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            if w.fired.deliveries.is_empty() {
                quiet
                    .entry(self.partition_of(&w.value.key))
                    .or_default()
                    .push(i);
            } else {
                self.compare_and_set_call(&self.scripts.compare_and_set, w)?
                    .add_to(&mut pipe);
                answers.push(vec![i]);
            }
        }
        for (p, indexes) in quiet {
            let group: Vec<&FulfillmentWrite<'_>> = indexes.iter().map(|&i| &writes[i]).collect();
            self.compare_and_set_many_call(p, &group)?.add_to(&mut pipe);
            answers.push(indexes);
        }
        let scripts = [
            &self.scripts.compare_and_set,
            &self.scripts.compare_and_set_many,
        ];
        let replies: Vec<Value> = run_pipeline(&scripts, &pipe, &mut connection).await?;
        if replies.len() != answers.len() {
            return Err(corrupt(format!(
                "Redis answered {} of {} compare-and-set calls",
                replies.len(),
                answers.len()
            )));
        }
        let mut written = vec![false; writes.len()];
        for (reply, indexes) in replies.iter().zip(answers) {
            let flags: Vec<bool> = match reply {
                Value::Array(_) => redis::from_redis_value(reply)?,
                _ => vec![redis::from_redis_value(reply)?],
            };
            if flags.len() != indexes.len() {
                return Err(corrupt(format!(
                    "a compare-and-set call answered {reply:?} for {} writes",
                    indexes.len()
                )));
            }
            for (i, flag) in indexes.into_iter().zip(flags) {
                written[i] = flag;
            }
        }
        Ok(written)
    }

    async fn held_partitions(&self, worker: &str) -> Result<Vec<u32>, StorageError> {
        self.held_by(worker).await
    }

    async fn due_deliveries(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        skip: &BTreeSet<String>,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<DateTime<Utc>>), StorageError> {
        self.due_heads(partitions, now, skip, max).await
    }

    async fn settle_delivery(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.settle(delivery, now).await
    }

    async fn forget_delivered(&self, before: DateTime<Utc>) -> Result<(), StorageError> {
        self.forget(before).await
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StorageError> {
        self.one_delivery(id).await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StorageError> {
        self.list(filter).await
    }

    async fn requeue_delivery(
        &self,
        id: &str,
        force: bool,
        at: DateTime<Utc>,
    ) -> Result<Requeued, StorageError> {
        self.requeue(id, force, at).await
    }

    async fn stalled(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(FulfillmentKey, DateTime<Utc>)>, StorageError> {
        self.stalls(partitions, now, max).await
    }

    async fn fire_stall(
        &self,
        key: &FulfillmentKey,
        until: DateTime<Utc>,
        fired: &OutboxWrite,
    ) -> Result<bool, StorageError> {
        self.end_stall(key, until, fired).await
    }

    async fn fulfillments_of_order(
        &self,
        store: &str,
        order_ref: &str,
    ) -> Result<Vec<Fulfillment>, StorageError> {
        let mut connection = self.connection()?;
        let mut refs: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.order_fulfillments(store, order_ref))
            .query_async(&mut connection)
            .await?;
        refs.sort_unstable();
        let keys: Vec<FulfillmentKey> = refs
            .into_iter()
            .map(|fulfillment_ref| FulfillmentKey {
                store: store.to_owned(),
                order_ref: order_ref.to_owned(),
                fulfillment_ref,
            })
            .collect();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.hgetall(self.keys.fulfillment(self.partition_of(key), key));
        }
        let replies: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
        let mut fulfillments = Vec::with_capacity(keys.len());
        for (key, fields) in keys.iter().zip(replies) {
            fulfillments.extend(whole_fulfillment(key, fields)?.map(|v| v.value));
        }
        Ok(fulfillments)
    }

    async fn create_order(&self, order: &Order) -> Result<bool, StorageError> {
        let mut connection = self.connection()?;
        let doc = serde_json::to_string(order).map_err(corrupt)?;
        let created: bool = self
            .scripts
            .create_order
            .key(self.keys.order_index(&order.store, &order.id))
            .key(self.keys.order_index(&order.store, &order.external_id))
            .key(self.keys.order(&order.store, &order.id))
            .arg(&order.id)
            .arg(doc)
            .invoke_async(&mut connection)
            .await?;
        Ok(created)
    }

    async fn order(&self, store: &str, id: &str) -> Result<Option<Order>, StorageError> {
        let mut connection = self.connection()?;
        let ours: Option<String> = redis::cmd("GET")
            .arg(self.keys.order_index(store, id))
            .query_async(&mut connection)
            .await?;
        match ours {
            Some(ours) => self.order_by_our_id(&mut connection, store, &ours).await,
            None => Ok(None),
        }
    }

    /// Reads the order's index entry and, in the same round trip, the
    /// fulfillment as if `order_id` were the client's id. The index maps
    /// both of an order's ids to ours, so an answer other than `order_id`
    /// itself means it was the client's and the guess was right; otherwise
    /// the order is read to learn the client's id.
    async fn order_fulfillment(
        &self,
        store: &str,
        order_id: &str,
        fulfillment_ref: &str,
    ) -> Result<OrderFulfillment, StorageError> {
        let guess = FulfillmentKey {
            store: store.to_owned(),
            order_ref: order_id.to_owned(),
            fulfillment_ref: fulfillment_ref.to_owned(),
        };
        let mut connection = self.connection()?;
        let (ours, fields): (Option<String>, HashMap<String, String>) = redis::pipe()
            .get(self.keys.order_index(store, order_id))
            .hgetall(self.keys.fulfillment(self.partition_of(&guess), &guess))
            .query_async(&mut connection)
            .await?;
        let key = match ours {
            None => return Ok(OrderFulfillment::NoOrder),
            Some(ours) if ours != order_id => guess,
            Some(ours) => match self.order_by_our_id(&mut connection, store, &ours).await? {
                Some(order) => FulfillmentKey {
                    order_ref: order.external_id,
                    ..guess
                },
                None => return Ok(OrderFulfillment::NoOrder),
            },
        };
        let found = if key.order_ref == order_id {
            whole_fulfillment(&key, fields)?
        } else {
            self.fulfillment(&key).await?
        };
        Ok(OrderFulfillment::of(key, found))
    }

    async fn next_in_sequence(&self, name: &str) -> Result<u64, StorageError> {
        let mut connection = self.connection()?;
        Ok(redis::cmd("INCR")
            .arg(self.keys.sequence(name))
            .query_async(&mut connection)
            .await?)
    }

    async fn count(&self, provider: Provider, outcome: Outcome) -> Result<(), StorageError> {
        let mut connection = self.connection()?;
        redis::cmd("HINCRBY")
            .arg(self.keys.refused_stats())
            .arg(format!("{provider}:{}", outcome.as_str()))
            .arg(1)
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    async fn stats(&self) -> Result<Stats, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        pipe.hgetall(self.keys.refused_stats());
        for p in 0..self.partitions {
            pipe.hgetall(self.keys.stats(p));
        }
        let hashes: Vec<HashMap<String, u64>> = pipe.query_async(&mut connection).await?;
        let mut stats = Stats::new();
        for (field, n) in hashes.iter().flatten() {
            let (provider, outcome) = stats_field(field)?;
            *stats
                .entry(provider)
                .or_default()
                .entry(outcome)
                .or_default() += n;
        }
        Ok(stats)
    }

    async fn unmapped_words(&self) -> Result<Vec<UnmappedWord>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.zrange_withscores(self.keys.unmapped(p), 0, -1);
        }
        let sets: Vec<Vec<(String, u64)>> = pipe.query_async(&mut connection).await?;
        let mut counts: BTreeMap<(Provider, String), u64> = BTreeMap::new();
        for (member, n) in sets.into_iter().flatten() {
            let (provider, word) = member
                .split_once(':')
                .ok_or_else(|| corrupt(format!("unmapped word entry '{member}'")))?;
            let provider = provider.parse::<Provider>().map_err(corrupt)?;
            *counts.entry((provider, word.to_owned())).or_default() += n;
        }
        let mut words: Vec<UnmappedWord> = counts
            .into_iter()
            .map(|((provider, word), count)| UnmappedWord {
                provider,
                word,
                count,
            })
            .collect();
        words.sort_by_key(|w| std::cmp::Reverse(w.count));
        Ok(words)
    }

    async fn recent_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<CanonicalEvent>, StorageError> {
        let mut connection = self.connection()?;
        let mut cursors: Vec<RecentCursor> = (0..self.partitions)
            .map(|partition| RecentCursor {
                partition,
                last: None,
                taken: 0,
                buffer: VecDeque::new(),
                exhausted: false,
            })
            .collect();
        let mut events = Vec::new();
        // Merges the partitions' newest-first logs, a page at a time; a
        // page starts after the last entry read, so none shows twice.
        while events.len() < filter.limit {
            self.recent_pages(&mut connection, &mut cursors).await?;
            let newest = cursors
                .iter_mut()
                .filter(|c| !c.buffer.is_empty())
                .max_by_key(|c| c.buffer.front().map(|e| e.id));
            let Some(event) = newest.and_then(|c| c.buffer.pop_front()) else {
                break;
            };
            let wanted = filter.before.is_none_or(|before| event.id < before)
                && filter.provider.is_none_or(|p| event.provider == p)
                && filter.store.as_deref().is_none_or(|s| event.key.store == s);
            if wanted {
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let mut connection = self.connection()?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_texts_are_the_names_redis_already_holds() {
        // Keys written before key_text were a serde_json::Value array's text.
        let parts = ["acme", "450\"7", "a:b\\c", "ü"];
        assert_eq!(
            key_text(&parts),
            serde_json::json!(["acme", "450\"7", "a:b\\c", "ü"]).to_string()
        );
    }

    #[test]
    fn partition_keys_keep_the_names_redis_already_holds() {
        let keys = Keys::new("sg", 4);
        let key = FulfillmentKey {
            store: "acme".into(),
            order_ref: "450\"7".into(),
            fulfillment_ref: "F-1".into(),
        };
        assert_eq!(
            keys.fulfillment(3, &key),
            r#"sg:{sg:p3}:fulfillment:["acme","450\"7","F-1"]"#
        );
        assert_eq!(
            keys.delivery_seen(0, &key, "wh-9"),
            r#"sg:{sg:p0}:seen:["acme","450\"7","F-1"]:wh-9"#
        );
        assert_eq!(keys.content_seen(1, "ab12"), "sg:{sg:p1}:seen:ab12");
        assert_eq!(keys.log(2), "sg:{sg:p2}:log");
        // A partition the settings do not know still gets the same shape.
        assert_eq!(keys.lease(7), "sg:{sg:p7}:lease");
    }
}
