//! Redo-style orders on Redis, under both their ids, and the numbered
//! sequences.

use async_trait::async_trait;

use super::connection::Connection;
use super::{corrupt, RedisStorage};
use crate::domain::Order;
use crate::storage::{Orders, Sequences, StorageError};

impl RedisStorage {
    /// The order document stored under our id, `ours`, which the index
    /// gave for one of its ids.
    pub(super) async fn order_by_our_id(
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
}

#[async_trait]
impl Orders for RedisStorage {
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

    async fn delete_order(&self, store: &str, id: &str) -> Result<Option<Order>, StorageError> {
        let Some(order) = self.order(store, id).await? else {
            return Ok(None);
        };
        let mut connection = self.connection()?;
        // The script deletes only if our id still names this order, so a
        // concurrent delete answers the order once.
        let deleted: bool = self
            .scripts
            .delete_order
            .key(self.keys.order_index(store, &order.id))
            .key(self.keys.order_index(store, &order.external_id))
            .key(self.keys.order(store, &order.id))
            .arg(&order.id)
            .invoke_async(&mut connection)
            .await?;
        Ok(deleted.then_some(order))
    }
}

#[async_trait]
impl Sequences for RedisStorage {
    async fn next_in_sequence(&self, name: &str) -> Result<u64, StorageError> {
        let mut connection = self.connection()?;
        Ok(redis::cmd("INCR")
            .arg(self.keys.sequence(name))
            .query_async(&mut connection)
            .await?)
    }
}
