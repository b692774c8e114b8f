//! What came in, on Redis: per-partition stats and unmapped words merged
//! on read, and the recent-events feed read newest first from the logs.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use async_trait::async_trait;
use redis::Value;

use super::connection::Connection;
use super::log::log_entries;
use super::{corrupt, RedisStorage};
use crate::canonical::{CanonicalEvent, Provider};
use crate::storage::{add, sorted_words};
use crate::storage::{EventFilter, Feed, Outcome, Stats, StorageError, UnmappedWord};

/// Recent events read per partition and round trip when listing them.
const RECENT_PAGE: usize = 64;

impl RedisStorage {
    /// Fetches the next page (newest first) of every cursor that ran dry,
    /// in one round trip.
    async fn recent_pages(
        &self,
        connection: &mut Connection,
        cursors: &mut [RecentCursor],
    ) -> Result<(), StorageError> {
        let wanted: Vec<usize> = (0..cursors.len())
            .filter(|&i| cursors[i].needs_page())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        // A log holds more than the feed between trims; readers stop at it.
        let cap = self.recent_per_partition;
        let page_size = |taken: usize| RECENT_PAGE.min(cap - taken);
        let mut pipe = redis::pipe();
        for &i in &wanted {
            let cursor = &cursors[i];
            let end = cursor
                .last
                .as_ref()
                .map_or_else(|| "+".to_owned(), |id| format!("({id}"));
            pipe.cmd("XREVRANGE")
                .arg(self.keys.log(cursor.partition))
                .arg(end)
                .arg("-")
                .arg("COUNT")
                .arg(page_size(cursor.taken));
        }
        let pages: Vec<Value> = pipe.query_async(connection).await?;
        for (i, page) in wanted.into_iter().zip(pages) {
            let cursor = &mut cursors[i];
            let wanted = page_size(cursor.taken);
            // XREVRANGE returns no deleted entries, so none is skipped.
            let entries = log_entries(cursor.partition, &page)?;
            cursor.taken += entries.len();
            cursor.exhausted = entries.len() < wanted || cursor.taken >= cap;
            cursor.last = entries.last().map(|e| e.position.entry.clone());
            cursor.buffer.extend(entries.into_iter().map(|e| e.event));
        }
        Ok(())
    }
}

/// A position in one partition's log while merging the logs, newest first,
/// into the recent-events feed.
struct RecentCursor {
    partition: u32,
    /// The oldest entry read so far.
    last: Option<String>,
    /// Entries read so far: no more than the feed's share are shown.
    taken: usize,
    buffer: VecDeque<CanonicalEvent>,
    exhausted: bool,
}

impl RecentCursor {
    fn needs_page(&self) -> bool {
        self.buffer.is_empty() && !self.exhausted
    }
}

/// A stats field `provider:outcome` back into its parts.
fn stats_field(field: &str) -> Result<(Provider, Outcome), StorageError> {
    let (provider, outcome) = field
        .split_once(':')
        .ok_or_else(|| corrupt(format!("stats field '{field}'")))?;
    outcome_of(field, provider, outcome)
}

fn outcome_of(
    field: &str,
    provider: &str,
    outcome: &str,
) -> Result<(Provider, Outcome), StorageError> {
    let provider = Provider::from_stored(provider).map_err(corrupt)?;
    let outcome = Outcome::ALL
        .into_iter()
        .find(|o| o.as_str() == outcome)
        .ok_or_else(|| corrupt(format!("stats field '{field}' names no outcome")))?;
    Ok((provider, outcome))
}

/// A by-store field or member, `[store, provider, outcome or word]`.
fn store_entry(field: &str) -> Result<(String, String, String), StorageError> {
    serde_json::from_str(field).map_err(|e| corrupt(format!("by-store entry '{field}': {e}")))
}

#[async_trait]
impl Feed for RedisStorage {
    async fn count_refusals(&self, counts: &Stats) -> Result<(), StorageError> {
        if counts.values().all(|outcomes| outcomes.is_empty()) {
            return Ok(());
        }
        let key = self.keys.refused_stats();
        let mut pipe = redis::pipe();
        for (provider, outcomes) in counts {
            for (outcome, n) in outcomes {
                pipe.hincr(&key, format!("{provider}:{}", outcome.as_str()), *n)
                    .ignore();
            }
        }
        let mut connection = self.connection()?;
        pipe.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    async fn stats(&self) -> Result<Stats, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        pipe.hgetall(self.keys.refused_stats());
        for p in 0..self.partitions {
            pipe.hgetall(self.keys.stats(p));
        }
        let hashes: Vec<HashMap<String, u64>> = pipe.query_async(&mut connection).await?;
        let mut stats = Stats::new();
        for (field, n) in hashes.iter().flatten() {
            let (provider, outcome) = stats_field(field)?;
            *stats
                .entry(provider)
                .or_default()
                .entry(outcome)
                .or_default() += n;
        }
        Ok(stats)
    }

    async fn store_stats(&self, stores: &BTreeSet<String>) -> Result<Stats, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.hgetall(self.keys.store_stats(p));
        }
        let hashes: Vec<HashMap<String, u64>> = pipe.query_async(&mut connection).await?;
        let mut stats = Stats::new();
        for (field, n) in hashes.iter().flatten() {
            let (store, provider, outcome) = store_entry(field)?;
            if stores.contains(&store) {
                let (provider, outcome) = outcome_of(field, &provider, &outcome)?;
                add(&mut stats, provider, outcome, *n);
            }
        }
        Ok(stats)
    }

    async fn store_unmapped_words(
        &self,
        stores: &BTreeSet<String>,
    ) -> Result<Vec<UnmappedWord>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.zrange_withscores(self.keys.store_unmapped(p), 0, -1);
        }
        let sets: Vec<Vec<(String, u64)>> = pipe.query_async(&mut connection).await?;
        let mut counts: BTreeMap<(Provider, String), u64> = BTreeMap::new();
        for (member, n) in sets.into_iter().flatten() {
            let (store, provider, word) = store_entry(&member)?;
            if stores.contains(&store) {
                let provider = Provider::from_stored(&provider).map_err(corrupt)?;
                *counts.entry((provider, word)).or_default() += n;
            }
        }
        Ok(sorted_words(counts))
    }

    async fn unmapped_words(&self) -> Result<Vec<UnmappedWord>, StorageError> {
        let mut connection = self.connection()?;
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.zrange_withscores(self.keys.unmapped(p), 0, -1);
        }
        let sets: Vec<Vec<(String, u64)>> = pipe.query_async(&mut connection).await?;
        let mut counts: BTreeMap<(Provider, String), u64> = BTreeMap::new();
        for (member, n) in sets.into_iter().flatten() {
            let (provider, word) = member
                .split_once(':')
                .ok_or_else(|| corrupt(format!("unmapped word entry '{member}'")))?;
            let provider = Provider::from_stored(provider).map_err(corrupt)?;
            *counts.entry((provider, word.to_owned())).or_default() += n;
        }
        Ok(sorted_words(counts))
    }

    async fn recent_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<CanonicalEvent>, StorageError> {
        let mut connection = self.connection()?;
        let mut cursors: Vec<RecentCursor> = (0..self.partitions)
            .map(|partition| RecentCursor {
                partition,
                last: None,
                taken: 0,
                buffer: VecDeque::new(),
                exhausted: false,
            })
            .collect();
        let mut events = Vec::new();
        // Merges the partitions' newest-first logs, a page at a time; a
        // page starts after the last entry read, so none shows twice.
        while events.len() < filter.limit {
            self.recent_pages(&mut connection, &mut cursors).await?;
            let newest = cursors
                .iter_mut()
                .filter(|c| !c.buffer.is_empty())
                .max_by_key(|c| c.buffer.front().map(|e| e.id));
            let Some(event) = newest.and_then(|c| c.buffer.pop_front()) else {
                break;
            };
            let wanted = filter.before.is_none_or(|before| event.id < before)
                && filter.provider.is_none_or(|p| event.provider == p)
                && filter.store.as_deref().is_none_or(|s| event.key.store == s)
                && filter
                    .scope
                    .as_ref()
                    .is_none_or(|s| s.contains(&event.key.store));
            if wanted {
                events.push(event);
            }
        }
        Ok(events)
    }
}
