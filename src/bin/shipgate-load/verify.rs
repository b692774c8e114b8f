//! The check after the load, through the read API only: once the event
//! log has drained, every unique update that got a 2xx must be in its
//! fulfillment's history exactly once: not missing (lost), not twice (a
//! retry applied again).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};

use crate::gateway::ReadApi;
use crate::plan::Plan;
use crate::wire::{Mark, Refs, Wire};

/// Fulfillments read at once while verifying.
const READS_IN_FLIGHT: usize = 8;
/// Examples of each kind of fault a verdict keeps, to name in the report.
const EXAMPLES: usize = 5;

/// Waits until the gateway's event log is empty; how long that took.
pub async fn drain(api: &ReadApi, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let total = api.backlog().await?;
        if total == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "the event log still holds {total} entries after {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the read API showed.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Unique updates some delivery of which was answered 2xx.
    pub acknowledged: u64,
    pub applied_once: u64,
    pub missing: u64,
    /// Applied more than once, acknowledged or not.
    pub doubled: u64,
    /// Never answered 2xx (errors, timeouts): may or may not be applied.
    pub unacknowledged: u64,
    pub unacknowledged_applied: u64,
    pub missing_examples: Vec<String>,
    pub doubled_examples: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.missing == 0 && self.doubled == 0
    }
}

/// One update to look for, and whether the gateway acknowledged it.
pub struct Expected {
    mark: Mark,
    acknowledged: bool,
}

/// What to look for in each fulfillment the plan updated.
pub type Expectations = BTreeMap<Refs, Vec<Expected>>;

/// Every planned update, by fulfillment, as the verification looks for it.
pub fn expectations(wire: &Wire, plan: &Plan) -> Expectations {
    let mut by_fulfillment = Expectations::new();
    for (n, update) in plan.updates().iter().enumerate() {
        let f = plan.fulfillment_of(update);
        by_fulfillment
            .entry(wire.refs(f))
            .or_default()
            .push(Expected {
                mark: wire.mark(n, update, f),
                acknowledged: update.acknowledged,
            });
    }
    by_fulfillment
}

/// Reads every fulfillment the load updated and counts each update in it.
pub async fn verify(api: &ReadApi, expectations: Expectations) -> Result<Verdict, String> {
    let reads = expectations.into_iter().map(|(refs, expected)| async move {
        let found = api.fulfillment(&refs).await?;
        Ok::<_, String>((refs, found, expected))
    });
    let mut reads = stream::iter(reads).buffer_unordered(READS_IN_FLIGHT);
    let mut verdict = Verdict::default();
    while let Some(read) = reads.next().await {
        let (refs, found, expected) = read?;
        let history = found
            .as_ref()
            .and_then(|f| f["trackingHistory"].as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut counts: HashMap<Mark, u64> = HashMap::new();
        for mark in history.iter().flat_map(Mark::of_entry) {
            *counts.entry(mark).or_default() += 1;
        }
        for e in expected {
            verdict.count(&refs, &e, counts.get(&e.mark).copied().unwrap_or(0));
        }
    }
    Ok(verdict)
}

impl Verdict {
    fn count(&mut self, refs: &Refs, expected: &Expected, times: u64) {
        let example = || {
            format!(
                "{} of order {} fulfillment {} found {times} times",
                expected.mark, refs.order, refs.fulfillment
            )
        };
        if times > 1 {
            self.doubled += 1;
            if self.doubled_examples.len() < EXAMPLES {
                self.doubled_examples.push(example());
            }
        }
        if !expected.acknowledged {
            self.unacknowledged += 1;
            self.unacknowledged_applied += u64::from(times > 0);
            return;
        }
        self.acknowledged += 1;
        match times {
            0 => {
                self.missing += 1;
                if self.missing_examples.len() < EXAMPLES {
                    self.missing_examples.push(example());
                }
            }
            1 => self.applied_once += 1,
            _ => {}
        }
    }
}
