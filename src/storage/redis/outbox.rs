//! The automation outbox on Redis. A delivery's keys live in its
//! fulfillment's partition slot `{P:p<n>}`, beside the fulfillment, so the
//! apply's compare-and-set queues the deliveries in the same script (and a
//! Cluster runs it on one slot):
//! - `:outbox`: every delivery id, scored by creation (ms), for listings;
//! - `:delivery:<id>`: the delivery document;
//! - `:queue:<rule, fulfillment>`: the ids waiting, in order (a list);
//! - `:due`: each non-empty queue, scored by when its head is due;
//! - `:next`: each pending id and when it is due;
//! - `:delivered`, `:dead`: ids by when they got there (for retention, and
//!   to list dead letters without reading every delivery);
//! - `:stall`: in-transit fulfillments, scored by when they stall.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::ScriptInvocation;

use super::keys::{fulfillment_id, key_text};
use super::scripts::ScriptCall;
use super::{corrupt, RedisStorage};
use crate::canonical::FulfillmentKey;
use crate::domain::{Delivery, DeliveryFilter, DeliveryState, OutboxWrite, Requeued, StallWatch};
use crate::storage::{Outbox, StorageError};

/// Deliveries read per partition and round trip when listing them.
const LIST_PAGE: usize = 200;
/// Delivered messages forgotten per partition and call.
const FORGET_BATCH: usize = 256;
/// How often a replay retries when the delivery changed under it.
const REQUEUE_TRIES: usize = 3;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_score(score: &str) -> Result<DateTime<Utc>, StorageError> {
    score
        .parse::<f64>()
        .ok()
        .and_then(|ms| DateTime::from_timestamp_millis(ms as i64))
        .ok_or_else(|| corrupt(format!("outbox score '{score}' is not a time")))
}

/// The queue a delivery waits in: one per rule and fulfillment.
fn queue_member(d: &Delivery) -> String {
    let f = &d.fulfillment;
    key_text(&[&d.rule, &f.store, &f.order_ref, &f.fulfillment_ref])
}

fn parse_delivery(doc: &str) -> Result<Delivery, StorageError> {
    serde_json::from_str(doc).map_err(|e| corrupt(format!("a delivery: {e}")))
}

fn document(d: &Delivery) -> Result<String, StorageError> {
    serde_json::to_string(d).map_err(corrupt)
}

/// What a compare-and-set does to the stall watch: "" nothing, "clear",
/// or the time (ms) it stalls.
pub(super) fn stall_argument(fired: &OutboxWrite) -> String {
    match fired.stall {
        None => String::new(),
        Some(StallWatch::Clear) => "clear".into(),
        Some(StallWatch::Until(until)) => ms(until).to_string(),
    }
}

impl RedisStorage {
    fn outbox_key(&self, p: u32, what: &str) -> String {
        self.keys.partition(p, what)
    }

    /// The partition's stall watches: fulfillment → when it stalls.
    pub(super) fn stall_key(&self, p: u32) -> String {
        self.outbox_key(p, "stall")
    }

    fn delivery_key(&self, p: u32, id: &str) -> String {
        self.keys.partition(p, format_args!("delivery:{id}"))
    }

    /// KEYS 1-5 of the scripts that queue deliveries (see `lua/lib/enqueue.lua`).
    pub(super) fn enqueue_keys(
        &self,
        p: u32,
        key: &FulfillmentKey,
        invocation: &mut ScriptCall<'_>,
    ) {
        for what in ["outbox", "due", "next"] {
            invocation.key(self.outbox_key(p, what));
        }
        invocation.key(self.stall_key(p));
        invocation.key(self.keys.fulfillment(p, key));
    }

    /// The deliveries' keys and arguments, after the script's own.
    pub(super) fn enqueue_deliveries(
        &self,
        p: u32,
        fired: &OutboxWrite,
        invocation: &mut ScriptCall<'_>,
    ) -> Result<(), StorageError> {
        for d in &fired.deliveries {
            invocation
                .key(
                    self.keys
                        .partition(p, format_args!("queue:{}", queue_member(d))),
                )
                .key(self.delivery_key(p, &d.id))
                .arg(&d.id)
                .arg(document(d)?)
                .arg(ms(d.next_attempt_at.unwrap_or(d.created_at)))
                .arg(queue_member(d));
        }
        Ok(())
    }

    /// The keys `settle_delivery.lua` and `requeue_delivery.lua` take for `d`.
    fn delivery_keys(&self, p: u32, d: &Delivery, invocation: &mut ScriptInvocation<'_>) {
        for what in ["outbox", "due", "next", "delivered", "dead"] {
            invocation.key(self.outbox_key(p, what));
        }
        invocation
            .key(
                self.keys
                    .partition(p, format_args!("queue:{}", queue_member(d))),
            )
            .key(self.delivery_key(p, &d.id));
    }

    pub(super) async fn held_by(&self, worker: &str) -> Result<Vec<u32>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.get(self.keys.lease(p));
        }
        let holders: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        Ok((0..self.partitions)
            .filter(|&p| holders[p as usize].as_deref() == Some(worker))
            .collect())
    }

    async fn due_heads(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        skip: &BTreeSet<String>,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<DateTime<Utc>>), StorageError> {
        let mut connection = self.connection()?;
        let now_ms = ms(now);
        let mut pipe = redis::pipe();
        for &p in partitions {
            let due = self.outbox_key(p, "due");
            pipe.cmd("ZRANGEBYSCORE")
                .arg(&due)
                .arg("-inf")
                .arg(now_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(max + skip.len());
            pipe.cmd("ZRANGEBYSCORE")
                .arg(&due)
                .arg(format!("({now_ms}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(1);
        }
        let replies: Vec<Vec<String>> = pipe.query_async(&mut connection).await?;
        let mut next = None::<DateTime<Utc>>;
        let mut queues = Vec::new();
        for (&p, pair) in partitions.iter().zip(replies.chunks(2)) {
            queues.extend(pair[0].iter().map(|member| (p, member.clone())));
            if let Some(score) = pair[1].get(1) {
                let at = from_score(score)?;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if queues.is_empty() {
            return Ok((Vec::new(), next));
        }
        let mut pipe = redis::pipe();
        for (p, member) in &queues {
            pipe.lindex(self.keys.partition(*p, format_args!("queue:{member}")), 0);
        }
        let heads: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        let wanted: Vec<(u32, String)> = queues
            .iter()
            .zip(heads)
            .filter_map(|((p, _), head)| Some((*p, head?)))
            .filter(|(_, id)| !skip.contains(id))
            .take(max)
            .collect();
        if wanted.is_empty() {
            return Ok((Vec::new(), next));
        }
        let mut pipe = redis::pipe();
        for (p, id) in &wanted {
            pipe.get(self.delivery_key(*p, id));
        }
        let docs: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        let ready = docs
            .iter()
            .flatten()
            .map(|doc| parse_delivery(doc))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((ready, next))
    }

    async fn settle(&self, d: &Delivery, now: DateTime<Utc>) -> Result<(), StorageError> {
        let mut connection = self.connection()?;
        let p = self.partition_of(&d.fulfillment);
        let at = match d.state {
            DeliveryState::Pending => d.next_attempt_at.unwrap_or(now),
            DeliveryState::Delivered | DeliveryState::Dead => now,
        };
        let mut invocation = self.scripts.settle_delivery.prepare_invoke();
        self.delivery_keys(p, d, &mut invocation);
        invocation
            .arg(&d.id)
            .arg(document(d)?)
            .arg(d.state.as_str())
            .arg(ms(at))
            .arg(queue_member(d));
        invocation.invoke_async::<i64>(&mut connection).await?;
        Ok(())
    }

    async fn forget(&self, before: DateTime<Utc>) -> Result<(), StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.outbox_key(p, "delivered"))
                .arg("-inf")
                .arg(format!("({}", ms(before)))
                .arg("LIMIT")
                .arg(0)
                .arg(FORGET_BATCH);
        }
        let old: Vec<Vec<String>> = pipe.query_async(&mut connection).await?;
        let mut pipe = redis::pipe();
        for (p, ids) in (0..self.partitions).zip(&old) {
            for id in ids {
                pipe.del(self.delivery_key(p, id)).ignore();
                pipe.zrem(self.outbox_key(p, "outbox"), id).ignore();
                pipe.zrem(self.outbox_key(p, "delivered"), id).ignore();
            }
        }
        pipe.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    /// A delivery and its partition, looked for in every partition.
    async fn find(&self, id: &str) -> Result<Option<(u32, Delivery)>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.get(self.delivery_key(p, id));
        }
        let docs: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        (0..self.partitions)
            .zip(docs)
            .find_map(|(p, doc)| Some((p, doc?)))
            .map(|(p, doc)| Ok((p, parse_delivery(&doc)?)))
            .transpose()
    }

    async fn one_delivery(&self, id: &str) -> Result<Option<Delivery>, StorageError> {
        Ok(self.find(id).await?.map(|(_, d)| d))
    }

    /// Merges the partitions' newest-first indexes, a page at a time. Dead
    /// and delivered ones are read from their own indexes, so dead letters
    /// are found without reading every delivery.
    pub(super) async fn list(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, StorageError> {
        let mut connection = self.connection()?;
        let index = match filter.state {
            Some(DeliveryState::Dead) => "dead",
            Some(DeliveryState::Delivered) => "delivered",
            Some(DeliveryState::Pending) | None => "outbox",
        };
        let mut found = Vec::new();
        let mut matched: BTreeMap<u32, usize> = BTreeMap::new();
        let mut open: Vec<u32> = (0..self.partitions).collect();
        let mut offset = 0;
        while !open.is_empty() {
            let mut pipe = redis::pipe();
            for &p in &open {
                pipe.zrevrange(
                    self.outbox_key(p, index),
                    offset as isize,
                    (offset + LIST_PAGE - 1) as isize,
                );
            }
            let pages: Vec<Vec<String>> = pipe.query_async(&mut connection).await?;
            let mut pipe = redis::pipe();
            for (&p, ids) in open.iter().zip(&pages) {
                for id in ids {
                    pipe.get(self.delivery_key(p, id));
                }
            }
            let docs: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
            let mut docs = docs.into_iter();
            let mut still_open = Vec::new();
            for (&p, ids) in open.iter().zip(&pages) {
                for doc in docs.by_ref().take(ids.len()).flatten() {
                    let d = parse_delivery(&doc)?;
                    if filter.admits(&d) {
                        found.push(d);
                        *matched.entry(p).or_default() += 1;
                    }
                }
                if ids.len() == LIST_PAGE && matched.get(&p).copied().unwrap_or(0) < filter.limit {
                    still_open.push(p);
                }
            }
            open = still_open;
            offset += LIST_PAGE;
        }
        found.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        found.truncate(filter.limit);
        Ok(found)
    }

    async fn requeue(
        &self,
        id: &str,
        force: bool,
        at: DateTime<Utc>,
    ) -> Result<Requeued, StorageError> {
        let mut connection = self.connection()?;
        for _ in 0..REQUEUE_TRIES {
            let Some((p, mut d)) = self.find(id).await? else {
                return Ok(Requeued::NotFound);
            };
            let seen = d.state;
            if let Err(refused) = d.requeue(force, at) {
                return Ok(refused);
            }
            let mut invocation = self.scripts.requeue_delivery.prepare_invoke();
            self.delivery_keys(p, &d, &mut invocation);
            invocation
                .arg(&d.id)
                .arg(seen.as_str())
                .arg(document(&d)?)
                .arg(ms(at))
                .arg(queue_member(&d));
            match invocation.invoke_async::<i64>(&mut connection).await? {
                1 => return Ok(Requeued::Queued(Box::new(d))),
                0 => return Ok(Requeued::NotFound),
                _ => continue,
            }
        }
        Err(StorageError::Unavailable(format!(
            "delivery {id} kept changing while it was replayed; try again"
        )))
    }

    pub(super) async fn stalls(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(FulfillmentKey, DateTime<Utc>)>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for &p in partitions {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.stall_key(p))
                .arg("-inf")
                .arg(ms(now))
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(max);
        }
        let replies: Vec<Vec<String>> = pipe.query_async(&mut connection).await?;
        let mut stalled = Vec::new();
        for pair in replies.iter().flat_map(|r| r.chunks(2)) {
            let [member, score] = pair else {
                return Err(corrupt("a stall watch without its time"));
            };
            let (store, order_ref, fulfillment_ref): (String, String, String) =
                serde_json::from_str(member)
                    .map_err(|e| corrupt(format!("stall watch '{member}': {e}")))?;
            let key = FulfillmentKey {
                store,
                order_ref,
                fulfillment_ref,
            };
            stalled.push((key, from_score(score)?));
        }
        stalled.truncate(max);
        Ok(stalled)
    }

    pub(super) async fn end_stall(
        &self,
        key: &FulfillmentKey,
        until: DateTime<Utc>,
        fired: &OutboxWrite,
    ) -> Result<bool, StorageError> {
        let mut connection = self.connection()?;
        let p = self.partition_of(key);
        let mut invocation = ScriptCall::new(&self.scripts.fire_stall);
        self.enqueue_keys(p, key, &mut invocation);
        invocation
            .arg(fired.deliveries.len())
            .arg(ms(until))
            .arg(fulfillment_id(key));
        self.enqueue_deliveries(p, fired, &mut invocation)?;
        Ok(invocation.invoke::<bool>(&mut connection).await?)
    }
}
#[async_trait]
impl Outbox for RedisStorage {
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
}
