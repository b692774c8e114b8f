//! Workers: take leases on event-log partitions, apply their entries
//! through the core a batch at a time, and acknowledge only after the
//! state is written. A fulfillment lives in one partition, so the log's
//! order within a partition is each fulfillment's order, and the core
//! applies each fulfillment's entries of a batch in that order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::core::FulfillmentCore;
use super::Recorder;
use crate::canonical::CanonicalEvent;
use crate::config::WorkerSettings;
use crate::storage::{EventLog, LogEntry, LogPosition};

/// Longest pause between retries while storage is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One worker of this process; several processes each run one.
pub struct Worker {
    id: String,
    core: FulfillmentCore,
    log: Arc<dyn EventLog>,
    settings: WorkerSettings,
    recorder: Arc<dyn Recorder>,
}

impl Worker {
    /// A name for a new worker, unique across processes and restarts;
    /// chosen before the worker is made, so that the dispatcher and the
    /// stall scanner, on their own thread, know whose partitions they serve.
    pub fn fresh_id() -> String {
        format!(
            "worker-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        )
    }

    /// A worker named `id` (see [`Worker::fresh_id`]).
    pub fn new(
        id: String,
        core: FulfillmentCore,
        log: Arc<dyn EventLog>,
        settings: WorkerSettings,
        recorder: Arc<dyn Recorder>,
    ) -> Self {
        Self {
            id,
            core,
            log,
            settings,
            recorder,
        }
    }

    /// This worker's name in partition leases: the process's dispatcher
    /// and stall scanner work on the partitions it holds.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Applies the log until `shutdown`; then finishes the batch in hand,
    /// releases its leases and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.id, "worker started");
        let renew_every = self.settings.lease_ttl / 3;
        let wait = renew_every.min(Duration::from_secs(1));
        let mut held: Vec<u32> = Vec::new();
        let mut renew_at = Instant::now();
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            if Instant::now() >= renew_at {
                match self
                    .log
                    .lease_partitions(&self.id, self.settings.lease_ttl)
                    .await
                {
                    Ok(partitions) => {
                        if partitions != held {
                            tracing::info!(worker = %self.id, ?partitions, "partitions held");
                        }
                        held = partitions;
                        renew_at = Instant::now() + renew_every;
                    }
                    Err(e) => {
                        self.recorder.storage_error("lease");
                        tracing::warn!(worker = %self.id, error = %e, "cannot renew partition leases");
                        held.clear();
                        backoff.pause(&shutdown).await;
                        continue;
                    }
                }
            }
            if held.is_empty() {
                let until_renewal = renew_at.saturating_duration_since(Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep(until_renewal) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            let round = Instant::now();
            let read = tokio::select! {
                read = self.log.read_log(&self.id, &held, self.settings.batch_size, wait) => read,
                _ = shutdown.cancelled() => break,
            };
            match read {
                Ok(entries) => {
                    backoff.reset();
                    let full = entries.len() >= self.settings.batch_size;
                    if !entries.is_empty() {
                        self.apply_batch(entries, &shutdown).await;
                    }
                    if !full {
                        self.linger(round, &shutdown).await;
                    }
                }
                Err(e) => {
                    self.recorder.storage_error("read_log");
                    tracing::warn!(worker = %self.id, error = %e, "cannot read the event log");
                    backoff.pause(&shutdown).await;
                }
            }
        }
        if let Err(e) = self.log.release_partitions(&self.id).await {
            tracing::warn!(worker = %self.id, error = %e, "leases not released; they expire by themselves");
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }

    /// Lets the log fill for what is left of `worker.linger` since the
    /// round began: a batch that did not fill means the worker is keeping
    /// up, and a bigger next round costs less per event.
    async fn linger(&self, round: Instant, shutdown: &CancellationToken) {
        let rest = self.settings.linger.saturating_sub(round.elapsed());
        if rest.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(rest) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// Applies a batch (each fulfillment's entries in log order) and
    /// acknowledges it. A batch left unapplied (shutdown while storage is
    /// failing) stays in the log for the next holder; applying it again is
    /// harmless.
    async fn apply_batch(&self, entries: Vec<LogEntry>, shutdown: &CancellationToken) {
        self.recorder.worker_round(entries.len());
        let events: Vec<&CanonicalEvent> = entries.iter().map(|e| &e.event).collect();
        let mut backoff = Backoff::default();
        loop {
            let started = Instant::now();
            match self.core.apply_logged(&events).await {
                Ok(()) => {
                    let share =
                        started.elapsed() / u32::try_from(events.len().max(1)).unwrap_or(u32::MAX);
                    for event in &events {
                        self.recorder.applied(event, share);
                    }
                    break;
                }
                Err(e) => {
                    self.recorder.storage_error("apply");
                    tracing::warn!(worker = %self.id, error = %e, "applying a batch failed; retrying");
                    if shutdown.is_cancelled() {
                        return;
                    }
                    backoff.pause(shutdown).await;
                }
            }
        }
        let positions: Vec<LogPosition> = entries.into_iter().map(|e| e.position).collect();
        let mut backoff = Backoff::default();
        // Not acknowledging only means applying again later, which is a
        // no-op; but keep trying so the backlog does not grow for nothing.
        while let Err(e) = self.log.acknowledge(&positions).await {
            self.recorder.storage_error("acknowledge");
            tracing::warn!(worker = %self.id, error = %e, "cannot acknowledge applied entries");
            if shutdown.is_cancelled() {
                return;
            }
            backoff.pause(shutdown).await;
        }
    }
}

/// Exponential pause between retries, cut short by shutdown.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    async fn pause(&mut self, shutdown: &CancellationToken) {
        self.failures = (self.failures + 1).min(10);
        let delay = (Duration::from_millis(50) * 2u32.pow(self.failures)).min(MAX_BACKOFF);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
