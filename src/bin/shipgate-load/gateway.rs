//! What the load generator reads back from the gateway: its ops API (the
//! event log's backlog, a fulfillment's history) and, when given its pid,
//! its resident memory. A watcher samples backlog and memory during the
//! run so that "the backlog stays bounded" and "memory stays under X" can
//! be shown, not assumed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::wire::Refs;

/// The gateway's ops API, read with an admin token.
#[derive(Clone)]
pub struct ReadApi {
    pub client: reqwest::Client,
    pub base_url: String,
    pub admin_token: String,
    /// The store's config name, as the ops API's paths take it.
    pub store: String,
}

#[derive(Deserialize)]
struct Backlog {
    total: u64,
}

impl ReadApi {
    /// A GET of an ops path, with the admin token.
    pub async fn get(&self, path: &str) -> Result<reqwest::Response, String> {
        let url = format!("{}{path}", self.base_url);
        self.client
            .get(&url)
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    }

    /// A GET of an ops path that must answer 2xx with JSON of type `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let response = self.get(path).await?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path} answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
    }

    /// Entries in the event log not yet applied and acknowledged.
    pub async fn backlog(&self) -> Result<u64, String> {
        self.get_json::<Backlog>("/api/v1/backlog")
            .await
            .map(|b| b.total)
    }

    /// A fulfillment in the ops API's shape; `None` when the gateway does
    /// not know it.
    pub async fn fulfillment(&self, refs: &Refs) -> Result<Option<Value>, String> {
        let path = format!(
            "/api/v1/stores/{}/orders/{}/fulfillments/{}",
            self.store, refs.order, refs.fulfillment
        );
        let response = self.get(&path).await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response
            .text()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path} answered {status}: {text}"));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("GET {path}: {e}"))
    }
}

/// A process's resident memory in KiB (`VmRSS` of /proc/<pid>/status).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The largest values seen while sampling.
#[derive(Default)]
pub struct Peaks {
    backlog: AtomicU64,
    resident_kib: AtomicU64,
    samples: AtomicU64,
    failed: AtomicU64,
}

impl Peaks {
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// The gateway's largest resident memory seen, in KiB.
    pub fn resident_kib(&self) -> u64 {
        self.resident_kib.load(Ordering::Relaxed)
    }

    /// Backlog samples taken, and how many of them failed.
    pub fn samples(&self) -> (u64, u64) {
        (
            self.samples.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Samples the backlog (and the memory of `pid`) every `every` until
/// `stop`.
pub async fn watch(
    api: ReadApi,
    pid: Option<u32>,
    every: Duration,
    peaks: Arc<Peaks>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Some(kib) = pid.and_then(resident_kib) {
            peaks.resident_kib.fetch_max(kib, Ordering::Relaxed);
        }
        peaks.samples.fetch_add(1, Ordering::Relaxed);
        match api.backlog().await {
            Ok(total) => {
                peaks.backlog.fetch_max(total, Ordering::Relaxed);
            }
            Err(_) => {
                peaks.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_resident_memory() {
        let kib = resident_kib(std::process::id()).unwrap();
        assert!(kib > 0);
        assert_eq!(resident_kib(u32::MAX), None);
    }
}
