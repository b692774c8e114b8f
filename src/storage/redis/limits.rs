//! The per-store rate limits on Redis: one bucket key per store and
//! provider, stepped by `lua/take_token.lua` on Redis's clock, so every
//! gateway process on the Redis (or Cluster) shares each bucket.

use std::time::Duration;

use async_trait::async_trait;

use super::RedisStorage;
use crate::canonical::Provider;
use crate::config::RateLimit;
use crate::storage::{Admission, RateLimits, StorageError};

#[async_trait]
impl RateLimits for RedisStorage {
    async fn take_token(
        &self,
        store: &str,
        provider: Provider,
        limit: &RateLimit,
    ) -> Result<Admission, StorageError> {
        let mut connection = self.connection()?;
        let interval = u64::try_from(limit.interval.as_micros()).unwrap_or(u64::MAX);
        let wait: u64 = self
            .scripts
            .take_token
            .key(self.keys.bucket(store, provider.as_str()))
            .arg(interval)
            .arg(limit.burst)
            .invoke_async(&mut connection)
            .await?;
        Ok(match wait {
            0 => Admission::Admitted,
            micros => Admission::Limited {
                retry_after: Duration::from_micros(micros),
            },
        })
    }
}
