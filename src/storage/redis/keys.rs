//! Every Redis key's name, so the layout in the module docs lives in one
//! place, and the fields of a fulfillment's hash.

use std::fmt::Write;

use crate::canonical::{EventId, FulfillmentKey};

/// Prefixes of the fulfillment hash's fields besides `v` and `doc`: one
/// per history entry and one per applied event, so an apply writes its own
/// fields and never the whole history again.
pub(super) const HISTORY_FIELD: &str = "e:";

pub(super) const APPLIED_FIELD: &str = "a:";

/// Names every key, so the layout in the module docs lives in one place.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
    /// `P:{P:p<n>}:` for each partition, which starts every key in it:
    /// several such keys are built for every event ingested and applied.
    heads: Vec<String>,
}

impl Keys {
    pub(super) fn new(prefix: &str, partitions: u32) -> Self {
        Self {
            prefix: prefix.to_owned(),
            heads: (0..partitions).map(|p| head_text(prefix, p)).collect(),
        }
    }

    /// The start of `partition`'s keys, with room for `more` bytes.
    pub(super) fn head(&self, partition: u32, more: usize) -> String {
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
    pub(super) fn partition(&self, partition: u32, what: impl std::fmt::Display) -> String {
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

    pub(super) fn log(&self, partition: u32) -> String {
        self.partition(partition, "log")
    }

    pub(super) fn stats(&self, partition: u32) -> String {
        self.partition(partition, "stats")
    }

    pub(super) fn unmapped(&self, partition: u32) -> String {
        self.partition(partition, "unmapped")
    }

    /// The partition's counts by store, beside the totals of [`Self::stats`].
    pub(super) fn store_stats(&self, partition: u32) -> String {
        self.partition(partition, "store-stats")
    }

    /// The partition's unmapped words by store, beside [`Self::unmapped`].
    pub(super) fn store_unmapped(&self, partition: u32) -> String {
        self.partition(partition, "store-unmapped")
    }

    /// The recent-events list of versions before the log served the feed;
    /// deleted at start (see [`super::upgrades`]).
    pub(super) fn superseded_recent_list(&self, partition: u32) -> String {
        self.partition(partition, "recent")
    }

    pub(super) fn lease(&self, partition: u32) -> String {
        self.partition(partition, "lease")
    }

    pub(super) fn content_seen(&self, partition: u32, fingerprint: &str) -> String {
        self.partition(partition, format_args!("seen:{fingerprint}"))
    }

    /// A delivery id is scoped to its fulfillment: the only scope Redis can
    /// check atomically with the append on a Cluster.
    pub(super) fn delivery_seen(
        &self,
        partition: u32,
        key: &FulfillmentKey,
        delivery: &str,
    ) -> String {
        let mut name = self.of_fulfillment(partition, "seen:", key);
        name.push(':');
        name.push_str(delivery);
        name
    }

    pub(super) fn fulfillment(&self, partition: u32, key: &FulfillmentKey) -> String {
        self.of_fulfillment(partition, "fulfillment:", key)
    }

    pub(super) fn order_fulfillments(&self, store: &str, order_ref: &str) -> String {
        format!(
            "{}:order-fulfillments:{}",
            self.prefix,
            key_text(&[store, order_ref])
        )
    }

    /// The orders that have a fulfillment of this reference (Shopify's
    /// GraphQL names a fulfillment without its order).
    pub(super) fn fulfillment_orders(&self, store: &str, fulfillment_ref: &str) -> String {
        format!(
            "{}:fulfillment-orders:{}",
            self.prefix,
            key_text(&[store, fulfillment_ref])
        )
    }

    pub(super) fn order_index(&self, store: &str, id: &str) -> String {
        format!("{0}:{{{0}:orders:{store}}}:id:{id}", self.prefix)
    }

    pub(super) fn order(&self, store: &str, id: &str) -> String {
        format!("{0}:{{{0}:orders:{store}}}:order:{id}", self.prefix)
    }

    pub(super) fn sequence(&self, name: &str) -> String {
        format!("{}:seq:{name}", self.prefix)
    }

    pub(super) fn refused_stats(&self) -> String {
        format!("{}:stats", self.prefix)
    }

    /// One store's rate-limit bucket for one provider, in a slot of its
    /// own: buckets of different stores spread over a Cluster.
    pub(super) fn bucket(&self, store: &str, provider: &str) -> String {
        format!(
            "{0}:{{{0}:limit:{1}}}",
            self.prefix,
            key_text(&[store, provider])
        )
    }

    pub(super) fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }
}

/// `P:{P:p<n>}:`, the start of every key of partition `n`: the hash tag
/// keeps them all in one Cluster slot.
fn head_text(prefix: &str, partition: u32) -> String {
    format!("{prefix}:{{{prefix}:p{partition}}}:")
}

/// An unambiguous text for a fulfillment key inside a Redis key.
pub(super) fn fulfillment_id(key: &FulfillmentKey) -> String {
    key_text(&[&key.store, &key.order_ref, &key.fulfillment_ref])
}

/// Parts of a Redis key name as one unambiguous text: a JSON array of
/// strings, written without a `serde_json::Value` (these are built on
/// every ingest and apply).
pub(super) fn key_text(parts: &[&str]) -> String {
    // Serialising strings cannot fail.
    serde_json::to_string(parts).unwrap_or_default()
}

/// The fulfillment hash's field holding one history entry.
pub(super) fn history_field(id: &EventId) -> String {
    format!("{HISTORY_FIELD}{id}")
}

/// The fulfillment hash's field marking one event as applied.
pub(super) fn applied_field(id: &EventId) -> String {
    format!("{APPLIED_FIELD}{id}")
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
