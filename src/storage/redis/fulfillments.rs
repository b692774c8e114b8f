//! Fulfillments on Redis: one hash per fulfillment (version, summary, a
//! field per history entry and per applied event), changed by a Lua
//! compare-and-set that writes only the fields an apply changed.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;

use super::keys::{applied_field, fulfillment_id, history_field, APPLIED_FIELD, HISTORY_FIELD};
use super::scripts::ScriptCall;
use super::{corrupt, json_argument, outbox, RedisStorage};
use crate::canonical::{CanonicalEvent, FulfillmentKey};
use crate::domain::{Fulfillment, HistoryChange, HistoryEntry, OutboxWrite};
use crate::storage::{Batched, FulfillmentWrite, Fulfillments, StorageError, Versioned};

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
pub(super) fn summary(
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
pub(super) fn to_apply(
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
pub(super) fn whole_fulfillment(
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

impl RedisStorage {
    /// A call of `script` with `compare_and_set`'s keys and arguments for
    /// one write: the script of a write that fires deliveries, or of a
    /// claim with its write.
    pub(super) fn compare_and_set_call<'s>(
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

    /// One call of `compare_and_set_many.lua` for `writes`, all of partition `p`
    /// and firing no deliveries.
    pub(super) fn compare_and_set_many_call(
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

    /// The commands that list a new fulfillment in its order's set and
    /// its order in the set of its reference's orders.
    pub(super) fn listings(&self, key: &FulfillmentKey) -> [redis::Cmd; 2] {
        let mut in_order = redis::cmd("SADD");
        in_order
            .arg(self.keys.order_fulfillments(&key.store, &key.order_ref))
            .arg(&key.fulfillment_ref);
        let mut by_reference = redis::cmd("SADD");
        by_reference
            .arg(
                self.keys
                    .fulfillment_orders(&key.store, &key.fulfillment_ref),
            )
            .arg(&key.order_ref);
        [in_order, by_reference]
    }
}

#[async_trait]
impl Fulfillments for RedisStorage {
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

    async fn orders_of_fulfillment(
        &self,
        store: &str,
        fulfillment_ref: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut connection = self.connection()?;
        let mut orders: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.fulfillment_orders(store, fulfillment_ref))
            .query_async(&mut connection)
            .await?;
        orders.sort_unstable();
        Ok(orders)
    }
}
