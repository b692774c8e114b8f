//! The outbox: deliveries waiting to go out, their attempts, the dead
//! letters, and the stall watch that derives `stalled_in_transit`.
//!
//! Deliveries queue per (rule, fulfillment): only the head of a queue is
//! attempted, so a subscriber sees one fulfillment's news in the order it
//! was applied, while other queues go on.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::Trigger;
use crate::canonical::FulfillmentKey;
use crate::storage::StorageError;

/// One message to one subscriber, with everything needed to send it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The `webhook-id`: the same on every attempt and replay, so the
    /// subscriber can drop a repeat.
    pub id: String,
    pub rule: String,
    pub fulfillment: FulfillmentKey,
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
    pub state: DeliveryState,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: Vec<Attempt>,
    /// Attempts before this index belong to rounds that ended as a dead
    /// letter; the retry schedule counts from here.
    pub round_start: usize,
    /// The exact bytes sent, fixed when the delivery was made, so every
    /// attempt signs and sends the same body.
    pub body: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its turn or its next attempt.
    Pending,
    /// A 2xx came back.
    Delivered,
    /// Every attempt failed: a dead letter until replayed.
    Dead,
}

/// One try at sending a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Why it failed; `None` when it was delivered.
    pub reason: Option<FailureReason>,
    /// A short account of the failure: the error or the start of the
    /// answer's body.
    pub detail: Option<String>,
}

/// Why an attempt failed, as ops filter dead letters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// No complete answer within `delivery.timeout`.
    Timeout,
    /// Nothing listens at the target.
    ConnectionRefused,
    /// Name resolution, TLS or the connection failed some other way.
    ConnectionFailed,
    /// An answer came, but not a 2xx.
    HttpStatus,
    /// The target resolves to a loopback, private, link-local or metadata
    /// address and `delivery.allow_private_targets` is off.
    RefusedTarget,
    /// The delivery's rule is no longer configured.
    RuleRemoved,
}

impl FailureReason {
    /// Every reason, in the order they are listed.
    pub const ALL: [FailureReason; 6] = [
        Self::Timeout,
        Self::ConnectionRefused,
        Self::ConnectionFailed,
        Self::HttpStatus,
        Self::RefusedTarget,
        Self::RuleRemoved,
    ];

    /// The reason's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionFailed => "connection_failed",
            Self::HttpStatus => "http_status",
            Self::RefusedTarget => "refused_target",
            Self::RuleRemoved => "rule_removed",
        }
    }
}

impl FromStr for FailureReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = Self::ALL.iter().map(|r| r.as_str()).collect();
                format!("'{s}' is not a failure reason ({})", all.join(", "))
            })
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            _ => Err(format!(
                "'{s}' is not a delivery state (pending, delivered, dead)"
            )),
        }
    }
}

impl Delivery {
    /// The reason of the last failed attempt: a dead letter's reason.
    pub fn last_failure(&self) -> Option<FailureReason> {
        self.attempts.last().and_then(|a| a.reason)
    }

    /// Attempts made since the delivery was last queued.
    pub fn attempts_this_round(&self) -> usize {
        self.attempts.len().saturating_sub(self.round_start)
    }

    /// Records an attempt and what follows it.
    pub fn settle(&mut self, attempt: Attempt, next: Settlement) {
        self.attempts.push(attempt);
        let (state, next_attempt_at) = match next {
            Settlement::RetryAt(at) => (DeliveryState::Pending, Some(at)),
            Settlement::Delivered => (DeliveryState::Delivered, None),
            Settlement::Dead => (DeliveryState::Dead, None),
        };
        self.state = state;
        self.next_attempt_at = next_attempt_at;
    }

    /// Makes a dead letter (or, with `force`, a delivered message) pending
    /// again, due at `at`, with a fresh retry schedule; answers why not
    /// when it cannot.
    pub fn requeue(&mut self, force: bool, at: DateTime<Utc>) -> Result<(), Requeued> {
        match self.state {
            DeliveryState::Pending => return Err(Requeued::AlreadyPending),
            DeliveryState::Delivered if !force => return Err(Requeued::AlreadyDelivered),
            DeliveryState::Delivered | DeliveryState::Dead => {}
        }
        self.state = DeliveryState::Pending;
        self.next_attempt_at = Some(at);
        self.round_start = self.attempts.len();
        Ok(())
    }
}

/// What an apply does to the outbox, written together with the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxWrite {
    /// New deliveries, in the order they must go out.
    pub deliveries: Vec<Delivery>,
    /// How the fulfillment's stall watch changes; `None` leaves it.
    pub stall: Option<StallWatch>,
}

/// The stall watch of one fulfillment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallWatch {
    /// In transit: stalled if nothing is applied before this time.
    Until(DateTime<Utc>),
    /// Not in transit: cannot stall.
    Clear,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Delivered,
    RetryAt(DateTime<Utc>),
    Dead,
}

/// The outcome of asking to replay a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Requeued {
    /// Queued again; the delivery as it is now.
    Queued(Box<Delivery>),
    /// Delivered already and not forced.
    AlreadyDelivered,
    /// Waiting to go out already.
    AlreadyPending,
    NotFound,
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub rule: Option<String>,
    pub store: Option<String>,
    pub order_ref: Option<String>,
    pub fulfillment_ref: Option<String>,
    pub state: Option<DeliveryState>,
    pub reason: Option<FailureReason>,
    pub limit: usize,
}

impl DeliveryFilter {
    /// Whether `d` passes every filter that is set.
    pub fn admits(&self, d: &Delivery) -> bool {
        let key = &d.fulfillment;
        self.rule.as_deref().is_none_or(|r| d.rule == r)
            && self.store.as_deref().is_none_or(|s| key.store == s)
            && self.order_ref.as_deref().is_none_or(|o| key.order_ref == o)
            && self
                .fulfillment_ref
                .as_deref()
                .is_none_or(|f| key.fulfillment_ref == f)
            && self.state.is_none_or(|s| d.state == s)
            && self.reason.is_none_or(|r| d.last_failure() == Some(r))
    }
}

/// Where deliveries and the stall watch are kept.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Records what an apply to `key` caused.
    async fn record(&self, key: &FulfillmentKey, write: &OutboxWrite) -> Result<(), StorageError>;

    /// The heads of the queues that are due by `now`, at most `max`, and
    /// when the earliest head that is not due yet will be.
    async fn due(
        &self,
        now: DateTime<Utc>,
        skip: &BTreeSet<String>,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<DateTime<Utc>>), StorageError>;

    /// Records an attempt and what follows it; a delivered or dead
    /// delivery leaves its queue, so the next one can go.
    async fn settle(
        &self,
        id: &str,
        attempt: Attempt,
        next: Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError>;

    /// One delivery by id.
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StorageError>;

    /// Deliveries that pass `filter`, newest first.
    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StorageError>;

    /// Queues a dead letter (or, with `force`, a delivered message) again,
    /// due at `at`, behind what its queue holds now.
    async fn requeue(
        &self,
        id: &str,
        force: bool,
        at: DateTime<Utc>,
    ) -> Result<Requeued, StorageError>;

    /// Fulfillments whose stall watch ran out by `now`, with the time it
    /// was set to, at most `max`.
    async fn stalled(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(FulfillmentKey, DateTime<Utc>)>, StorageError>;

    /// Ends a stall: if `key`'s watch is still set to `until`, clears it
    /// and records `write`'s deliveries, in one step, and answers true.
    /// False when an apply moved the watch since (the stall is over), so
    /// each stall fires once even with several scanners.
    async fn fire_stall(
        &self,
        key: &FulfillmentKey,
        until: DateTime<Utc>,
        write: &OutboxWrite,
    ) -> Result<bool, StorageError>;
}

/// The outbox in this process's memory, beside the memory storage.
pub struct MemoryOutbox {
    state: Mutex<MemoryState>,
    retention: chrono::Duration,
}

#[derive(Default)]
struct MemoryState {
    deliveries: HashMap<String, Delivery>,
    /// Delivery ids in creation order, for listing newest first.
    order: Vec<String>,
    queues: BTreeMap<(String, FulfillmentKey), VecDeque<String>>,
    /// Delivered ids by when, to forget them after the retention.
    delivered: VecDeque<(DateTime<Utc>, String)>,
    stall_by_key: HashMap<FulfillmentKey, DateTime<Utc>>,
    stall_by_time: BTreeSet<(DateTime<Utc>, FulfillmentKey)>,
}

impl MemoryOutbox {
    /// An empty outbox that forgets delivered messages after `retention`.
    pub fn new(retention: std::time::Duration) -> Self {
        Self {
            state: Mutex::new(MemoryState::default()),
            retention: chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX),
        }
    }

    fn state(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MemoryState {
    fn enqueue(&mut self, delivery: &Delivery) {
        self.queues
            .entry((delivery.rule.clone(), delivery.fulfillment.clone()))
            .or_default()
            .push_back(delivery.id.clone());
        self.order.push(delivery.id.clone());
        self.deliveries
            .insert(delivery.id.clone(), delivery.clone());
    }

    fn set_stall(&mut self, key: &FulfillmentKey, watch: StallWatch) {
        if let Some(old) = self.stall_by_key.remove(key) {
            self.stall_by_time.remove(&(old, key.clone()));
        }
        if let StallWatch::Until(until) = watch {
            self.stall_by_key.insert(key.clone(), until);
            self.stall_by_time.insert((until, key.clone()));
        }
    }

    fn leave_queue(&mut self, delivery: &Delivery) {
        let queue_key = (delivery.rule.clone(), delivery.fulfillment.clone());
        if let Some(queue) = self.queues.get_mut(&queue_key) {
            queue.retain(|id| *id != delivery.id);
            if queue.is_empty() {
                self.queues.remove(&queue_key);
            }
        }
    }

    fn forget_delivered_before(&mut self, cutoff: DateTime<Utc>) {
        while self.delivered.front().is_some_and(|(at, _)| *at < cutoff) {
            let Some((_, id)) = self.delivered.pop_front() else {
                break;
            };
            // A forced replay may have queued it again since.
            if self
                .deliveries
                .get(&id)
                .is_some_and(|d| d.state == DeliveryState::Delivered)
            {
                self.deliveries.remove(&id);
            }
        }
        if self.order.len() > 2 * self.deliveries.len() + 1024 {
            let kept = &self.deliveries;
            self.order.retain(|id| kept.contains_key(id));
        }
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn record(&self, key: &FulfillmentKey, write: &OutboxWrite) -> Result<(), StorageError> {
        let mut state = self.state();
        for delivery in &write.deliveries {
            state.enqueue(delivery);
        }
        if let Some(watch) = write.stall {
            state.set_stall(key, watch);
        }
        Ok(())
    }

    async fn due(
        &self,
        now: DateTime<Utc>,
        skip: &BTreeSet<String>,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<DateTime<Utc>>), StorageError> {
        let state = self.state();
        let mut ready = Vec::new();
        let mut next = None::<DateTime<Utc>>;
        let heads = state
            .queues
            .values()
            .filter_map(|q| q.front())
            .filter(|id| !skip.contains(*id))
            .filter_map(|id| state.deliveries.get(id));
        for head in heads {
            let Some(at) = head.next_attempt_at else {
                continue;
            };
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
            } else if ready.len() < max {
                ready.push(head.clone());
            }
        }
        Ok((ready, next))
    }

    async fn settle(
        &self,
        id: &str,
        attempt: Attempt,
        next: Settlement,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let mut state = self.state();
        let Some(delivery) = state.deliveries.get_mut(id) else {
            return Ok(());
        };
        delivery.settle(attempt, next);
        if delivery.state != DeliveryState::Pending {
            let done = delivery.clone();
            state.leave_queue(&done);
            if done.state == DeliveryState::Delivered {
                state.delivered.push_back((now, done.id.clone()));
            }
        }
        state.forget_delivered_before(now - self.retention);
        Ok(())
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StorageError> {
        Ok(self.state().deliveries.get(id).cloned())
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StorageError> {
        let state = self.state();
        Ok(state
            .order
            .iter()
            .rev()
            .filter_map(|id| state.deliveries.get(id))
            .filter(|d| filter.admits(d))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn requeue(
        &self,
        id: &str,
        force: bool,
        at: DateTime<Utc>,
    ) -> Result<Requeued, StorageError> {
        let mut state = self.state();
        let Some(delivery) = state.deliveries.get_mut(id) else {
            return Ok(Requeued::NotFound);
        };
        if let Err(refused) = delivery.requeue(force, at) {
            return Ok(refused);
        }
        let queued = delivery.clone();
        state
            .queues
            .entry((queued.rule.clone(), queued.fulfillment.clone()))
            .or_default()
            .push_back(queued.id.clone());
        Ok(Requeued::Queued(Box::new(queued)))
    }

    async fn stalled(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(FulfillmentKey, DateTime<Utc>)>, StorageError> {
        Ok(self
            .state()
            .stall_by_time
            .iter()
            .take_while(|(until, _)| *until <= now)
            .take(max)
            .map(|(until, key)| (key.clone(), *until))
            .collect())
    }

    async fn fire_stall(
        &self,
        key: &FulfillmentKey,
        until: DateTime<Utc>,
        write: &OutboxWrite,
    ) -> Result<bool, StorageError> {
        let mut state = self.state();
        if state.stall_by_key.get(key) != Some(&until) {
            return Ok(false);
        }
        state.set_stall(key, StallWatch::Clear);
        for delivery in &write.deliveries {
            state.enqueue(delivery);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::ShipmentStatus;

    fn key(f: &str) -> FulfillmentKey {
        FulfillmentKey {
            store: "acme".into(),
            order_ref: "o1".into(),
            fulfillment_ref: f.into(),
        }
    }

    fn delivery(id: &str, f: &str, at: DateTime<Utc>) -> Delivery {
        Delivery {
            id: id.into(),
            rule: "r".into(),
            fulfillment: key(f),
            trigger: Trigger::Status(ShipmentStatus::InTransit),
            created_at: at,
            state: DeliveryState::Pending,
            next_attempt_at: Some(at),
            attempts: Vec::new(),
            round_start: 0,
            body: "{}".into(),
        }
    }

    fn failed(at: DateTime<Utc>) -> Attempt {
        Attempt {
            at,
            status: Some(500),
            reason: Some(FailureReason::HttpStatus),
            detail: None,
        }
    }

    fn write(deliveries: Vec<Delivery>) -> OutboxWrite {
        OutboxWrite {
            deliveries,
            stall: None,
        }
    }

    async fn due_ids(outbox: &MemoryOutbox, now: DateTime<Utc>) -> Vec<String> {
        let (ready, _) = outbox.due(now, &BTreeSet::new(), 10).await.unwrap();
        ready.into_iter().map(|d| d.id).collect()
    }

    #[tokio::test]
    async fn only_queue_heads_are_due_and_a_retried_head_holds_its_queue() {
        let outbox = MemoryOutbox::new(std::time::Duration::from_secs(60));
        let now = Utc::now();
        outbox
            .record(
                &key("f1"),
                &write(vec![delivery("a", "f1", now), delivery("b", "f1", now)]),
            )
            .await
            .unwrap();
        outbox
            .record(&key("f2"), &write(vec![delivery("c", "f2", now)]))
            .await
            .unwrap();
        assert_eq!(due_ids(&outbox, now).await, ["a", "c"]);
        let later = now + chrono::Duration::seconds(5);
        outbox
            .settle("a", failed(now), Settlement::RetryAt(later), now)
            .await
            .unwrap();
        assert_eq!(due_ids(&outbox, now).await, ["c"], "b waits behind a");
        let (_, next) = outbox.due(now, &BTreeSet::new(), 10).await.unwrap();
        assert_eq!(next, Some(later));
        outbox
            .settle("a", failed(later), Settlement::Dead, later)
            .await
            .unwrap();
        assert_eq!(due_ids(&outbox, later).await, ["b", "c"]);
    }

    #[tokio::test]
    async fn a_dead_letter_requeues_once_and_a_delivered_one_only_by_force() {
        let outbox = MemoryOutbox::new(std::time::Duration::from_secs(60));
        let now = Utc::now();
        outbox
            .record(&key("f1"), &write(vec![delivery("a", "f1", now)]))
            .await
            .unwrap();
        outbox
            .settle("a", failed(now), Settlement::Dead, now)
            .await
            .unwrap();
        let queued = outbox.requeue("a", false, now).await.unwrap();
        let Requeued::Queued(queued) = queued else {
            panic!("a dead letter is queued again: {queued:?}");
        };
        assert_eq!((queued.round_start, queued.attempts_this_round()), (1, 0));
        assert_eq!(
            outbox.requeue("a", false, now).await.unwrap(),
            Requeued::AlreadyPending
        );
        let ok = Attempt {
            status: Some(200),
            reason: None,
            ..failed(now)
        };
        outbox
            .settle("a", ok, Settlement::Delivered, now)
            .await
            .unwrap();
        assert_eq!(
            outbox.requeue("a", false, now).await.unwrap(),
            Requeued::AlreadyDelivered
        );
        assert!(matches!(
            outbox.requeue("a", true, now).await.unwrap(),
            Requeued::Queued(_)
        ));
        assert_eq!(
            outbox.requeue("zz", true, now).await.unwrap(),
            Requeued::NotFound
        );
    }

    #[tokio::test]
    async fn a_stall_fires_once_and_not_after_the_watch_moved() {
        let outbox = MemoryOutbox::new(std::time::Duration::from_secs(60));
        let now = Utc::now();
        let until = now - chrono::Duration::seconds(1);
        let watch = OutboxWrite {
            deliveries: Vec::new(),
            stall: Some(StallWatch::Until(until)),
        };
        outbox.record(&key("f1"), &watch).await.unwrap();
        assert_eq!(outbox.stalled(now, 10).await.unwrap(), [(key("f1"), until)]);
        let fired = write(vec![delivery("s", "f1", now)]);
        assert!(outbox.fire_stall(&key("f1"), until, &fired).await.unwrap());
        assert!(!outbox.fire_stall(&key("f1"), until, &fired).await.unwrap());
        assert!(outbox.stalled(now, 10).await.unwrap().is_empty());
        assert_eq!(due_ids(&outbox, now).await, ["s"]);

        let moved = now + chrono::Duration::seconds(60);
        outbox
            .record(
                &key("f2"),
                &OutboxWrite {
                    deliveries: Vec::new(),
                    stall: Some(StallWatch::Until(until)),
                },
            )
            .await
            .unwrap();
        outbox
            .record(
                &key("f2"),
                &OutboxWrite {
                    deliveries: Vec::new(),
                    stall: Some(StallWatch::Until(moved)),
                },
            )
            .await
            .unwrap();
        assert!(
            !outbox.fire_stall(&key("f2"), until, &fired).await.unwrap(),
            "an update ended that stall"
        );
    }
}
