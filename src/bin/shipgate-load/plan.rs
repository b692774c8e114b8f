//! What the load sends, independent of how it looks on the wire: which
//! provider each delivery comes from, which fulfillment it updates, whether
//! it is a provider's retry of an earlier delivery or news that arrives
//! older than news already sent. Every unique update is remembered (small:
//! no bodies) so the verification can look for each one afterwards.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Instant;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::Rng;
use shipgate::canonical::{DefinedName, Provider};

use crate::defined;
use uuid::Uuid;

/// Every fulfillment's first in-order update happens at 2026-11-21T00:00Z
/// (days since 1970); later ones follow `STEP` apart.
const FIRST_UPDATE_DAY: i64 = 20_778;
/// How far back a retry reaches: providers retry recent deliveries.
const RETRY_WINDOW: usize = 1000;
/// Time between two in-order updates of one fulfillment.
const STEP: TimeDelta = TimeDelta::seconds(10);
/// An out-of-order update lands this far before the latest in-order one,
/// plus a few milliseconds that keep each one's time unique.
const LATE_BY: TimeDelta = TimeDelta::seconds(5);
/// Distinct millisecond offsets within `LATE_BY` (it is 5,000 ms long).
const LATE_SLOTS: u32 = 4_999;

/// Each provider's words, in the order a shipment usually goes through
/// them; a fulfillment's in-order updates walk this list round and round.
fn words(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Shopify => &[
            "label_purchased",
            "confirmed",
            "in_transit",
            "in_transit",
            "out_for_delivery",
            "attempted_delivery",
            "out_for_delivery",
            "delivered",
        ],
        Provider::Carriyo => &[
            "booked",
            "ready_to_ship",
            "shipped",
            "in_transit",
            "out_for_delivery",
            "failed_delivery_attempt",
            "out_for_delivery",
            "delivered",
        ],
        Provider::Redo => &[
            "pre_transit",
            "in_transit",
            "in_transit",
            "out_for_delivery",
            "delayed",
            "out_for_delivery",
            "delivered",
        ],
        Provider::Defined(name) => defined::words(name),
    }
}

/// Each provider's share of the deliveries, e.g. `shopify=70,carriyo=20,redo=10`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// Indexed like [`senders`].
    weights: Vec<u32>,
}

impl Mix {
    fn weight(&self, provider: Provider) -> u32 {
        self.weights[index_of(provider)]
    }

    fn total(&self) -> u32 {
        self.weights.iter().sum()
    }

    /// A provider drawn by weight.
    fn draw(&self, rng: &mut StdRng) -> Provider {
        let ticket = rng.gen_range(0..self.total());
        let mut upto = 0;
        let drawn = self.weights.iter().position(|weight| {
            upto += weight;
            ticket < upto
        });
        // A ticket below the total always falls on some provider.
        let senders = senders();
        senders[drawn.unwrap_or(senders.len() - 1)]
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let senders = senders();
        let mut weights = vec![0u32; senders.len()];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not provider=weight"))?;
            let name = name.trim();
            let provider = senders
                .iter()
                .copied()
                .find(|p| p.as_str() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = senders.iter().map(|p| p.as_str()).collect();
                    format!("'{name}' is not a provider ({})", names.join(", "))
                })?;
            weights[index_of(provider)] = weight.trim().parse().map_err(|_| {
                format!("the weight of {provider}, '{weight}', is not a whole number")
            })?;
        }
        if weights.iter().sum::<u32>() == 0 {
            return Err("no provider has a weight above 0".into());
        }
        Ok(Self { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = senders()
            .iter()
            .copied()
            .filter(|p| self.weight(*p) > 0)
            .map(|p| format!("{p}={}", self.weight(p)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Every provider the load can send as: the built-in ones, then the
/// data-defined senders it has wire shapes for.
fn senders() -> &'static [Provider] {
    static SENDERS: OnceLock<Vec<Provider>> = OnceLock::new();
    SENDERS.get_or_init(|| {
        Provider::ALL
            .into_iter()
            .chain(
                defined::SENDERS
                    .iter()
                    .filter_map(|name| DefinedName::intern(name).ok().map(Provider::Defined)),
            )
            .collect()
    })
}

fn index_of(provider: Provider) -> usize {
    senders()
        .iter()
        .position(|p| *p == provider)
        .unwrap_or_default()
}

/// One fulfillment the load updates; `number` counts within its provider
/// and names it on the wire.
#[derive(Debug, Clone)]
pub struct Fulfillment {
    pub provider: Provider,
    pub number: u32,
    /// Updates planned for it so far, in order or not.
    planned: u32,
    /// In-order updates planned so far; the latest is at `in_order - 1`.
    in_order: u32,
}

/// One unique update: the news one delivery (and its retries) carries.
#[derive(Debug, Clone)]
pub struct Update {
    /// Index into the plan's fulfillments.
    pub fulfillment: usize,
    pub word: &'static str,
    pub occurred_at: DateTime<Utc>,
    /// The provider's id for the delivery, the same on every retry.
    pub delivery_id: Uuid,
    /// Older than an update already planned for the same fulfillment.
    pub late: bool,
    /// Some delivery of it was answered 2xx.
    pub acknowledged: bool,
    /// The earliest intended send time of its deliveries, which `--e2e`
    /// counts its automation's latency from.
    pub sent_at: Option<Instant>,
}

/// What to send next: update `n`, for the first time or again.
#[derive(Debug, Clone, Copy)]
pub struct Next {
    pub n: usize,
    pub retry: bool,
}

/// Shapes of the traffic.
#[derive(Debug, Clone)]
pub struct Shape {
    pub mix: Mix,
    pub fulfillments: u32,
    /// Share of deliveries that resend an earlier one.
    pub duplicates: f64,
    /// Share of updates older than one already sent for their fulfillment.
    pub out_of_order: f64,
}

/// Decides every delivery and remembers every unique update.
pub struct Plan {
    rng: StdRng,
    shape: Shape,
    fulfillments: Vec<Fulfillment>,
    /// Indexes into `fulfillments`, per provider.
    by_provider: Vec<Vec<usize>>,
    updates: Vec<Update>,
}

impl Plan {
    /// `shape.fulfillments` split among the providers by the mix, at
    /// least one each for a provider that sends anything.
    pub fn new(shape: Shape, rng: StdRng) -> Self {
        let total = shape.mix.total() as u64;
        let mut fulfillments = Vec::new();
        let senders = senders();
        let mut by_provider: Vec<Vec<usize>> = vec![Vec::new(); senders.len()];
        for &provider in senders {
            let weight = shape.mix.weight(provider) as u64;
            if weight == 0 {
                continue;
            }
            let count = (u64::from(shape.fulfillments) * weight / total).max(1);
            for number in 0..count as u32 {
                by_provider[index_of(provider)].push(fulfillments.len());
                fulfillments.push(Fulfillment {
                    provider,
                    number,
                    planned: 0,
                    in_order: 0,
                });
            }
        }
        Self {
            rng,
            shape,
            fulfillments,
            by_provider,
            updates: Vec::new(),
        }
    }

    pub fn fulfillments(&self) -> &[Fulfillment] {
        &self.fulfillments
    }

    pub fn updates(&self) -> &[Update] {
        &self.updates
    }

    pub fn update(&self, n: usize) -> &Update {
        &self.updates[n]
    }

    pub fn fulfillment_of(&self, update: &Update) -> &Fulfillment {
        &self.fulfillments[update.fulfillment]
    }

    /// Marks update `n` as answered 2xx at least once.
    pub fn acknowledge(&mut self, n: usize) {
        self.updates[n].acknowledged = true;
    }

    /// Notes that a delivery of update `n` was meant to go at `at`.
    pub fn sent(&mut self, n: usize, at: Instant) {
        let sent_at = &mut self.updates[n].sent_at;
        *sent_at = Some(sent_at.map_or(at, |earlier| earlier.min(at)));
    }

    /// The next delivery: a retry of a recent one, or a new update.
    pub fn next(&mut self) -> Next {
        let sent = self.updates.len();
        if sent > 0 && self.rng.gen_bool(self.shape.duplicates) {
            let back = self.rng.gen_range(0..sent.min(RETRY_WINDOW));
            return Next {
                n: sent - 1 - back,
                retry: true,
            };
        }
        let provider = self.shape.mix.draw(&mut self.rng);
        let candidates = &self.by_provider[index_of(provider)];
        let fulfillment = candidates[self.rng.gen_range(0..candidates.len())];
        let late = self.fulfillments[fulfillment].in_order > 0
            && self.rng.gen_bool(self.shape.out_of_order);
        let update = self.new_update(fulfillment, late);
        self.updates.push(update);
        Next {
            n: sent,
            retry: false,
        }
    }

    fn new_update(&mut self, index: usize, late: bool) -> Update {
        let delivery_id = Uuid::from_u128(self.rng.gen());
        let f = &mut self.fulfillments[index];
        let list = words(f.provider);
        let base = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(FIRST_UPDATE_DAY);
        let (word, occurred_at) = if late {
            // Between the two latest in-order updates, so older than the
            // latest; the millisecond offset keeps it unique.
            let latest = base + STEP * (f.in_order - 1) as i32;
            let offset = TimeDelta::milliseconds(i64::from(f.planned % LATE_SLOTS + 1));
            let word = list[(f.in_order as usize).saturating_sub(2) % list.len()];
            (word, latest - LATE_BY + offset)
        } else {
            let at = base + STEP * f.in_order as i32;
            let word = list[f.in_order as usize % list.len()];
            f.in_order += 1;
            (word, at)
        };
        f.planned += 1;
        Update {
            fulfillment: index,
            word,
            occurred_at,
            delivery_id,
            late,
            acknowledged: false,
            sent_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn plan(duplicates: f64, out_of_order: f64, fulfillments: u32) -> Plan {
        Plan::new(
            Shape {
                mix: "shopify=70,carriyo=20,redo=10".parse().unwrap(),
                fulfillments,
                duplicates,
                out_of_order,
            },
            StdRng::seed_from_u64(7),
        )
    }

    #[test]
    fn a_mix_names_providers_and_whole_weights() {
        let mix: Mix = "shopify=70, redo=30".parse().unwrap();
        assert_eq!(mix.to_string(), "shopify=70,redo=30");
        assert!("shopify"
            .parse::<Mix>()
            .unwrap_err()
            .contains("provider=weight"));
        assert!("ups=1".parse::<Mix>().unwrap_err().contains("'ups'"));
        let defined: Mix = "easypost=5,aftership=1".parse().unwrap();
        assert_eq!(defined.to_string(), "aftership=1,easypost=5");
        assert!("redo=x".parse::<Mix>().unwrap_err().contains("redo"));
        assert!("redo=0".parse::<Mix>().is_err());
    }

    #[test]
    fn fulfillments_are_split_by_the_mix() {
        let plan = plan(0.0, 0.0, 100);
        let count = |p| {
            plan.fulfillments()
                .iter()
                .filter(|f| f.provider == p)
                .count()
        };
        assert_eq!(
            (
                count(Provider::Shopify),
                count(Provider::Carriyo),
                count(Provider::Redo)
            ),
            (70, 20, 10)
        );
    }

    #[test]
    fn retries_resend_earlier_updates_and_late_ones_are_older_than_sent_news() {
        let mut plan = plan(0.2, 0.3, 5);
        let mut retries = 0;
        let mut latest: std::collections::HashMap<usize, DateTime<Utc>> = Default::default();
        for _ in 0..5_000 {
            let before = plan.updates().len();
            let next = plan.next();
            let update = plan.update(next.n).clone();
            if next.retry {
                retries += 1;
                assert!(next.n < before && plan.updates().len() == before);
                continue;
            }
            assert_eq!((next.n, plan.updates().len()), (before, before + 1));
            let newest = latest
                .entry(update.fulfillment)
                .or_insert(update.occurred_at);
            if update.late {
                assert!(update.occurred_at < *newest, "{update:?}");
            } else {
                assert!(update.occurred_at >= *newest, "{update:?}");
                *newest = update.occurred_at;
            }
        }
        assert!((800..1200).contains(&retries), "{retries} retries of 5000");
        let late = plan.updates().iter().filter(|u| u.late).count();
        assert!(late * 10 > plan.updates().len() * 2, "{late} late");
    }

    #[test]
    fn no_two_updates_of_a_fulfillment_happen_at_the_same_time() {
        let mut plan = plan(0.0, 0.5, 3);
        for _ in 0..20_000 {
            plan.next();
        }
        let mut seen = std::collections::HashSet::new();
        for u in plan.updates() {
            assert!(seen.insert((u.fulfillment, u.occurred_at)), "{u:?}");
        }
    }
}
