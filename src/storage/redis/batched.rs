//! The round-trip savers on Redis: several reads in one pipeline, several
//! compare-and-sets in one script call per partition, and a claim with
//! its fulfillment's write in one script.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use redis::Value;

use super::fulfillments::{to_apply, whole_fulfillment};
use super::keys::applied_field;
use super::log::duplicate_of;
use super::scripts::run_pipeline;
use super::{corrupt, RedisStorage};
use crate::canonical::{CanonicalEvent, EventKind, FulfillmentKey};
use crate::domain::Fulfillment;
use crate::storage::{
    Batched, Claim, FulfillmentWrite, Fulfillments, OrderFulfillment, StorageError, Versioned,
};

#[async_trait]
impl Batched for RedisStorage {
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
        // A new fulfillment is listed in its order (and its order under
        // its reference) before it exists: a crash in between leaves a
        // name that readers skip, never a fulfillment missing from a list. One pipeline runs in order;
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
            for command in self.listings(key) {
                first.add_command(command).ignore();
            }
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

    async fn claim_append_and_set(
        &self,
        event: &CanonicalEvent,
        write: FulfillmentWrite<'_>,
    ) -> Result<(Claim, bool), StorageError> {
        let mut connection = self.connection()?;
        if write.expected.is_none() {
            // Listed before it exists, as `compare_and_set_many` lists.
            let mut listing = redis::pipe();
            for command in self.listings(&write.value.key) {
                listing.add_command(command).ignore();
            }
            listing.query_async::<()>(&mut connection).await?;
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
}
