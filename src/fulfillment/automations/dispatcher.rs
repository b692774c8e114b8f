//! The dispatcher: sends the head of every due queue, at most
//! `delivery.concurrency` at a time, and settles each attempt: delivered,
//! retried on the schedule (with jitter, and no sooner than `Retry-After`
//! asks), or dead-lettered after the last attempt.
//!
//! Only queue heads are sent, and a head stays at the head while it is
//! retried, so one fulfillment's later deliveries wait for it; other
//! queues never wait on it. Each process sends only the deliveries of the
//! partitions its worker holds, so with several processes each delivery
//! has one sender (two only for a moment while a lease moves: delivery is
//! at least once, and the `webhook-id` lets the subscriber drop a repeat).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::delivery::{Courier, Failure};
use super::Automations;
use crate::config::DeliverySettings;
use crate::domain::{Attempt, Delivery, FailureReason, Settlement};
use crate::fulfillment::Recorder;
use crate::storage::StorageError;

/// Longest sleep between looks at the outbox: other processes may have
/// queued deliveries this one was not woken for.
const POLL: Duration = Duration::from_secs(1);
/// The longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How many times settling an attempt is tried while storage fails;
/// after that the delivery stays due and is sent again (at least once).
const SETTLE_TRIES: u32 = 5;
/// How often delivered messages past `delivery.retention` are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Sends this process's deliveries.
pub struct Dispatcher {
    shared: Arc<Shared>,
    /// The worker whose partitions this dispatcher sends for.
    worker: String,
    concurrency: usize,
    retention: Duration,
    grace: Duration,
}

struct Shared {
    automations: Automations,
    courier: Courier,
    retry_schedule: Vec<Duration>,
    /// Deliveries being attempted now, so a loop does not send one twice.
    in_flight: Mutex<BTreeSet<String>>,
    recorder: Arc<dyn Recorder>,
}

impl Dispatcher {
    /// A dispatcher for `worker`'s partitions that finishes attempts in
    /// flight for up to `grace` when stopped, reporting attempts to `recorder`.
    pub fn new(
        automations: Automations,
        settings: &DeliverySettings,
        worker: &str,
        grace: Duration,
        recorder: Arc<dyn Recorder>,
    ) -> Result<Self, reqwest::Error> {
        let names: Vec<&str> = automations
            .rules()
            .all()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        recorder.rules(&names);
        Ok(Self {
            shared: Arc::new(Shared {
                automations,
                courier: Courier::new(settings)?,
                retry_schedule: settings.retry_schedule.clone(),
                in_flight: Mutex::new(BTreeSet::new()),
                recorder,
            }),
            worker: worker.to_owned(),
            concurrency: settings.concurrency,
            retention: settings.retention,
            grace,
        })
    }

    /// Sends due deliveries until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            rules = self.shared.automations.rules().all().len(),
            "dispatcher started"
        );
        let mut attempts = JoinSet::new();
        let mut forget_at = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            while attempts.try_join_next().is_some() {}
            let now = Utc::now();
            let room = self.concurrency.saturating_sub(attempts.len());
            let mut pause = POLL;
            if room > 0 {
                match self.due(now, room).await {
                    Ok((ready, next)) => {
                        for delivery in ready {
                            self.shared.in_flight().insert(delivery.id.clone());
                            attempts.spawn(Arc::clone(&self.shared).attempt(delivery));
                        }
                        if let Some(next) = next {
                            pause = pause.min((next - now).to_std().unwrap_or_default());
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the outbox"),
                }
            }
            if tokio::time::Instant::now() >= forget_at {
                forget_at += FORGET_EVERY;
                self.forget_delivered(now).await;
            }
            tokio::select! {
                _ = self.shared.automations.wake().notified() => {}
                _ = tokio::time::sleep(pause) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                _ = shutdown.cancelled() => {}
            }
        }
        let finished = tokio::time::timeout(self.grace, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                left = attempts.len(),
                "attempts still in flight at shutdown; they are sent again later"
            );
        }
        tracing::info!("dispatcher stopped");
    }

    /// The due heads of the partitions this process holds now.
    async fn due(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<DateTime<Utc>>), StorageError> {
        let storage = self.shared.automations.storage();
        let partitions = storage.held_partitions(&self.worker).await?;
        if partitions.is_empty() {
            return Ok((Vec::new(), None));
        }
        let skip = self.shared.in_flight().clone();
        storage.due_deliveries(&partitions, now, &skip, max).await
    }

    async fn forget_delivered(&self, now: DateTime<Utc>) {
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let before = now
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        if let Err(e) = self
            .shared
            .automations
            .storage()
            .forget_delivered(before)
            .await
        {
            tracing::warn!(error = %e, "cannot forget old delivered messages");
        }
    }
}

impl Shared {
    fn in_flight(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes one attempt and settles it.
    async fn attempt(self: Arc<Self>, delivery: Delivery) {
        let now = Utc::now();
        let result = match self.automations.rules().get(&delivery.rule) {
            Some(rule) => self.courier.send(rule, &delivery, now).await,
            None => Err(Failure {
                reason: FailureReason::RuleRemoved,
                status: None,
                detail: format!("rule `{}` is no longer configured", delivery.rule),
                retry_after: None,
            }),
        };
        let (attempt, next) = match result {
            Ok(status) => (
                Attempt {
                    at: now,
                    status: Some(status),
                    reason: None,
                    detail: None,
                },
                Settlement::Delivered,
            ),
            Err(failure) => {
                let made = delivery.attempts_this_round() + 1;
                let next = match failure.reason {
                    // Retrying cannot help: the target or rule must change.
                    FailureReason::RefusedTarget | FailureReason::RuleRemoved => Settlement::Dead,
                    _ => next_wait(&self.retry_schedule, made, failure.retry_after)
                        .map_or(Settlement::Dead, |wait| {
                            Settlement::RetryAt(Utc::now() + wait)
                        }),
                };
                tracing::info!(
                    delivery = %delivery.id,
                    rule = %delivery.rule,
                    fulfillment = %delivery.fulfillment,
                    reason = %failure.reason,
                    detail = %failure.detail,
                    attempt = made,
                    "delivery attempt failed"
                );
                if next == Settlement::Dead {
                    tracing::warn!(
                        delivery = %delivery.id,
                        rule = %delivery.rule,
                        fulfillment = %delivery.fulfillment,
                        reason = %failure.reason,
                        "delivery is now a dead letter"
                    );
                }
                (
                    Attempt {
                        at: now,
                        status: failure.status,
                        reason: Some(failure.reason),
                        detail: Some(failure.detail),
                    },
                    next,
                )
            }
        };
        self.recorder
            .delivery_settled(&delivery.rule, next, attempt.reason);
        let mut settled = delivery;
        settled.settle(attempt, next);
        self.settle(&settled).await;
        self.in_flight().remove(&settled.id);
        self.automations.wake().notify_one();
    }

    async fn settle(&self, delivery: &Delivery) {
        let storage = self.automations.storage();
        for tries in 1..=SETTLE_TRIES {
            match storage.settle_delivery(delivery, Utc::now()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(delivery = %delivery.id, error = %e, tries, "cannot record a delivery attempt");
                    tokio::time::sleep(Duration::from_millis(100) * 2u32.pow(tries)).await;
                }
            }
        }
    }
}

/// The wait before the next attempt, after `made` attempts this round;
/// `None` when the schedule is used up. Jitter (±10%) keeps a receiver
/// that came back from getting every retry at the same instant.
fn next_wait(
    schedule: &[Duration],
    made: usize,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let step = schedule.get(made.checked_sub(1)?)?;
    let jittered = step.mul_f64(rand::thread_rng().gen_range(0.9..1.1));
    Some(match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
        None => jittered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: [Duration; 2] = [Duration::from_secs(10), Duration::from_secs(100)];

    #[test]
    fn the_schedule_gives_one_more_attempt_than_steps() {
        let first = next_wait(&SCHEDULE, 1, None).unwrap();
        assert!((9.0..=11.0).contains(&first.as_secs_f64()), "{first:?}");
        let second = next_wait(&SCHEDULE, 2, None).unwrap();
        assert!((90.0..=110.0).contains(&second.as_secs_f64()), "{second:?}");
        assert_eq!(next_wait(&SCHEDULE, 3, None), None);
        assert_eq!(next_wait(&[], 1, None), None);
    }

    #[test]
    fn retry_after_lengthens_a_wait_but_never_shortens_it() {
        let asked = Duration::from_secs(60);
        assert_eq!(next_wait(&SCHEDULE, 1, Some(asked)), Some(asked));
        let second = next_wait(&SCHEDULE, 2, Some(Duration::from_secs(1))).unwrap();
        assert!(second >= Duration::from_secs(90), "{second:?}");
        let absurd = next_wait(&SCHEDULE, 1, Some(Duration::from_secs(1 << 40))).unwrap();
        assert_eq!(absurd, MAX_RETRY_AFTER);
    }
}
