//! Per-minute counts of this process's ingest outcomes, for the
//! dashboard's chart: `/api/v1/stats` holds the totals, this holds their
//! recent shape. Kept in memory for the last hour only; after a restart the
//! chart starts empty while the totals stay.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::admin::Admin;
use super::error::{OpsError, OpsErrorBody};
use crate::app::AppState;
use crate::canonical::Provider;
use crate::storage::Outcome;

/// How many minutes are kept (and the most a caller may ask for).
pub const KEPT_MINUTES: usize = 60;
const DEFAULT_MINUTES: usize = 30;

const OUTCOMES: usize = Outcome::ALL.len();

/// Counts by provider (only those counted), each indexed like `Outcome::ALL`.
type Counts = BTreeMap<Provider, [u64; OUTCOMES]>;

/// Counts for one minute: the totals, and by store those of events that
/// reached the log (refusals belong to no store).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Minute {
    /// Minutes since the Unix epoch.
    number: i64,
    counts: Counts,
    stores: BTreeMap<String, Counts>,
}

/// One minute of outcome counts, as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteCounts {
    /// The minute's first second, RFC 3339 in UTC.
    pub start: String,
    /// Counts by provider, then by outcome; every one present.
    pub providers: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

/// `GET /api/v1/stats/timeline`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct TimelineAnswer {
    /// Oldest first.
    minutes: Vec<MinuteCounts>,
}

/// The last hour of outcomes, minute by minute.
#[derive(Debug, Default)]
pub struct Timeline {
    minutes: Mutex<VecDeque<Minute>>,
}

fn minute_number(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

fn index<T: PartialEq>(all: &[T], item: &T) -> usize {
    all.iter().position(|x| x == item).unwrap_or_default()
}

impl Timeline {
    /// Counts one outcome at `at`, for `store` too when it is known (a late
    /// count for a minute already dropped is ignored).
    pub fn count(
        &self,
        store: Option<&str>,
        provider: Provider,
        outcome: Outcome,
        at: DateTime<Utc>,
    ) {
        let number = minute_number(at);
        let mut minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        let newest = minutes.back().map_or(number, |m| m.number.max(number));
        if number <= newest - KEPT_MINUTES as i64 {
            return;
        }
        let position = match minutes.binary_search_by_key(&number, |m| m.number) {
            Ok(position) => position,
            Err(position) => {
                minutes.insert(
                    position,
                    Minute {
                        number,
                        counts: Counts::new(),
                        stores: BTreeMap::new(),
                    },
                );
                position
            }
        };
        let o = index(&Outcome::ALL, &outcome);
        let minute = &mut minutes[position];
        minute.counts.entry(provider).or_insert([0; OUTCOMES])[o] += 1;
        if let Some(store) = store {
            minute
                .stores
                .entry(store.to_owned())
                .or_default()
                .entry(provider)
                .or_insert([0; OUTCOMES])[o] += 1;
        }
        while minutes
            .front()
            .is_some_and(|m| m.number <= newest - KEPT_MINUTES as i64)
        {
            minutes.pop_front();
        }
    }

    /// The `span` minutes up to and including the one of `now`, oldest
    /// first, every minute, provider and outcome present (zeros included):
    /// the totals, or the sum of `scope`'s stores.
    pub fn last(
        &self,
        providers: &[Provider],
        span: usize,
        now: DateTime<Utc>,
        scope: Option<&BTreeSet<String>>,
    ) -> Vec<MinuteCounts> {
        let current = minute_number(now);
        let minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        (0..span.min(KEPT_MINUTES) as i64)
            .rev()
            .map(|ago| {
                let number = current - ago;
                let counts = minutes
                    .iter()
                    .find(|m| m.number == number)
                    .map_or_else(Counts::new, |m| m.of(scope));
                let providers = providers
                    .iter()
                    .map(|p| {
                        let row = counts.get(p).copied().unwrap_or([0; OUTCOMES]);
                        let row = Outcome::ALL.iter().map(|o| o.as_str()).zip(row).collect();
                        (p.as_str(), row)
                    })
                    .collect();
                let start = Utc
                    .timestamp_opt(number * 60, 0)
                    .single()
                    .unwrap_or(now)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                MinuteCounts { start, providers }
            })
            .collect()
    }
}

impl Minute {
    /// The totals, or the sum of `scope`'s stores.
    fn of(&self, scope: Option<&BTreeSet<String>>) -> Counts {
        let Some(scope) = scope else {
            return self.counts.clone();
        };
        let mut sum = Counts::new();
        for counts in scope.iter().filter_map(|s| self.stores.get(s)) {
            for (provider, counted) in counts {
                let row = sum.entry(*provider).or_insert([0; OUTCOMES]);
                for (n, c) in row.iter_mut().zip(counted) {
                    *n += c;
                }
            }
        }
        sum
    }
}

/// Registers `GET /api/v1/stats/timeline`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(stats_timeline);
}

/// How many minutes to answer.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TimelineQuery {
    /// 1 to 60; 30 when absent.
    #[param(minimum = 1, maximum = 60)]
    minutes: Option<usize>,
}

/// `GET /api/v1/stats/timeline?minutes=N`: this process's outcome counts
/// per minute, oldest first; a token scoped to stores gets theirs.
#[utoipa::path(
    operation_id = "ops_stats_timeline",
    tag = "ops",
    summary = "This process's ingest outcomes per minute, for the last hour at most",
    params(TimelineQuery),
    responses(
        (status = 200, description = "Oldest minute first; every minute, provider and outcome present", body = TimelineAnswer),
        (status = 400, description = "`minutes` is not between 1 and 60", body = OpsErrorBody),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/stats/timeline")]
async fn stats_timeline(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OpsError> {
    let query =
        web::Query::<TimelineQuery>::from_query(req.query_string()).map_err(OpsError::query)?;
    let span = query.minutes.unwrap_or(DEFAULT_MINUTES);
    if span == 0 || span > KEPT_MINUTES {
        return Err(OpsError::Invalid(format!(
            "query `minutes`: {span} is not between 1 and {KEPT_MINUTES}"
        )));
    }
    let scope = admin.scope();
    let providers: Vec<Provider> = state.metrics.providers().collect();
    let minutes = state
        .metrics
        .timeline()
        .last(&providers, span, Utc::now(), scope.as_ref());
    Ok(HttpResponse::Ok().json(TimelineAnswer { minutes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn counts_land_in_their_minute_and_gaps_are_zero() {
        let timeline = Timeline::default();
        timeline.count(
            None,
            Provider::Carriyo,
            Outcome::Accepted,
            at("2026-11-20T10:00:05Z"),
        );
        timeline.count(
            None,
            Provider::Carriyo,
            Outcome::Accepted,
            at("2026-11-20T10:00:59Z"),
        );
        timeline.count(
            None,
            Provider::Redo,
            Outcome::Invalid,
            at("2026-11-20T10:02:00Z"),
        );
        let last = timeline.last(&Provider::ALL, 3, at("2026-11-20T10:02:30Z"), None);
        assert_eq!(last.len(), 3);
        assert_eq!(last[0].start, "2026-11-20T10:00:00Z");
        assert_eq!(last[0].providers["carriyo"]["accepted"], 2);
        assert_eq!(last[1].providers["carriyo"]["accepted"], 0);
        assert_eq!(last[2].providers["redo"]["invalid"], 1);
        assert_eq!(last[2].providers["shopify"]["duplicate"], 0);
    }

    #[test]
    fn only_the_last_hour_is_kept() {
        let timeline = Timeline::default();
        timeline.count(
            None,
            Provider::Shopify,
            Outcome::Accepted,
            at("2026-11-20T10:00:00Z"),
        );
        timeline.count(
            None,
            Provider::Shopify,
            Outcome::Accepted,
            at("2026-11-20T11:00:00Z"),
        );
        assert_eq!(timeline.minutes.lock().unwrap().len(), 1);
        timeline.count(
            None,
            Provider::Shopify,
            Outcome::Accepted,
            at("2026-11-20T09:59:00Z"),
        );
        timeline.count(
            None,
            Provider::Shopify,
            Outcome::Invalid,
            at("2026-11-20T10:30:00Z"),
        );
        let last = timeline.last(
            &Provider::ALL,
            KEPT_MINUTES,
            at("2026-11-20T11:00:00Z"),
            None,
        );
        let total =
            |outcome: &str| -> u64 { last.iter().map(|m| m.providers["shopify"][outcome]).sum() };
        assert_eq!(
            total("accepted"),
            1,
            "counts older than the hour are dropped"
        );
        assert_eq!(total("invalid"), 1, "a late count within the hour is kept");
    }
}
