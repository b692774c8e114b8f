//! Prometheus metrics at `GET /metrics`, through the `metrics` facade and
//! its Prometheus exporter.
//!
//! Each [`Application`](crate::app::Application) owns its own recorder
//! instead of installing a process-wide one, so several gateways in one
//! process (the test suite) never share or lose counts. Gauges that mirror
//! storage (the log backlog, unmapped words) are read from storage at
//! scrape time, so every process reports the shared truth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{with_local_recorder, Counter, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tokio_util::sync::CancellationToken;
use utoipa_actix_web::service_config::ServiceConfig;

use super::timeline::Timeline;
use crate::app::AppState;
use crate::canonical::{CanonicalEvent, EventKind, Provider};
use crate::domain::{FailureReason, Settlement};
use crate::fulfillment::Recorder;
use crate::storage::{Claim, Outcome, Storage};

/// Ingest requests by provider and outcome, as `/api/v1/stats` counts them.
pub const WEBHOOKS_RECEIVED: &str = "shipgate_webhooks_received_total";
/// Time to answer an HTTP request, by method, route pattern and status.
pub const REQUEST_DURATION: &str = "shipgate_http_request_duration_seconds";
/// Entries waiting in each partition of the event log.
pub const LOG_BACKLOG: &str = "shipgate_event_log_backlog";
/// Time the fulfillment core took to apply one event from the log.
pub const APPLY_DURATION: &str = "shipgate_apply_duration_seconds";
/// Time from receiving an event to having applied it.
pub const APPLY_LAG: &str = "shipgate_apply_lag_seconds";
/// Log entries a worker applied per round: small rounds at a steady rate
/// mean `worker.linger` is too short to batch.
pub const WORKER_BATCH: &str = "shipgate_worker_batch_entries";
/// Distinct provider words the status maps do not know.
pub const UNMAPPED_WORDS: &str = "shipgate_unmapped_words";
/// Automation delivery attempts by rule and outcome: `delivered`, `failed`
/// (another attempt is scheduled) or `dead` (it is a dead letter now).
pub const DELIVERIES: &str = "shipgate_deliveries_total";
/// Deliveries that became dead letters, by rule and the reason their last
/// attempt failed.
pub const DEAD_LETTERS: &str = "shipgate_dead_letters_total";
/// Storage operations that failed, by operation.
pub const STORAGE_ERRORS: &str = "shipgate_storage_errors_total";
/// Always 1; its `version` label says which build is running.
pub const BUILD_INFO: &str = "shipgate_build_info";

/// Answers a person or a load balancer waits for: milliseconds to seconds.
const REQUEST_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Entries per worker round, up to the largest sensible `worker.batch_size`.
const BATCH_BUCKETS: [f64; 8] = [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];
/// Applying waits on the log: from milliseconds to an outage's hours.
const APPLY_LAG_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];
/// How often histogram samples are folded into their buckets when no one
/// scrapes, so memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The metrics of one application; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    timeline: Timeline,
    /// Made once: ingest counts every request on these and the worker
    /// times every event, and a macro finds its metric by building and
    /// hashing the labels each time.
    providers: Vec<ProviderMetrics>,
}

/// One provider's handles, in [`Inner::providers`].
struct ProviderMetrics {
    provider: Provider,
    received: [(Outcome, Counter); Outcome::ALL.len()],
    apply_duration: Histogram,
    apply_lag: Histogram,
}

impl ProviderMetrics {
    /// Registers the provider's metrics on the recorder in use, every
    /// counter present at zero.
    fn register(provider: Provider) -> Self {
        let name = provider.as_str();
        Self {
            provider,
            received: Outcome::ALL.map(|outcome| {
                let counter =
                    counter!(WEBHOOKS_RECEIVED, "provider" => name, "outcome" => outcome.as_str());
                counter.increment(0);
                (outcome, counter)
            }),
            apply_duration: histogram!(APPLY_DURATION, "provider" => name),
            apply_lag: histogram!(APPLY_LAG, "provider" => name),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh recorder with every metric described and every
    /// provider/outcome counter present at zero, so dashboards and alerts
    /// never have to tell "missing" from "none yet".
    pub fn new(providers: &[Provider]) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &REQUEST_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(APPLY_DURATION.into()), &REQUEST_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(APPLY_LAG.into()), &APPLY_LAG_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(WORKER_BATCH.into()), &BATCH_BUCKETS)
            })
            .expect("bucket lists are non-empty constants")
            .build_recorder();
        let providers = with_local_recorder(&recorder, || {
            describe_counter!(
                WEBHOOKS_RECEIVED,
                "Requests on provider paths by provider and outcome (accepted, duplicate, \
                 unauthorized, invalid, unmapped, ignored); unmapped ones are also accepted."
            );
            describe_histogram!(
                REQUEST_DURATION,
                Unit::Seconds,
                "Time to answer an HTTP request, by method, route pattern and status."
            );
            describe_gauge!(LOG_BACKLOG, "Entries waiting in each event-log partition.");
            describe_histogram!(
                APPLY_DURATION,
                Unit::Seconds,
                "Time the fulfillment core took per event from the log: a batch's time over its events."
            );
            describe_histogram!(WORKER_BATCH, "Log entries a worker applied per round.");
            describe_histogram!(
                APPLY_LAG,
                Unit::Seconds,
                "Time from receiving an event to having applied it."
            );
            describe_gauge!(
                UNMAPPED_WORDS,
                "Distinct provider words the status maps do not know, by provider."
            );
            describe_counter!(
                DELIVERIES,
                "Automation delivery attempts by rule and outcome (delivered, failed: retried \
                 later, dead: now a dead letter)."
            );
            describe_counter!(
                DEAD_LETTERS,
                "Deliveries that became dead letters, by rule and the reason their last attempt failed."
            );
            describe_counter!(STORAGE_ERRORS, "Failed storage operations, by operation.");
            describe_gauge!(BUILD_INFO, "Always 1; the version label names the build.");
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            providers
                .iter()
                .copied()
                .map(ProviderMetrics::register)
                .collect::<Vec<_>>()
        });
        Self {
            inner: Arc::new(Inner {
                recorder,
                timeline: Timeline::default(),
                providers,
            }),
        }
    }

    /// The providers this application serves, in the order stats list them.
    pub fn providers(&self) -> impl Iterator<Item = Provider> + '_ {
        self.inner.providers.iter().map(|m| m.provider)
    }

    fn of(&self, provider: Provider) -> Option<&ProviderMetrics> {
        self.inner.providers.iter().find(|m| m.provider == provider)
    }

    /// Runs `f` with this application's recorder behind the macros.
    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        with_local_recorder(&self.inner.recorder, f)
    }

    /// Counts one ingest outcome, on the counter and on the timeline.
    pub fn count_webhook(&self, provider: Provider, outcome: Outcome) {
        self.count_outcome(None, provider, outcome);
    }

    /// As [`Self::count_webhook`], on `store`'s timeline too when known.
    fn count_outcome(&self, store: Option<&str>, provider: Provider, outcome: Outcome) {
        let counter = self.of(provider).and_then(|m| {
            m.received
                .iter()
                .find_map(|(o, counter)| (*o == outcome).then_some(counter))
        });
        if let Some(counter) = counter {
            counter.increment(1);
        }
        self.inner
            .timeline
            .count(store, provider, outcome, Utc::now());
    }

    /// Counts an event offered to the log as `/api/v1/stats` does: accepted
    /// or duplicate, and unmapped too when its word is unknown.
    pub fn count_recorded(&self, event: &CanonicalEvent, claim: Claim) {
        let count = |outcome| self.count_outcome(Some(&event.key.store), event.provider, outcome);
        match claim {
            Claim::Accepted => {
                count(Outcome::Accepted);
                if event.kind == EventKind::Unmapped {
                    count(Outcome::Unmapped);
                }
            }
            Claim::Duplicate { .. } => count(Outcome::Duplicate),
        }
    }

    /// Counts a failed storage operation.
    pub fn count_storage_error(&self, operation: &'static str) {
        self.record(|| counter!(STORAGE_ERRORS, "operation" => operation).increment(1));
    }

    fn observe_request(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        took: Duration,
    ) {
        // Only standard methods and matched patterns become label values:
        // a client must not be able to mint new time series.
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        let route = route.unwrap_or("unmatched").to_owned();
        self.record(|| {
            histogram!(REQUEST_DURATION, "method" => method, "route" => route, "status" => status.as_str().to_owned())
                .record(took.as_secs_f64());
        });
    }

    /// The per-minute outcome counts behind the dashboard's chart.
    pub(super) fn timeline(&self) -> &Timeline {
        &self.inner.timeline
    }

    /// Folds histogram samples into their buckets every few seconds until
    /// `stop`, so an unscraped process does not accumulate samples.
    pub fn keep_up(&self, stop: CancellationToken) {
        let handle = self.inner.recorder.handle();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tokio::select! {
                    _ = every.tick() => handle.run_upkeep(),
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    /// The text exposition, with the storage-backed gauges read now.
    pub async fn render(&self, storage: &dyn Storage) -> String {
        match storage.backlog().await {
            Ok(partitions) => self.record(|| {
                for (partition, waiting) in partitions.iter().enumerate() {
                    gauge!(LOG_BACKLOG, "partition" => partition.to_string()).set(*waiting as f64);
                }
            }),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the log backlog");
                self.count_storage_error("backlog");
            }
        }
        match storage.unmapped_words().await {
            Ok(words) => self.record(|| {
                for provider in self.providers() {
                    let distinct = words.iter().filter(|w| w.provider == provider).count();
                    gauge!(UNMAPPED_WORDS, "provider" => provider.as_str()).set(distinct as f64);
                }
            }),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the unmapped words");
                self.count_storage_error("unmapped_words");
            }
        }
        self.inner.recorder.handle().render()
    }
}

/// The core's reports become this application's metrics.
impl Recorder for Metrics {
    fn storage_error(&self, operation: &'static str) {
        self.count_storage_error(operation);
    }

    fn worker_round(&self, entries: usize) {
        self.record(|| histogram!(WORKER_BATCH).record(entries as f64));
    }

    fn applied(&self, event: &CanonicalEvent, took: Duration) {
        let lag = (Utc::now() - event.received_at)
            .to_std()
            .unwrap_or_default();
        if let Some(m) = self.of(event.provider) {
            m.apply_duration.record(took.as_secs_f64());
            m.apply_lag.record(lag.as_secs_f64());
        }
    }

    fn rules(&self, names: &[&str]) {
        self.record(|| {
            for rule in names {
                for outcome in ["delivered", "failed", "dead"] {
                    counter!(DELIVERIES, "rule" => (*rule).to_owned(), "outcome" => outcome)
                        .increment(0);
                }
            }
        });
    }

    fn delivery_settled(&self, rule: &str, settlement: Settlement, reason: Option<FailureReason>) {
        let outcome = match settlement {
            Settlement::Delivered => "delivered",
            Settlement::RetryAt(_) => "failed",
            Settlement::Dead => "dead",
        };
        self.record(|| {
            counter!(DELIVERIES, "rule" => rule.to_owned(), "outcome" => outcome).increment(1);
            if settlement == Settlement::Dead {
                let reason = reason.map_or("unknown", FailureReason::as_str);
                counter!(DEAD_LETTERS, "rule" => rule.to_owned(), "reason" => reason).increment(1);
            }
        });
    }
}

/// Registers `GET /metrics`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(scrape);
}

/// `GET /metrics`: the Prometheus text exposition. No auth: bind it where
/// only Prometheus reaches.
#[utoipa::path(
    operation_id = "metrics",
    tag = "ops",
    summary = "Prometheus metrics",
    description = "The Prometheus text exposition format. No auth: bind it where only Prometheus reaches.",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")),
)]
#[get("/metrics")]
async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let text = state.metrics.render(state.storage.as_ref()).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// Middleware timing every request into [`REQUEST_DURATION`], labelled by
/// the route pattern it matched (`/v2.2/stores/{storeId}/orders`), never
/// the raw path.
pub async fn time_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let method = req.method().clone();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response.request().match_pattern();
        metrics.observe_request(
            &method,
            route.as_deref(),
            response.status(),
            started.elapsed(),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_recorders_keep_their_own_counts() {
        let one = Metrics::new(&Provider::ALL);
        let two = Metrics::new(&Provider::ALL);
        one.count_webhook(Provider::Redo, Outcome::Invalid);
        one.count_webhook(Provider::Redo, Outcome::Invalid);
        two.count_webhook(Provider::Redo, Outcome::Invalid);
        let line = r#"shipgate_webhooks_received_total{provider="redo",outcome="invalid"}"#;
        let text = one.inner.recorder.handle().render();
        assert!(text.contains(&format!("{line} 2")), "{text}");
        let text = two.inner.recorder.handle().render();
        assert!(text.contains(&format!("{line} 1")), "{text}");
    }
}
