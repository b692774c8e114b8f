//! Sends the planned deliveries and measures the answers, in one of two
//! ways: a closed loop (N senders, each sending its next delivery when the
//! last is answered) or an open loop (a fixed offered rate, whatever the
//! gateway does). The open loop measures each latency from the request's
//! intended send time, so a gateway stall shows as the latency every
//! request scheduled during it would have seen (no coordinated omission).
//! When the run's count is known beforehand (always but for a closed loop
//! for a time), its requests are rendered to bytes before it starts, so
//! that the load itself only writes them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use shipgate::canonical::Provider;
use tokio::sync::Semaphore;

use crate::http::{self, Target};
use crate::plan::Plan;
use crate::wire::Wire;

/// Most bytes of requests rendered before the load (about 480,000 of
/// ~1.1 KB); past it the rest are built while sending.
const PREBUILD_BYTES: usize = 512 << 20;
/// Prebuilt requests share allocations of this size: fewer mallocs, and
/// neighbours in the schedule are neighbours in memory.
const ARENA_BYTES: usize = 64 << 10;

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

/// How many requests a run sends, when that is known before it starts:
/// always but for a closed loop for a time.
pub fn known_count(pace: Pace, bound: Bound) -> Option<u64> {
    match (pace, bound) {
        (_, Bound::Requests(n)) => Some(n),
        (Pace::Open { rate, .. }, Bound::For(duration)) => Some(scheduled(rate, duration)),
        (Pace::Closed { .. }, Bound::For(_)) => None,
    }
}

/// The open loop's time between two intended sends.
fn interval(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate)
}

/// Intended send times within `duration` at `rate`: `i * interval`
/// below `duration`, from `i = 0`.
fn scheduled(rate: f64, duration: Duration) -> u64 {
    let every = interval(rate).as_nanos().max(1);
    u64::try_from(duration.as_nanos().div_ceil(every)).unwrap_or(u64::MAX)
}

/// A delivery rendered to the bytes of its request, and what it carries.
#[derive(Clone)]
pub struct Planned {
    n: usize,
    retry: bool,
    provider: Provider,
    request: Bytes,
}

impl Planned {
    /// Plans the next delivery and renders it into `arena`, whose
    /// allocations the requests share (a new one when it is full).
    fn next(wire: &Wire, plan: &mut Plan, target: &Target, arena: &mut BytesMut) -> Self {
        let next = plan.next();
        let update = plan.update(next.n);
        let fulfillment = plan.fulfillment_of(update);
        http::render(target, &wire.delivery(next.n, update, fulfillment), arena);
        Self {
            n: next.n,
            retry: next.retry,
            provider: fulfillment.provider,
            request: arena.split().freeze(),
        }
    }
}

/// Plans and renders the first `count` deliveries, or as many as fit in
/// `PREBUILD_BYTES`, so that the load itself only writes bytes: the plan
/// never depends on the answers. Their size in bytes comes with them.
pub fn prebuild(
    wire: &Wire,
    plan: &mut Plan,
    target: &Target,
    count: u64,
) -> (Vec<Planned>, usize) {
    let mut arena = BytesMut::with_capacity(ARENA_BYTES);
    let (mut prebuilt, mut bytes) = (Vec::new(), 0);
    while (prebuilt.len() as u64) < count && bytes < PREBUILD_BYTES {
        let planned = Planned::next(wire, plan, target, &mut arena);
        bytes += planned.request.len();
        prebuilt.push(planned);
    }
    (prebuilt, bytes)
}

/// Everything the senders share.
pub struct Load {
    pub http: http::Client,
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

    /// The run's `i`-th delivery: prebuilt, or planned and built now when
    /// past the prebuilt ones (in the order senders ask, which is the
    /// plan's order all the same).
    fn delivery(&self, prebuilt: &[Planned], i: usize) -> Planned {
        match prebuilt.get(i) {
            Some(planned) => planned.clone(),
            None => Planned::next(
                &self.wire,
                &mut self.plan(),
                self.http.target(),
                &mut BytesMut::new(),
            ),
        }
    }

    /// Sends one delivery; its latency runs from `since` to the answer's
    /// last byte.
    async fn send(&self, planned: Planned, since: Instant) {
        let answer = self.http.send(&planned.request).await;
        let latency = since.elapsed();
        {
            let mut plan = self.plan();
            plan.sent(planned.n, since);
            if matches!(answer, Ok(status) if (200..300).contains(&status)) {
                plan.acknowledge(planned.n);
            }
        }
        let mut tally = self.tally();
        tally.record(
            planned.provider,
            planned.retry,
            answer.as_ref().copied().map_err(http::Failure::kind),
            latency,
        );
        if let Err(e) = &answer {
            tally.first_error.get_or_insert_with(|| {
                format!(
                    "{}: {}",
                    self.http.describe(&planned.request),
                    with_causes(e)
                )
            });
        }
    }
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
    /// Counts one request: its answer's status, or the kind of failure
    /// it met.
    fn record(
        &mut self,
        provider: Provider,
        retry: bool,
        answer: Result<u16, &'static str>,
        latency: Duration,
    ) {
        self.sent += 1;
        self.retries += u64::from(retry);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        match answer {
            Ok(status) => *self.by_status.entry(status).or_default() += 1,
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
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

/// Claims the closed loop's requests up to the bound.
struct Slots {
    bound: Bound,
    started: Instant,
    claimed: AtomicUsize,
}

impl Slots {
    /// The index of one more request, if it may go.
    fn claim(&self) -> Option<usize> {
        let i = self.claimed.fetch_add(1, Ordering::Relaxed);
        let within = match self.bound {
            Bound::For(duration) => self.started.elapsed() < duration,
            Bound::Requests(n) => (i as u64) < n,
        };
        within.then_some(i)
    }
}

/// Runs the load to its bound and waits for every answer; the run's first
/// requests come `prebuilt` (see [`prebuild`]), freed when it ends.
pub async fn drive(load: Arc<Load>, pace: Pace, bound: Bound, prebuilt: Vec<Planned>) {
    match pace {
        Pace::Closed { concurrency } => closed_loop(&load, concurrency, bound, &prebuilt).await,
        Pace::Open {
            rate,
            max_in_flight,
        } => {
            // An open loop always knows its count.
            let count = known_count(pace, bound).unwrap_or_default();
            open_loop(&load, rate, max_in_flight, count, prebuilt).await
        }
    }
}

async fn closed_loop(load: &Arc<Load>, concurrency: usize, bound: Bound, prebuilt: &[Planned]) {
    let slots = Slots {
        bound,
        started: Instant::now(),
        claimed: AtomicUsize::new(0),
    };
    let senders = (0..concurrency).map(|_| async {
        while let Some(i) = slots.claim() {
            let planned = load.delivery(prebuilt, i);
            load.send(planned, Instant::now()).await;
        }
    });
    futures_util::future::join_all(senders).await;
    load.tally().elapsed = slots.started.elapsed();
}

/// A scheduling thread wakes at each of the `count` requests' intended
/// times (plain thread sleeps are finer than the runtime's 1 ms timer) and
/// hands the delivery, built beforehand, to the runtime to send.
async fn open_loop(
    load: &Arc<Load>,
    rate: f64,
    max_in_flight: usize,
    count: u64,
    prebuilt: Vec<Planned>,
) {
    let interval = interval(rate);
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let runtime = tokio::runtime::Handle::current();
    let started = Instant::now();
    let scheduler = {
        let (load, in_flight) = (Arc::clone(load), Arc::clone(&in_flight));
        std::thread::spawn(move || {
            for i in 0..count {
                let intended = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
                let planned = load.delivery(&prebuilt, usize::try_from(i).unwrap_or(usize::MAX));
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
            }
        })
    };
    let scheduled = tokio::task::spawn_blocking(move || scheduler.join()).await;
    // Every permit back: every request answered.
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let _ = in_flight.acquire_many(all).await;
    if matches!(scheduled, Ok(Ok(()))) {
        load.tally().elapsed = started.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::plan::Shape;
    use crate::wire::{Credentials, RunId};

    fn plan() -> Plan {
        let shape = Shape {
            mix: "shopify=70,carriyo=20,redo=10".parse().unwrap(),
            fulfillments: 30,
            duplicates: 0.2,
            out_of_order: 0.2,
        };
        Plan::new(shape, StdRng::seed_from_u64(3))
    }

    /// A request without the field that is fresh on every delivery
    /// (Shopify's X-Shopify-Webhook-Id).
    fn fixed(planned: &Planned) -> (usize, bool, Provider, String) {
        let text = String::from_utf8_lossy(&planned.request);
        let lines: Vec<&str> = text
            .split("\r\n")
            .filter(|line| !line.starts_with("x-shopify-webhook-id:"))
            .collect();
        (
            planned.n,
            planned.retry,
            planned.provider,
            lines.join("\r\n"),
        )
    }

    #[test]
    fn prebuilt_requests_are_the_ones_built_while_sending() {
        let credentials = Credentials {
            shop: "acme.myshopify.com".into(),
            shopify_secret: "s".into(),
            carriyo_tenant: "ACME".into(),
            carriyo_key: "k".into(),
            redo_store_id: "store".into(),
            redo_token: "t".into(),
            store: "acme".into(),
            aftership_secret: "a".into(),
            easypost_secret: "e".into(),
        };
        let wire = Wire::new(RunId::random(), credentials).unwrap();
        let target = Target::resolve("http://127.0.0.1:9").unwrap();
        let (mut ahead, mut along) = (plan(), plan());
        let (mut prebuilt, bytes) = prebuild(&wire, &mut ahead, &target, 150);
        assert_eq!(prebuilt.len(), 150);
        assert_eq!(
            bytes,
            prebuilt.iter().map(|p| p.request.len()).sum::<usize>()
        );
        // Past the prebuilt ones, the plan goes on where they stopped.
        let mut arena = BytesMut::new();
        prebuilt.extend((0..50).map(|_| Planned::next(&wire, &mut ahead, &target, &mut arena)));
        let built: Vec<_> = (0..200)
            .map(|_| Planned::next(&wire, &mut along, &target, &mut BytesMut::new()))
            .collect();
        assert!(built.iter().any(|p| p.retry));
        let fixed = |all: &[Planned]| all.iter().map(fixed).collect::<Vec<_>>();
        assert_eq!(fixed(&prebuilt), fixed(&built));
    }

    #[test]
    fn an_open_loop_counts_every_intended_time_within_its_duration() {
        for (rate, duration) in [(3000.0, 10.0), (5000.0, 60.0), (400.0, 2.0), (7.0, 1.5)] {
            let duration = Duration::from_secs_f64(duration);
            let every = interval(rate);
            let mut times = 0u32;
            while every * times < duration {
                times += 1;
            }
            assert_eq!(scheduled(rate, duration), u64::from(times), "{rate}/s");
        }
        let open = Pace::Open {
            rate: 3000.0,
            max_in_flight: 1,
        };
        let closed = Pace::Closed { concurrency: 1 };
        let ten = Bound::For(Duration::from_secs(10));
        assert_eq!(known_count(open, ten), Some(30_001));
        assert_eq!(known_count(closed, Bound::Requests(5)), Some(5));
        assert_eq!(known_count(closed, ten), None);
    }
}
