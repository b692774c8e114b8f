//! The memory backend's automation outbox: plain data kept under the
//! backend's one lock, so a fulfillment's change and the deliveries it
//! fired are written in one step.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::canonical::FulfillmentKey;
use crate::domain::{Delivery, DeliveryFilter, DeliveryState, OutboxWrite, Requeued, StallWatch};

/// Deliveries, their queues, and the stall watch.
#[derive(Default)]
pub(super) struct Outbox {
    partitions: u32,
    deliveries: HashMap<String, Delivery>,
    /// Delivery ids in creation order, for listing newest first.
    order: Vec<String>,
    queues: BTreeMap<(String, FulfillmentKey), VecDeque<String>>,
    /// Delivered ids by when, to forget them after the retention.
    delivered: VecDeque<(DateTime<Utc>, String)>,
    stall_by_key: HashMap<FulfillmentKey, DateTime<Utc>>,
    stall_by_time: BTreeSet<(DateTime<Utc>, FulfillmentKey)>,
}

fn queue_of(d: &Delivery) -> (String, FulfillmentKey) {
    (d.rule.clone(), d.fulfillment.clone())
}

impl Outbox {
    /// An empty outbox for a log of `partitions` partitions.
    pub(super) fn new(partitions: u32) -> Self {
        Self {
            partitions,
            ..Self::default()
        }
    }

    fn in_partitions(&self, key: &FulfillmentKey, partitions: &[u32]) -> bool {
        partitions.contains(&key.partition(self.partitions))
    }

    /// Queues `fired`'s deliveries and sets `key`'s stall watch.
    pub(super) fn record(&mut self, key: &FulfillmentKey, fired: &OutboxWrite) {
        for delivery in &fired.deliveries {
            self.queues
                .entry(queue_of(delivery))
                .or_default()
                .push_back(delivery.id.clone());
            self.order.push(delivery.id.clone());
            self.deliveries
                .insert(delivery.id.clone(), delivery.clone());
        }
        if let Some(watch) = fired.stall {
            self.set_stall(key, watch);
        }
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

    /// Due queue heads in `partitions`, and when the next one is due.
    pub(super) fn due(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        skip: &BTreeSet<String>,
        max: usize,
    ) -> (Vec<Delivery>, Option<DateTime<Utc>>) {
        let mut ready = Vec::new();
        let mut next = None::<DateTime<Utc>>;
        let heads = self
            .queues
            .iter()
            .filter(|((_, key), _)| self.in_partitions(key, partitions))
            .filter_map(|(_, queue)| queue.front())
            .filter(|id| !skip.contains(*id))
            .filter_map(|id| self.deliveries.get(id));
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
        (ready, next)
    }

    /// Stores a delivery after an attempt; a finished one leaves its queue.
    pub(super) fn settle(&mut self, delivery: &Delivery, now: DateTime<Utc>) {
        let Some(stored) = self.deliveries.get_mut(&delivery.id) else {
            return;
        };
        *stored = delivery.clone();
        if delivery.state == DeliveryState::Pending {
            return;
        }
        let queue = queue_of(delivery);
        if let Some(ids) = self.queues.get_mut(&queue) {
            ids.retain(|id| *id != delivery.id);
            if ids.is_empty() {
                self.queues.remove(&queue);
            }
        }
        if delivery.state == DeliveryState::Delivered {
            self.delivered.push_back((now, delivery.id.clone()));
        }
    }

    /// Forgets what was delivered before `before`.
    pub(super) fn forget_delivered(&mut self, before: DateTime<Utc>) {
        while let Some((_, id)) = self
            .delivered
            .front()
            .filter(|(at, _)| *at < before)
            .cloned()
        {
            self.delivered.pop_front();
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

    pub(super) fn delivery(&self, id: &str) -> Option<Delivery> {
        self.deliveries.get(id).cloned()
    }

    /// Deliveries passing `filter`, newest first.
    pub(super) fn deliveries(&self, filter: &DeliveryFilter) -> Vec<Delivery> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.deliveries.get(id))
            .filter(|d| filter.admits(d))
            .take(filter.limit)
            .cloned()
            .collect()
    }

    /// Queues a dead (or, forced, delivered) message again at the tail.
    pub(super) fn requeue(&mut self, id: &str, force: bool, at: DateTime<Utc>) -> Requeued {
        let Some(delivery) = self.deliveries.get_mut(id) else {
            return Requeued::NotFound;
        };
        if let Err(refused) = delivery.requeue(force, at) {
            return refused;
        }
        let queued = delivery.clone();
        self.queues
            .entry(queue_of(&queued))
            .or_default()
            .push_back(queued.id.clone());
        Requeued::Queued(Box::new(queued))
    }

    /// Stall watches in `partitions` that ran out by `now`.
    pub(super) fn stalled(
        &self,
        partitions: &[u32],
        now: DateTime<Utc>,
        max: usize,
    ) -> Vec<(FulfillmentKey, DateTime<Utc>)> {
        self.stall_by_time
            .iter()
            .take_while(|(until, _)| *until <= now)
            .filter(|(_, key)| self.in_partitions(key, partitions))
            .take(max)
            .map(|(until, key)| (key.clone(), *until))
            .collect()
    }

    /// Clears `key`'s watch and queues `fired` if the watch is still `until`.
    pub(super) fn fire_stall(
        &mut self,
        key: &FulfillmentKey,
        until: DateTime<Utc>,
        fired: &OutboxWrite,
    ) -> bool {
        if self.stall_by_key.get(key) != Some(&until) {
            return false;
        }
        self.set_stall(key, StallWatch::Clear);
        self.record(key, fired);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::ShipmentStatus;
    use crate::domain::{Attempt, FailureReason, Settlement, Trigger};

    const ALL: [u32; 1] = [0];

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

    fn settled(outbox: &Outbox, id: &str, next: Settlement, at: DateTime<Utc>) -> Delivery {
        let mut d = outbox.delivery(id).unwrap();
        let reason = (next != Settlement::Delivered).then_some(FailureReason::HttpStatus);
        let attempt = Attempt {
            at,
            status: Some(if reason.is_some() { 500 } else { 200 }),
            reason,
            detail: None,
        };
        d.settle(attempt, next);
        d
    }

    fn write(deliveries: Vec<Delivery>) -> OutboxWrite {
        OutboxWrite {
            deliveries,
            stall: None,
        }
    }

    fn due_ids(outbox: &Outbox, now: DateTime<Utc>) -> Vec<String> {
        let (ready, _) = outbox.due(&ALL, now, &BTreeSet::new(), 10);
        ready.into_iter().map(|d| d.id).collect()
    }

    #[test]
    fn only_queue_heads_are_due_and_a_retried_head_holds_its_queue() {
        let mut outbox = Outbox::new(1);
        let now = Utc::now();
        outbox.record(
            &key("f1"),
            &write(vec![delivery("a", "f1", now), delivery("b", "f1", now)]),
        );
        outbox.record(&key("f2"), &write(vec![delivery("c", "f2", now)]));
        assert_eq!(due_ids(&outbox, now), ["a", "c"]);
        let later = now + chrono::Duration::seconds(5);
        let a = settled(&outbox, "a", Settlement::RetryAt(later), now);
        outbox.settle(&a, now);
        assert_eq!(due_ids(&outbox, now), ["c"], "b waits behind a");
        let (_, next) = outbox.due(&ALL, now, &BTreeSet::new(), 10);
        assert_eq!(next, Some(later));
        assert!(outbox.due(&[], now, &BTreeSet::new(), 10).0.is_empty());
        let a = settled(&outbox, "a", Settlement::Dead, later);
        outbox.settle(&a, later);
        assert_eq!(due_ids(&outbox, later), ["b", "c"]);
    }

    #[test]
    fn a_requeued_letter_goes_behind_its_queue_and_delivered_ones_are_forgotten_later() {
        let mut outbox = Outbox::new(1);
        let now = Utc::now();
        outbox.record(&key("f1"), &write(vec![delivery("a", "f1", now)]));
        let a = settled(&outbox, "a", Settlement::Dead, now);
        outbox.settle(&a, now);
        outbox.record(&key("f1"), &write(vec![delivery("b", "f1", now)]));
        assert!(matches!(
            outbox.requeue("a", false, now),
            Requeued::Queued(_)
        ));
        assert_eq!(outbox.requeue("a", false, now), Requeued::AlreadyPending);
        assert_eq!(outbox.requeue("zz", true, now), Requeued::NotFound);
        assert_eq!(due_ids(&outbox, now), ["b"]);
        let b = settled(&outbox, "b", Settlement::Delivered, now);
        outbox.settle(&b, now);
        assert_eq!(due_ids(&outbox, now), ["a"]);
        outbox.forget_delivered(now);
        assert!(outbox.delivery("b").is_some(), "kept until its time");
        outbox.forget_delivered(now + chrono::Duration::seconds(1));
        assert!(outbox.delivery("b").is_none());
    }

    #[test]
    fn a_stall_fires_once_and_not_after_the_watch_moved() {
        let mut outbox = Outbox::new(1);
        let now = Utc::now();
        let until = now - chrono::Duration::seconds(1);
        let watch = |at| OutboxWrite {
            deliveries: Vec::new(),
            stall: Some(StallWatch::Until(at)),
        };
        outbox.record(&key("f1"), &watch(until));
        assert_eq!(outbox.stalled(&ALL, now, 10), [(key("f1"), until)]);
        let fired = write(vec![delivery("s", "f1", now)]);
        assert!(outbox.fire_stall(&key("f1"), until, &fired));
        assert!(!outbox.fire_stall(&key("f1"), until, &fired));
        assert!(outbox.stalled(&ALL, now, 10).is_empty());
        assert_eq!(due_ids(&outbox, now), ["s"]);

        outbox.record(&key("f2"), &watch(until));
        outbox.record(&key("f2"), &watch(now + chrono::Duration::seconds(60)));
        assert!(
            !outbox.fire_stall(&key("f2"), until, &fired),
            "an update ended that stall"
        );
    }
}
