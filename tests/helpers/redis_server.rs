//! Throwaway Redis for the tests: a redis-server of a test's own
//! ([`RedisServer`]), a three-node Cluster ([`RedisCluster`]), and the
//! ones a test binary starts once and shares.

use std::time::Duration;

use super::PATIENCE;

/// A throwaway three-node Redis Cluster started once for this test binary,
/// which dies with it.
pub fn shared_cluster() -> &'static RedisCluster {
    static SHARED: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| RedisCluster::start(false))
}

/// A Redis Cluster of three primaries, each a [`RedisServer`] of the
/// test's own owning a third of the hash slots.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes (`durable` as for [`RedisServer::start`]), gives
    /// each its slots, joins them and waits until every node sees the
    /// whole Cluster up.
    pub fn start(durable: bool) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_cluster_node(durable))
            .collect();
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (first, last)) in nodes.iter().zip(ranges) {
            node.query::<()>(
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(first)
                    .arg(last),
            );
        }
        for other in &nodes[1..] {
            nodes[0].query::<()>(
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(other.port),
            );
        }
        let cluster = Self { nodes };
        cluster.wait_until_up();
        cluster
    }

    /// Waits until every node sees all three nodes and every slot served
    /// (at start, and after a node's restart); panics after [`PATIENCE`].
    pub fn wait_until_up(&self) {
        let deadline = std::time::Instant::now() + PATIENCE;
        for node in &self.nodes {
            loop {
                let info: String = node.query(redis::cmd("CLUSTER").arg("INFO"));
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the test Redis Cluster did not come up: node {} says {info}",
                    node.url()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Every node's URL, comma-separated, as `storage.redis_url` takes
    /// them for a Cluster.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `REDIS_URL` when set; else a throwaway redis-server started once for
/// this test binary, which dies with it.
pub fn shared_redis_url() -> String {
    static SHARED: std::sync::OnceLock<(String, Option<RedisServer>)> = std::sync::OnceLock::new();
    let (url, _server) = SHARED.get_or_init(|| match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start(false);
            (server.url(), Some(server))
        }
    });
    url.clone()
}

/// A redis-server of the test's own on a free loopback port. It dies with
/// the test process, files and all (a shell watchdog sees to it even when
/// the test aborts); a test may stop and restart it to play an outage.
pub struct RedisServer {
    port: u16,
    dir: std::path::PathBuf,
    /// Every write fsynced to an append-only file, so a restart loses
    /// nothing; otherwise nothing is saved at all.
    durable: bool,
    /// A node of a Redis Cluster, with its cluster state in `dir`.
    cluster: bool,
    watchdog: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one; panics, saying how to get one, when redis-server is
    /// not installed.
    pub fn start(durable: bool) -> Self {
        Self::start_with(durable, false)
    }

    /// Starts a node for a [`RedisCluster`], owning no slots yet.
    pub fn start_cluster_node(durable: bool) -> Self {
        Self::start_with(durable, true)
    }

    fn start_with(durable: bool, cluster: bool) -> Self {
        if let Err(e) = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
        {
            panic!(
                "the Redis tests need redis-server ({e}): install it (apt-get install redis-server) \
                 or set REDIS_URL to a Redis the tests may write to"
            );
        }
        let port = restartable_port();
        let dir =
            std::env::temp_dir().join(format!("shipgate-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = Self {
            port,
            dir,
            durable,
            cluster,
            watchdog: None,
        };
        server.launch();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server as an operator would (SHUTDOWN: a durable one
    /// flushes its file first) and waits until it is gone.
    pub fn stop(&mut self) {
        self.shutdown("SHUTDOWN");
    }

    /// Starts the server again on the same port, with the same files.
    pub fn restart(&mut self) {
        self.launch();
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log")).expect("a redis log file");
        let mut args = vec![
            "--port".to_owned(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--save".into(),
            String::new(),
        ];
        if self.cluster {
            args.extend(["--cluster-enabled".into(), "yes".into()]);
            args.extend(["--cluster-config-file".into(), "nodes.conf".into()]);
        }
        if self.durable {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
        } else {
            args.extend(["--appendonly", "no"].map(String::from));
        }
        let watchdog = std::process::Command::new("sh")
            .arg("-c")
            .arg(
                r#"redis-server "$@" & server=$!
while kill -0 "$WATCHED" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.2; done
if ! kill -0 "$WATCHED" 2>/dev/null; then
  kill "$server" 2>/dev/null; wait "$server"; rm -rf "$DIR"
fi"#,
            )
            .arg("redis-watchdog")
            .args(&args)
            .env("WATCHED", std::process::id().to_string())
            .env("DIR", &self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("a redis log file"))
            .stderr(log)
            .spawn()
            .expect("sh starts redis-server");
        self.watchdog = Some(watchdog);
        let deadline = std::time::Instant::now() + PATIENCE;
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on port {} did not start; see {}",
                self.port,
                self.dir.join("redis.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server's process (SIGSTOP) as a stalled host would:
    /// connections stay open and what clients send waits, unanswered, in
    /// the kernel until the returned guard resumes it (SIGCONT), also
    /// when the test panics.
    pub fn pause(&self) -> Paused {
        let info: String = self.query(redis::cmd("INFO").arg("server"));
        let pid = info
            .lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("redis-server {} did not say its process id", self.url()));
        assert!(send_signal(pid, "STOP"), "kill -STOP {pid} failed");
        Paused { pid }
    }

    fn shutdown(&mut self, command: &str) {
        let _ = self.command(command);
        if let Some(mut watchdog) = self.watchdog.take() {
            let deadline = std::time::Instant::now() + PATIENCE;
            while matches!(watchdog.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Runs `command` and answers its reply; panics when the server does
    /// not answer, naming the server.
    fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let answer = redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .and_then(|mut connection| command.query(&mut connection));
        answer.unwrap_or_else(|e| panic!("redis-server {}: {e}", self.url()))
    }

    /// Sends one inline command; the first line of the answer, if any.
    fn command(&self, line: &str) -> Option<String> {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).ok()?;
        Some(answer.trim_end().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.shutdown("SHUTDOWN NOSAVE");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A paused redis-server; dropping this resumes it.
pub struct Paused {
    pid: u32,
}

impl Drop for Paused {
    fn drop(&mut self) {
        // Not asserted: this may run while a failed test unwinds.
        send_signal(self.pid, "CONT");
    }
}

/// Sends signal `name` to `pid`; whether it was sent.
fn send_signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|status| status.success())
}

/// A free loopback port that a server can bind again after a restart:
/// below the kernel's ephemeral range (32768 and up), where an outgoing
/// connection may take a port while its server is down, and so is its
/// Cluster bus port (the port + 10000).
pub fn restartable_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(12_000..22_000);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair between 12000 and 32000 on loopback");
}
