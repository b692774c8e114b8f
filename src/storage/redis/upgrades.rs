//! What this backend still does for data that older versions left in
//! Redis, in one place, each with when it can go. All three date from
//! before the log served the recent-events feed (when acknowledging
//! deleted an entry and the claim also pushed each event to a list).
//!
//! - The old recent-events lists (`P:{P:p<n>}:recent`) are deleted at
//!   start ([`forget_recent_list`]). Can go once every deployment has
//!   started a version with the log-as-feed at least once.
//! - Entries deleted while pending come back from the log without fields
//!   and are skipped (`log::log_entries`). Can go with the lists: the
//!   first worker of a newer version reclaims and acknowledges them.
//! - `lua/backlog.lua` answers the stream's length while Redis cannot tell
//!   the group's lag of a log that entries were deleted from. Can go once
//!   such deletions are trimmed away, a feed's worth of events after the
//!   upgrade.

use redis::RedisError;

use super::connection::Connection;
use super::keys::Keys;

/// Deletes the recent-events list older versions kept beside `partition`'s
/// log.
pub(super) async fn forget_recent_list(
    connection: &mut Connection,
    keys: &Keys,
    partition: u32,
) -> Result<(), RedisError> {
    redis::cmd("DEL")
        .arg(keys.superseded_recent_list(partition))
        .query_async::<()>(connection)
        .await
}
