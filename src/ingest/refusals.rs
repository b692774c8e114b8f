//! Refused requests (bad credentials, bad bodies, over a limit), tallied in
//! this process and added to the stats in one storage write a second: a
//! flood of garbage costs the store nothing per request. `/api/v1/stats`
//! shows this process's refusals at once and other processes' within
//! about [`FLUSH_EVERY`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::canonical::Provider;
use crate::fulfillment::Recorder;
use crate::storage::{Feed, Outcome, Stats, Storage, StorageError};

/// How often the tally goes to storage: how far behind the stats may be.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// This process's refusals not yet added to the stats; clones share it.
#[derive(Debug, Clone, Default)]
pub struct RefusalTally {
    pending: Arc<Mutex<Stats>>,
    /// Held shared while the stats are read, and exclusively while a flush
    /// moves counts from `pending` to storage, so a read counts each
    /// refusal once: pending or stored, never both nor neither.
    flushing: Arc<tokio::sync::RwLock<()>>,
}

impl RefusalTally {
    fn pending(&self) -> MutexGuard<'_, Stats> {
        // A panic while holding the lock leaves plain counts behind.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one refusal, for the next flush.
    pub fn add(&self, provider: Provider, outcome: Outcome) {
        add(&mut self.pending(), provider, outcome, 1);
    }

    /// Adds what is pending to the stats in one write; on failure keeps it
    /// for the next flush, so no refusal goes uncounted while storage is
    /// down.
    async fn flush(&self, storage: &dyn Feed, recorder: &dyn Recorder) {
        let _flushing = self.flushing.write().await;
        let taken = std::mem::take(&mut *self.pending());
        if taken.is_empty() {
            return;
        }
        if let Err(e) = storage.count_refusals(&taken).await {
            recorder.storage_error("count");
            tracing::warn!(error = %e, "could not count refused requests; will retry");
            let mut pending = self.pending();
            for (provider, outcomes) in taken {
                for (outcome, n) in outcomes {
                    add(&mut pending, provider, outcome, n);
                }
            }
        }
    }

    /// The stats as storage holds them plus this process's refusals not
    /// flushed yet.
    pub async fn stats(&self, storage: &dyn Feed) -> Result<Stats, StorageError> {
        let _reading = self.flushing.read().await;
        let mut stats = storage.stats().await?;
        for (provider, outcomes) in self.pending().iter() {
            for (outcome, n) in outcomes {
                add(&mut stats, *provider, *outcome, *n);
            }
        }
        Ok(stats)
    }

    /// Flushes every [`FLUSH_EVERY`] until `stop`, then once more, so a
    /// process that stops gracefully loses no count.
    pub async fn keep_flushing(
        self,
        storage: Arc<dyn Storage>,
        recorder: Arc<dyn Recorder>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
            }
            self.flush(&*storage, recorder.as_ref()).await;
        }
        self.flush(&*storage, recorder.as_ref()).await;
    }
}

fn add(stats: &mut Stats, provider: Provider, outcome: Outcome, n: u64) {
    *stats
        .entry(provider)
        .or_default()
        .entry(outcome)
        .or_default() += n;
}
