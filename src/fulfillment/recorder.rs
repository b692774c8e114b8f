//! What the core reports about its own work. The core is handed a
//! [`Recorder`] and says what happened; whoever keeps the numbers (the
//! Prometheus metrics of `ops`) is not its business.

use std::time::Duration;

use crate::canonical::CanonicalEvent;
use crate::domain::{FailureReason, Settlement};

/// Where the worker and the dispatcher report, so that they depend on
/// this small trait and not on the metrics exporter.
pub trait Recorder: Send + Sync {
    /// A storage operation failed; the caller retries it.
    fn storage_error(&self, operation: &'static str);

    /// One worker round applied `entries` log entries.
    fn worker_round(&self, entries: usize);

    /// `event` was applied from the log, taking `took`.
    fn applied(&self, event: &CanonicalEvent, took: Duration);

    /// These rules exist, so that their counters start at zero and a
    /// rule's first failure shows as an increase.
    fn rules(&self, names: &[&str]);

    /// One delivery attempt of `rule` settled; `reason` is the failure
    /// of that attempt, if it failed.
    fn delivery_settled(&self, rule: &str, settlement: Settlement, reason: Option<FailureReason>);
}
