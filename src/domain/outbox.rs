//! The outbox's vocabulary: deliveries waiting to go out, their attempts,
//! the dead letters, and the stall watch that derives
//! `stalled_in_transit`. The storage backends keep them, written in the
//! same atomic step as the fulfillment change that fired them.
//!
//! Deliveries queue per (rule, fulfillment): only the head of a queue is
//! attempted, so a subscriber sees one fulfillment's news in the order it
//! was applied, while other queues go on.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Trigger;
use crate::canonical::FulfillmentKey;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

impl DeliveryState {
    /// Every state, in the order a delivery goes through them.
    pub const ALL: [DeliveryState; 3] = [Self::Pending, Self::Delivered, Self::Dead];

    /// The state's name in the API and in stored documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a delivery state (pending, delivered, dead)"))
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
    /// Only deliveries of these stores (an ops token's); `None` for every store.
    pub scope: Option<std::collections::BTreeSet<String>>,
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
            && self.scope.as_ref().is_none_or(|s| s.contains(&key.store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::ShipmentStatus;

    fn pending() -> Delivery {
        let now = Utc::now();
        Delivery {
            id: "msg_1".into(),
            rule: "r".into(),
            fulfillment: FulfillmentKey {
                store: "acme".into(),
                order_ref: "o1".into(),
                fulfillment_ref: "f1".into(),
            },
            trigger: Trigger::Status(ShipmentStatus::InTransit),
            created_at: now,
            state: DeliveryState::Pending,
            next_attempt_at: Some(now),
            attempts: Vec::new(),
            round_start: 0,
            body: "{}".into(),
        }
    }

    fn attempt(status: u16, reason: Option<FailureReason>) -> Attempt {
        Attempt {
            at: Utc::now(),
            status: Some(status),
            reason,
            detail: None,
        }
    }

    #[test]
    fn settling_records_the_attempt_and_the_next_state() {
        let mut d = pending();
        let later = Utc::now() + chrono::Duration::seconds(5);
        d.settle(
            attempt(500, Some(FailureReason::HttpStatus)),
            Settlement::RetryAt(later),
        );
        assert_eq!(
            (d.state, d.next_attempt_at),
            (DeliveryState::Pending, Some(later))
        );
        d.settle(
            attempt(500, Some(FailureReason::HttpStatus)),
            Settlement::Dead,
        );
        assert_eq!((d.state, d.next_attempt_at), (DeliveryState::Dead, None));
        assert_eq!(d.last_failure(), Some(FailureReason::HttpStatus));
        assert_eq!(d.attempts_this_round(), 2);
    }

    #[test]
    fn a_dead_letter_requeues_with_a_fresh_schedule_and_a_delivered_one_only_by_force() {
        let mut d = pending();
        let now = Utc::now();
        assert_eq!(d.requeue(false, now), Err(Requeued::AlreadyPending));
        d.settle(
            attempt(500, Some(FailureReason::HttpStatus)),
            Settlement::Dead,
        );
        assert_eq!(d.requeue(false, now), Ok(()));
        assert_eq!(
            (d.state, d.attempts_this_round()),
            (DeliveryState::Pending, 0)
        );
        d.settle(attempt(200, None), Settlement::Delivered);
        assert_eq!(d.requeue(false, now), Err(Requeued::AlreadyDelivered));
        assert_eq!(d.requeue(true, now), Ok(()));
        assert_eq!(d.attempts.len(), 2, "earlier attempts stay on record");
    }

    #[test]
    fn states_and_reasons_round_trip_through_their_words() {
        for state in DeliveryState::ALL {
            assert_eq!(state.as_str().parse(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        for reason in FailureReason::ALL {
            assert_eq!(reason.as_str().parse(), Ok(reason));
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
        assert!("lost"
            .parse::<DeliveryState>()
            .unwrap_err()
            .contains("'lost'"));
    }
}
