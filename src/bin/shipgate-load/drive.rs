//! Sends the planned deliveries and measures the answers, in one of two
//! ways: a closed loop (N senders, each sending its next delivery when the
//! last is answered) or an open loop (a fixed offered rate, whatever the
//! gateway does). The open loop measures each latency from the request's
//! intended send time, so a gateway stall shows as the latency every
//! request scheduled during it would have seen (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shipgate::canonical::Provider;
use tokio::sync::Semaphore;

use crate::plan::Plan;
use crate::wire::{Delivery, Wire};

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many senders, each waiting for its answer before sending again.
    Closed { concurrency: usize },
    /// This many requests a second, at most `max_in_flight` unanswered.
    Open { rate: f64, max_in_flight: usize },
}

/// When the load stops.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    For(Duration),
    Requests(u64),
}

/// Everything the senders share.
pub struct Load {
    pub client: reqwest::Client,
    pub base_url: String,
    pub wire: Wire,
    pub plan: Mutex<Plan>,
    pub tally: Mutex<Tally>,
}

impl Load {
    /// The plan; a sender that panicked holding it left it consistent
    /// (every change to it is a single push or flag).
    pub fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plans the next delivery and builds it.
    fn next_delivery(&self) -> Planned {
        let mut plan = self.plan();
        let next = plan.next();
        let update = plan.update(next.n);
        let fulfillment = plan.fulfillment_of(update);
        Planned {
            n: next.n,
            retry: next.retry,
            provider: fulfillment.provider,
            delivery: self.wire.delivery(next.n, update, fulfillment),
        }
    }

    /// Sends one delivery; its latency runs from `since`.
    async fn send(&self, planned: Planned, since: Instant) {
        let Delivery {
            path,
            headers,
            body,
        } = planned.delivery;
        let mut request = self.client.post(format!("{}{path}", self.base_url));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer = match request.body(body).send().await {
            // The answer is read whole: the latency ends with its last byte.
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|_| status)
            }
            Err(e) => Err(e),
        };
        let latency = since.elapsed();
        if matches!(&answer, Ok(status) if status.is_success()) {
            self.plan().acknowledge(planned.n);
        }
        self.tally()
            .record(planned.provider, planned.retry, answer, latency);
    }
}

/// A delivery and what it carries.
struct Planned {
    n: usize,
    retry: bool,
    provider: Provider,
    delivery: Delivery,
}

/// Latencies in microseconds, from 1 µs to 10 minutes, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("the bounds are valid")
}

/// What one provider's deliveries met.
pub struct ProviderTally {
    pub sent: u64,
    pub latency: Histogram<u64>,
}

/// What the load met: answers by status, transport errors by kind,
/// latencies.
pub struct Tally {
    pub sent: u64,
    pub retries: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub errors: BTreeMap<&'static str, u64>,
    pub first_error: Option<String>,
    pub latency: Histogram<u64>,
    pub by_provider: BTreeMap<Provider, ProviderTally>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            sent: 0,
            retries: 0,
            by_status: BTreeMap::new(),
            errors: BTreeMap::new(),
            first_error: None,
            latency: histogram(),
            by_provider: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }
}

impl Tally {
    fn record(
        &mut self,
        provider: Provider,
        retry: bool,
        answer: Result<reqwest::StatusCode, reqwest::Error>,
        latency: Duration,
    ) {
        self.sent += 1;
        self.retries += u64::from(retry);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        match answer {
            Ok(status) => *self.by_status.entry(status.as_u16()).or_default() += 1,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "other"
                };
                *self.errors.entry(kind).or_default() += 1;
                self.first_error.get_or_insert_with(|| with_causes(&e));
            }
        }
        self.latency.saturating_record(micros);
        let by_provider = self
            .by_provider
            .entry(provider)
            .or_insert_with(|| ProviderTally {
                sent: 0,
                latency: histogram(),
            });
        by_provider.sent += 1;
        by_provider.latency.saturating_record(micros);
    }

    pub fn successes(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(status, _)| (200..300).contains(*status))
            .map(|(_, n)| n)
            .sum()
    }
}

/// An error with its causes, which say what actually went wrong.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Claims request slots up to the bound.
struct Slots {
    bound: Bound,
    started: Instant,
    claimed: AtomicU64,
}

impl Slots {
    /// Whether one more request may go; for `Requests` it claims one.
    fn claim(&self) -> bool {
        match self.bound {
            Bound::For(duration) => self.started.elapsed() < duration,
            Bound::Requests(n) => self.claimed.fetch_add(1, Ordering::Relaxed) < n,
        }
    }
}

/// Runs the load to its bound and waits for every answer.
pub async fn drive(load: Arc<Load>, pace: Pace, bound: Bound) {
    let slots = Slots {
        bound,
        started: Instant::now(),
        claimed: AtomicU64::new(0),
    };
    match pace {
        Pace::Closed { concurrency } => closed_loop(&load, concurrency, &slots).await,
        Pace::Open {
            rate,
            max_in_flight,
        } => open_loop(&load, rate, max_in_flight, slots).await,
    }
}

async fn closed_loop(load: &Arc<Load>, concurrency: usize, slots: &Slots) {
    let senders = (0..concurrency).map(|_| async {
        while slots.claim() {
            let planned = load.next_delivery();
            load.send(planned, Instant::now()).await;
        }
    });
    futures_util::future::join_all(senders).await;
    load.tally().elapsed = slots.started.elapsed();
}

/// A scheduling thread wakes at each request's intended time (plain
/// thread sleeps are finer than the runtime's 1 ms timer) and hands the
/// delivery, built beforehand, to the runtime to send.
async fn open_loop(load: &Arc<Load>, rate: f64, max_in_flight: usize, slots: Slots) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let runtime = tokio::runtime::Handle::current();
    let scheduler = {
        let (load, in_flight) = (Arc::clone(load), Arc::clone(&in_flight));
        std::thread::spawn(move || {
            let mut i: u32 = 0;
            loop {
                let intended = slots.started + interval * i;
                if !slots.claim_at(intended) {
                    break;
                }
                let planned = load.next_delivery();
                if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // Past the in-flight cap the schedule waits; the requests
                // it delays still count their latency from their time.
                let permit = match Arc::clone(&in_flight).try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => match runtime.block_on(Arc::clone(&in_flight).acquire_owned()) {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                };
                let load = Arc::clone(&load);
                runtime.spawn(async move {
                    load.send(planned, intended).await;
                    drop(permit);
                });
                i = i.saturating_add(1);
            }
            slots.started
        })
    };
    let started = tokio::task::spawn_blocking(move || scheduler.join())
        .await
        .ok()
        .and_then(Result::ok);
    // Every permit back: every request answered.
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let _ = in_flight.acquire_many(all).await;
    if let Some(started) = started {
        load.tally().elapsed = started.elapsed();
    }
}

impl Slots {
    /// Whether a request intended at `intended` is within the bound.
    fn claim_at(&self, intended: Instant) -> bool {
        match self.bound {
            Bound::For(duration) => intended < self.started + duration,
            Bound::Requests(_) => self.claim(),
        }
    }
}
