//! The event log on Redis: claims and appends, reading per partition
//! through the consumer group, acknowledging and trimming, and the leases
//! that give each partition one worker at a time.

use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use redis::{RedisError, Value};
use tokio::time::Instant;

use super::connection::Connection;
use super::scripts::{run_pipeline, ScriptCall};
use super::{corrupt, create_groups, json_argument, millis, RedisStorage, EVENT_FIELD, GROUP};
use crate::canonical::{self, CanonicalEvent, EventId, EventKind};
use crate::storage::{Claim, EventLog, LogEntry, LogPosition, StorageError};

/// How often an idle worker looks for new entries. Polling rather than a
/// blocking XREADGROUP, which would stall the shared connection.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A partition's acknowledgements since its log was last trimmed. Trimming
/// to the entry acknowledged last a feed's worth of acknowledgements ago
/// keeps at least that many acknowledged entries (between one and two
/// feeds' worth), and costs one call per feed's worth.
#[derive(Debug, Default, Clone)]
pub(super) struct TrimMark {
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

impl RedisStorage {
    /// `claim_and_append`'s keys and arguments for `event`, after any the
    /// call already holds.
    pub(super) fn claim_arguments(
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
        call.key(self.keys.content_seen(p, &event.dedup_key.fingerprint));
        let pairing = &event.dedup_key.pairing;
        for key in pairing.watch.iter().chain(&pairing.mark) {
            call.key(self.keys.delivery_seen(p, &event.key, key));
        }
        call.arg(event.id.to_string())
            .arg(self.dedup_ttl_ms)
            .arg(json_argument(event, 1024)?)
            .arg(event.provider.as_str())
            .arg(if event.kind == EventKind::Unmapped {
                "1"
            } else {
                "0"
            })
            .arg(&event.raw_status)
            .arg(pairing.watch.len())
            .arg(usize::from(pairing.mark.is_some()));
        Ok(())
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
    pub(super) async fn take(
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
}

/// Log entries of `partition` from a stream reply's entry array. Entries
/// deleted while pending come back without fields and are skipped: older
/// versions deleted an entry just before acknowledging it, once applied.
pub(super) fn log_entries(partition: u32, items: &Value) -> Result<Vec<LogEntry>, StorageError> {
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
pub(super) fn duplicate_of(id: &str) -> Result<Claim, StorageError> {
    Ok(Claim::Duplicate {
        original: id
            .parse::<EventId>()
            .map_err(|e| corrupt(format!("dedup key holds '{id}': {e}")))?,
    })
}

#[async_trait]
impl EventLog for RedisStorage {
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

    async fn held_partitions(&self, worker: &str) -> Result<Vec<u32>, StorageError> {
        self.held_by(worker).await
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
}
