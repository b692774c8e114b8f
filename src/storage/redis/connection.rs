//! One connection type for a single Redis and for a Redis Cluster, so the
//! backend's code is written once for both.
//!
//! On a Cluster every script and every command touches keys of one hash
//! slot (the key layout sees to it), but a pipeline may span slots: a
//! worker's round reads all its partitions in one. redis-rs routes a
//! Cluster pipeline as a unit, by its first key, so here such a pipeline
//! is split into one pipeline per slot, sent concurrently, and its answers
//! put back in the order of its commands. Writes for different slots then
//! land in no set order: see [`Connection::runs_slots_apart`].

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Arg, Client, Cmd, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline, ProtocolVersion,
    RedisFuture, RedisResult, Value,
};

/// A dead Redis must turn into a fast 503, never a hung request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// On a Cluster, a command redirected (MOVED, ASK) or sent while a node
/// fails over is retried this often, this fast, before its caller answers
/// 503.
const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

/// How the backend reaches Redis, known before Redis answers.
#[derive(Clone)]
pub(super) enum Endpoint {
    Single(Client),
    Cluster(ClusterClient),
}

impl Endpoint {
    /// Reads `storage.redis_url`: one URL, or for a Cluster one or more of
    /// its nodes' URLs, comma-separated. Answers with `host:port` of each
    /// node for messages (the URL may carry a password).
    pub(super) fn parse(url: &str, cluster: bool) -> RedisResult<(Self, String)> {
        if cluster {
            let nodes = url
                .split(',')
                .map(|url| node(url.trim()))
                .collect::<RedisResult<Vec<_>>>()?;
            let address = nodes
                .iter()
                .map(|node| node.addr.to_string())
                .collect::<Vec<_>>()
                .join(",");
            Ok((Self::cluster(nodes)?, address))
        } else {
            let node = node(url)?;
            let address = node.addr.to_string();
            Ok((Self::Single(Client::open(node)?), address))
        }
    }

    /// Opens a connection with short timeouts and no retries of its own
    /// (beyond a Cluster's redirections): its caller answers 503 at once
    /// and the next command tries again.
    pub(super) async fn connect(&self) -> RedisResult<Connection> {
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT)
                    .set_number_of_retries(0);
                let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
                Ok(Connection::Single(manager))
            }
            Self::Cluster(client) => Ok(Connection::Cluster(client.get_async_connection().await?)),
        }
    }

    /// A Cluster found through `seeds`, reached with this module's timeouts.
    fn cluster(seeds: Vec<ConnectionInfo>) -> RedisResult<Self> {
        let client = ClusterClient::builder(seeds)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            .use_protocol(ProtocolVersion::RESP2)
            .build()?;
        Ok(Self::Cluster(client))
    }
}

/// One node's URL, read for RESP2: replies are read in its shapes,
/// whatever the URL asks for.
fn node(url: &str) -> RedisResult<ConnectionInfo> {
    let mut info = url.into_connection_info()?;
    info.redis.protocol = ProtocolVersion::RESP2;
    Ok(info)
}

/// A multiplexed connection to a single Redis or to a Cluster: cheap to
/// clone, and every clone shares it.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Whether a pipeline's commands for different hash slots may run in
    /// any order between them (on a Cluster they go to their nodes at
    /// once). Within a slot, and on a single Redis, they run in order.
    pub(super) fn runs_slots_apart(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => Box::pin(per_slot(c, pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Sends `pipeline` to a Cluster as one pipeline per hash slot, all at
/// once, and answers in the pipeline's order.
async fn per_slot(
    cluster: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    if offset != 0 || count != pipeline.len() {
        // A MULTI/EXEC pipeline: atomic only within one slot, so it is
        // sent as it is and Redis refuses it if it spans slots.
        return cluster.req_packed_commands(pipeline, offset, count).await;
    }
    let slots: Vec<Option<u16>> = pipeline
        .cmd_iter()
        .map(|cmd| routing_key(cmd).map(slot))
        .collect();
    if slots.windows(2).all(|pair| pair[0] == pair[1]) {
        return cluster.req_packed_commands(pipeline, offset, count).await;
    }
    let mut groups: BTreeMap<Option<u16>, (Vec<usize>, Pipeline)> = BTreeMap::new();
    for (i, (cmd, slot)) in pipeline.cmd_iter().zip(slots).enumerate() {
        let (indexes, part) = groups
            .entry(slot)
            .or_insert_with(|| (Vec::new(), redis::pipe()));
        indexes.push(i);
        part.add_command(cmd.clone());
    }
    let answers = join_all(groups.values().map(|(_, part)| {
        let mut cluster = cluster.clone();
        async move { cluster.req_packed_commands(part, 0, part.len()).await }
    }))
    .await;
    let mut values = vec![Value::Nil; count];
    for ((indexes, _), answer) in groups.values().zip(answers) {
        let answer = answer?;
        if answer.len() != indexes.len() {
            return Err((
                ErrorKind::ResponseError,
                "a Cluster node answered a different number of commands than it was sent",
            )
                .into());
        }
        for (&i, value) in indexes.iter().zip(answer) {
            values[i] = value;
        }
    }
    Ok(values)
}

/// The key a Cluster routes `cmd` by, read as Redis reads the command's
/// arguments; None for a command without keys. Covers the commands this
/// backend sends: scripts name their keys after the key count, stream
/// reads after STREAMS, everything else first.
fn routing_key(cmd: &Cmd) -> Option<&[u8]> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            Arg::Simple(bytes) => Some(bytes),
            Arg::Cursor => None,
        })
        .collect();
    let name = args.first()?;
    let is = |what: &str| name.eq_ignore_ascii_case(what.as_bytes());
    if is("EVALSHA") || is("EVAL") {
        let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
        return if keys > 0 { args.get(3).copied() } else { None };
    }
    if is("XREADGROUP") || is("XREAD") {
        let streams = args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
        return args.get(streams + 1).copied();
    }
    args.get(1).copied()
}

/// The hash slot of `key`: CRC16 of its hash tag (the text between the
/// first `{` and the next `}`, when not empty), else of the whole key.
fn slot(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_cluster_url_lists_every_seed_node_and_no_password() {
        let (endpoint, address) = Endpoint::parse(
            "redis://:hunter2@127.0.0.1:7000, redis://:hunter2@127.0.0.1:7001",
            true,
        )
        .expect("two seed URLs");
        assert!(matches!(endpoint, Endpoint::Cluster(_)));
        assert_eq!(address, "127.0.0.1:7000,127.0.0.1:7001");
        let (endpoint, address) =
            Endpoint::parse("redis://:hunter2@127.0.0.1:6379", false).expect("one URL");
        assert!(matches!(endpoint, Endpoint::Single(_)));
        assert_eq!(address, "127.0.0.1:6379");
        assert!(Endpoint::parse("redis://127.0.0.1:7000,", true).is_err());
        assert!(Endpoint::parse("http://127.0.0.1:7000", true).is_err());
    }

    #[test]
    fn slots_follow_the_cluster_specification() {
        // The examples of the Redis Cluster specification.
        assert_eq!(slot(b"foo"), 12182);
        // CRC16-XMODEM's check value.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
    }

    #[test]
    fn routing_keys_are_read_where_each_command_names_them() {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg("abc").arg(2).arg("k1").arg("k2").arg("v");
        assert_eq!(routing_key(&evalsha), Some(&b"k1"[..]));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0).arg("v");
        assert_eq!(routing_key(&keyless), None);
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(5)
            .arg("STREAMS")
            .arg("log")
            .arg(">");
        assert_eq!(routing_key(&read), Some(&b"log"[..]));
        let mut get = redis::cmd("HMGET");
        get.arg("hash").arg("v");
        assert_eq!(routing_key(&get), Some(&b"hash"[..]));
        assert_eq!(routing_key(&redis::cmd("PING")), None);
    }
}
