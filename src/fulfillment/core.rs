//! The fulfillment core: applies canonical events to fulfillment state in
//! storage, with compare-and-set so that the workers and the inline (Redo,
//! Carriyo order, Shopify REST) paths never lose each other's updates, and
//! records the automations each apply fires.

use std::sync::Arc;

use chrono::Utc;
use tracing::instrument;

use super::automations::Automations;
use super::state::{Applied, Fulfillment};
use crate::canonical::{CanonicalEvent, FulfillmentKey};
use crate::storage::{Storage, StorageError, Versioned};

/// Applies events to fulfillments; cheap to clone.
#[derive(Clone)]
pub struct FulfillmentCore {
    storage: Arc<dyn Storage>,
    automations: Automations,
}

/// A fulfillment after an apply, and what the apply did.
#[derive(Debug, Clone)]
pub struct ApplyResult {
    pub fulfillment: Fulfillment,
    pub applied: Applied,
}

/// Why a fulfillment could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("fulfillment {0} exists already")]
    Exists(FulfillmentKey),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl FulfillmentCore {
    /// A core over the given storage, firing `automations`.
    pub fn new(storage: Arc<dyn Storage>, automations: Automations) -> Self {
        Self {
            storage,
            automations,
        }
    }

    /// Applies one event, creating its fulfillment if this is the first
    /// news of it. Safe to call again for the same event.
    pub async fn apply(&self, event: &CanonicalEvent) -> Result<ApplyResult, StorageError> {
        let current = self.storage.fulfillment(&event.key).await?;
        self.apply_over(event, current).await
    }

    /// [`apply`](Self::apply) starting from `current`, the fulfillment as
    /// the caller just read it, which saves reading it again; when it has
    /// changed since, the compare-and-set fails and it is read afresh.
    #[instrument(skip_all, fields(event = %event.id, fulfillment = %event.key))]
    pub async fn apply_over(
        &self,
        event: &CanonicalEvent,
        mut current: Option<Versioned<Fulfillment>>,
    ) -> Result<ApplyResult, StorageError> {
        loop {
            let expected = current.as_ref().map(|v| v.version);
            let mut fulfillment = match current {
                Some(v) => v.value,
                None => Fulfillment::new(event.key.clone(), Utc::now()),
            };
            let now = Utc::now();
            let applied = fulfillment.apply(event, now);
            let Applied::Recorded(effects) = &applied else {
                return Ok(ApplyResult {
                    fulfillment,
                    applied,
                });
            };
            let fired = self.automations.plan(&fulfillment, event, effects, now);
            if self
                .storage
                .compare_and_set_with_outbox(expected, &fulfillment, &fired)
                .await?
            {
                self.automations.queued(&fired);
                return Ok(ApplyResult {
                    fulfillment,
                    applied,
                });
            }
            tracing::debug!("fulfillment changed under us; applying again");
            current = self.storage.fulfillment(&event.key).await?;
        }
    }

    /// Stores a fulfillment that must not exist yet (Redo's create).
    #[instrument(skip_all, fields(fulfillment = %fulfillment.key))]
    pub async fn create(&self, fulfillment: &Fulfillment) -> Result<(), CreateError> {
        if self
            .storage
            .compare_and_set_fulfillment(None, fulfillment)
            .await?
        {
            Ok(())
        } else {
            Err(CreateError::Exists(fulfillment.key.clone()))
        }
    }

    /// A fulfillment's current state.
    pub async fn get(&self, key: &FulfillmentKey) -> Result<Option<Fulfillment>, StorageError> {
        Ok(self.storage.fulfillment(key).await?.map(|v| v.value))
    }
}
