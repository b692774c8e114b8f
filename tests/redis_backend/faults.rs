//! Fault tests. Each sends a planned load of signed Shopify deliveries,
//! counts what was answered, and checks through the ops API that every
//! update answered 2xx was applied exactly once and in its fulfillment's
//! order. Gateways run as real `shipgate` processes so they can be killed;
//! each test has a redis-server (or a three-node Redis Cluster) of its own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::helpers::redis_server::{RedisCluster, RedisServer};
use crate::helpers::*;

const ORDER: &str = "450789469";
/// Short, so takeovers happen within the test's patience.
const LEASE_TTL: Duration = Duration::from_secs(2);
/// No loop in these tests runs longer than this.
const LOAD_PATIENCE: Duration = Duration::from_secs(120);

/// One planned update: its message (unique, to find it in the history)
/// and the delivery that carries it, resent as is on retry.
struct Update {
    message: String,
    delivery: ShopifyDelivery<'static>,
}

/// `per` updates for each of `fulfillments` fulfillments, in the order
/// they happened: a label, in-transit scans, then delivered.
fn plan(fulfillments: u64, per: u64) -> Vec<(String, Vec<Update>)> {
    (1..=fulfillments)
        .map(|f| {
            let updates = (0..per)
                .map(|k| {
                    let status = match k {
                        0 => "confirmed",
                        k if k == per - 1 => "delivered",
                        _ => "in_transit",
                    };
                    let message = format!("update {k} of fulfillment {f}");
                    let mut body = sample("shopify", "fulfillment_event_create");
                    body["id"] = json!(f * 1_000 + k);
                    body["fulfillment_id"] = json!(f);
                    body["status"] = json!(status);
                    body["message"] = json!(message);
                    body["happened_at"] =
                        json!(format!("2026-11-21T{:02}:{:02}:00Z", 8 + k / 60, k % 60));
                    Update {
                        message,
                        delivery: ShopifyDelivery::new("fulfillment_events/create", &body),
                    }
                })
                .collect();
            (f.to_string(), updates)
        })
        .collect()
}

fn total(plan: &[(String, Vec<Update>)]) -> usize {
    plan.iter().map(|(_, updates)| updates.len()).sum()
}

/// Checks that each fulfillment's history holds every planned message
/// exactly once, in order, none stale, and that it ended delivered: what
/// one process applying the log in order produces.
async fn assert_applied_once_in_order(app: &TestApp, plan: &[(String, Vec<Update>)]) {
    for (fulfillment, updates) in plan {
        let f = app
            .fulfillment("acme", ORDER, fulfillment)
            .await
            .unwrap_or_else(|| panic!("fulfillment {fulfillment} was never applied"));
        let history = f["trackingHistory"].as_array().cloned().unwrap_or_default();
        let messages: Vec<&str> = history
            .iter()
            .map(|e| e["message"].as_str().unwrap_or(""))
            .collect();
        let expected: Vec<&str> = updates.iter().map(|u| u.message.as_str()).collect();
        assert_eq!(messages, expected, "history of fulfillment {fulfillment}");
        assert!(
            history.iter().all(|e| e["stale"] == false),
            "fulfillment {fulfillment} applied out of order: {history:?}"
        );
        assert_eq!(f["status"], "delivered", "fulfillment {fulfillment}");
    }
}

/// What the gateways answered during a load.
#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    unavailable: AtomicUsize,
    unreachable: AtomicUsize,
    /// Set while a test holds storage down.
    outage: AtomicBool,
    /// 2xx answers to requests sent while `outage` was set.
    accepted_in_outage: AtomicUsize,
}

impl Tally {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    fn unavailable(&self) -> usize {
        self.unavailable.load(Ordering::Relaxed)
    }

    fn unreachable(&self) -> usize {
        self.unreachable.load(Ordering::Relaxed)
    }

    fn accepted_in_outage(&self) -> usize {
        self.accepted_in_outage.load(Ordering::SeqCst)
    }

    /// From now on, a request sent is sent during an outage.
    fn outage_begins(&self) {
        self.outage.store(true, Ordering::SeqCst);
    }

    fn outage_ends(&self) {
        self.outage.store(false, Ordering::SeqCst);
    }
}

/// Sends the plan: `concurrency` fulfillments at a time, each one's
/// updates in order, pausing `pace` after each. Update k goes to gateway
/// k mod n of the n that `targets` lists at the time. An update is resent
/// unchanged, as a provider retries, until a gateway answers 2xx, for at
/// most [`LOAD_PATIENCE`] from its own first attempt (a loaded machine may
/// start the last lanes late); any answer but 2xx or 503 with Retry-After
/// fails the test.
async fn send_load(
    plan: &[(String, Vec<Update>)],
    targets: watch::Receiver<Vec<String>>,
    concurrency: usize,
    pace: Duration,
    tally: &Tally,
) {
    let client = reqwest::Client::new();
    stream::iter(plan)
        .for_each_concurrent(concurrency, |(_, updates)| {
            let (client, targets) = (&client, &targets);
            async move {
                for (k, update) in updates.iter().enumerate() {
                    deliver(client, targets, k, update, tally).await;
                    tokio::time::sleep(pace).await;
                }
            }
        })
        .await;
}

async fn deliver(
    client: &reqwest::Client,
    targets: &watch::Receiver<Vec<String>>,
    k: usize,
    update: &Update,
    tally: &Tally,
) {
    let deadline = Instant::now() + LOAD_PATIENCE;
    let mut last = String::from("nothing");
    loop {
        assert!(
            Instant::now() < deadline,
            "{} never got a 2xx within {LOAD_PATIENCE:?}; the last answer: {last}",
            update.message
        );
        let address = {
            let targets = targets.borrow();
            targets[k % targets.len()].clone()
        };
        let in_outage = tally.outage.load(Ordering::SeqCst);
        let sent = shopify_request(client, &address, &update.delivery)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                if in_outage {
                    tally.accepted_in_outage.fetch_add(1, Ordering::SeqCst);
                }
                tally.accepted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(response) => {
                assert_eq!(response.status(), 503, "{}", update.message);
                assert!(
                    response.headers().contains_key("retry-after"),
                    "a 503 without Retry-After"
                );
                tally.unavailable.fetch_add(1, Ordering::Relaxed);
                last = "503".into();
            }
            Err(e) => {
                tally.unreachable.fetch_add(1, Ordering::Relaxed);
                last = e.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `done` holds, checking every 20 ms; panics after `limit`.
async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// The environment of gateways sharing one deployment on the Redis (or
/// Cluster) that `store` names ([`redis_env`], [`cluster_env`]): one key
/// prefix, leases of `lease_ttl`.
pub(crate) fn deployment_env(
    store: Vec<(String, String)>,
    lease_ttl: Duration,
) -> Vec<(String, String)> {
    let mut env = test_env();
    env.extend(store);
    env.push((
        "SHIPGATE__WORKER__LEASE_TTL".into(),
        format!("{}ms", lease_ttl.as_millis()),
    ));
    env
}

/// A `shipgate serve` process. Its `app` talks to it like any test app;
/// `app.stop()` sends SIGTERM and waits for the exit.
pub(crate) struct Gateway {
    pub(crate) app: TestApp,
    pid: u32,
    log: PathBuf,
}

impl Gateway {
    /// Waits until `/ready` answers 200 again after an outage.
    async fn wait_until_ready_again(&self) {
        self.wait_for_ready(200, "never ready again").await;
    }

    /// Waits until `/ready` answers `status`; panics saying `otherwise`
    /// after [`LOAD_PATIENCE`]. A probe sees an outage only once the
    /// gateway's connection does, which on a busy machine takes a while.
    async fn wait_for_ready(&self, status: u16, otherwise: &str) {
        let deadline = Instant::now() + LOAD_PATIENCE;
        while self.status_of("/ready").await != Some(status) {
            assert!(Instant::now() < deadline, "{otherwise}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts one and waits until it is ready.
    async fn start(env: &[(String, String)]) -> Self {
        let gateway = Self::spawn(env).await;
        gateway.wait_for("/ready").await;
        gateway
    }

    /// Starts one serving `config` layered over the defaults, and waits
    /// until it is ready.
    pub(crate) async fn start_with_config(env: &[(String, String)], config: &Path) -> Self {
        let gateway = Self::spawn_with_config(env, Some(config)).await;
        gateway.wait_for("/ready").await;
        gateway
    }

    /// Starts one and waits until it answers at all.
    async fn spawn(env: &[(String, String)]) -> Self {
        Self::spawn_with_config(env, None).await
    }

    async fn spawn_with_config(env: &[(String, String)], config: Option<&Path>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::env::temp_dir().join(format!(
            "shipgate-gateway-{}-{port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).expect("a gateway log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_shipgate"));
        command.arg("serve").env_remove("RUST_LOG");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHIPGATE__")) {
            command.env_remove(name);
        }
        let mut child = command
            .envs(env.iter().cloned())
            .env("SHIPGATE__SERVER__PORT", port.to_string())
            .env("SHIPGATE__TELEMETRY__FORMAT", "json")
            .env("SHIPGATE__TELEMETRY__FILTER", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone().expect("a gateway log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("the shipgate binary starts");
        let pid = child.id().expect("a running gateway has a pid");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => signal(pid, "TERM"),
                    _ = child.wait() => {}
                }
                child.wait().await.map(drop)
            }
        });
        let gateway = Self {
            app: TestApp {
                address: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::new(),
                shutdown,
                server,
            },
            pid,
            log,
        };
        gateway.wait_for("/health").await;
        gateway
    }

    /// Waits until `path` answers 200.
    async fn wait_for(&self, path: &str) {
        let deadline = Instant::now() + LOAD_PATIENCE;
        while self.status_of(path).await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "{path} never answered 200; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no graceful anything.
    pub(crate) async fn kill(self) {
        signal(self.pid, "KILL");
        let _ = self.app.server.await;
        let _ = std::fs::remove_file(&self.log);
    }

    pub(crate) async fn stop(self) {
        self.app.stop().await;
        let _ = std::fs::remove_file(&self.log);
    }

    async fn status_of(&self, path: &str) -> Option<u16> {
        let response = self.app.client.get(self.app.url(path)).send().await.ok()?;
        Some(response.status().as_u16())
    }

    /// The partitions the worker last said it holds (its log, in JSON).
    fn partitions_held(&self) -> Vec<u32> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["message"] == "partitions held")
            .and_then(|line| {
                let list = line["partitions"].as_str()?.trim_matches(['[', ']']);
                list.split(", ")
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_mid_load_then_restarted_applies_every_2xx_exactly_once() {
    let redis = RedisServer::start(false);
    let env = deployment_env(redis_env(&redis.url()), LEASE_TTL);
    let plan = plan(40, 8);
    let first = Gateway::start(&env).await;
    let (targets, receiver) = watch::channel(vec![first.app.address.clone()]);
    let tally = Tally::default();
    let load = send_load(&plan, receiver, 40, Duration::from_millis(5), &tally);
    let chaos = async {
        wait_until("40% of the load answered", LOAD_PATIENCE, || {
            tally.accepted() * 5 >= total(&plan) * 2
        })
        .await;
        first.kill().await;
        let killed_at = tally.accepted();
        let second = Gateway::start(&env).await;
        targets.send_replace(vec![second.app.address.clone()]);
        (second, killed_at)
    };
    let ((), (second, killed_at)) = tokio::join!(load, chaos);
    assert!(
        killed_at < total(&plan),
        "the kill came after the load ended"
    );
    assert_eq!(tally.accepted(), total(&plan));
    second.app.wait_until_applied().await;
    assert_applied_once_in_order(&second.app, &plan).await;
    let stats = second.app.stats("shopify").await;
    assert_eq!(stats["accepted"], total(&plan), "{stats}");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_share_the_work_and_the_survivor_takes_over_in_order() {
    let redis = RedisServer::start(false);
    two_gateways_share_and_one_takes_over(&deployment_env(redis_env(&redis.url()), LEASE_TTL))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_a_redis_cluster_share_the_work_and_the_survivor_takes_over_in_order() {
    let cluster = RedisCluster::start(false);
    two_gateways_share_and_one_takes_over(&deployment_env(cluster_env(&cluster.url()), LEASE_TTL))
        .await;
}

/// Two gateways of one deployment (`env`) ingest and apply a load
/// together until one is SIGKILLed; the other takes over its partitions
/// within the lease time, and every 2xx'd update is applied once, in its
/// fulfillment's order.
async fn two_gateways_share_and_one_takes_over(env: &[(String, String)]) {
    let env = env.to_vec();
    let plan = plan(40, 10);
    let doomed = Gateway::start(&env).await;
    let survivor = Gateway::start(&env).await;
    wait_until("both gateways hold partitions", LOAD_PATIENCE, || {
        !doomed.partitions_held().is_empty() && !survivor.partitions_held().is_empty()
    })
    .await;
    let (targets, receiver) = watch::channel(vec![
        doomed.app.address.clone(),
        survivor.app.address.clone(),
    ]);
    let tally = Tally::default();
    let load = send_load(&plan, receiver, 40, Duration::from_millis(5), &tally);
    let chaos = async {
        wait_until("a third of the load answered", LOAD_PATIENCE, || {
            tally.accepted() * 3 >= total(&plan)
        })
        .await;
        doomed.kill().await;
        targets.send_replace(vec![survivor.app.address.clone()]);
        wait_until("the survivor holds every partition", LOAD_PATIENCE, || {
            survivor.partitions_held().len() == 16
        })
        .await
    };
    let ((), takeover) = tokio::join!(load, chaos);
    // Leases expire LEASE_TTL after the last renewal and the survivor
    // looks every LEASE_TTL / 3: about one lease, with room for a busy
    // machine, not the several a lost lease would take.
    assert!(takeover <= 3 * LEASE_TTL, "took over after {takeover:?}");
    assert_eq!(tally.accepted(), total(&plan));
    survivor.app.wait_until_applied().await;
    assert_applied_once_in_order(&survivor.app, &plan).await;
    let stats = survivor.app.stats("shopify").await;
    assert_eq!(stats["accepted"], total(&plan), "{stats}");
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_stopped_with_sigterm_hands_its_partitions_over_at_once() {
    let redis = RedisServer::start(false);
    // Long leases: a takeover well within one shows they were released.
    let lease_ttl = Duration::from_secs(18);
    let env = deployment_env(redis_env(&redis.url()), lease_ttl);
    let leaving = Gateway::start(&env).await;
    let staying = Gateway::start(&env).await;
    wait_until("both gateways hold partitions", LOAD_PATIENCE, || {
        !leaving.partitions_held().is_empty() && !staying.partitions_held().is_empty()
    })
    .await;
    let plan = plan(10, 3);
    let (_targets, receiver) = watch::channel(vec![leaving.app.address.clone()]);
    let tally = Tally::default();
    send_load(&plan, receiver, 10, Duration::ZERO, &tally).await;
    let stopping = Instant::now();
    leaving.stop().await;
    let stopped = stopping.elapsed();
    let takeover = wait_until(
        "the staying gateway holds every partition",
        LOAD_PATIENCE,
        || staying.partitions_held().len() == 16,
    )
    .await;
    // It looks every lease_ttl / 3 = 6 s, so a release is taken within
    // that; an expiry would come at least 2/3 of a lease, 12 s, after the
    // last renewal. The bound between leaves room for a busy machine.
    assert!(
        stopped + takeover < Duration::from_secs(11),
        "stopped in {stopped:?}, taken over {takeover:?} later"
    );
    staying.app.wait_until_applied().await;
    assert_applied_once_in_order(&staying.app, &plan).await;
    staying.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_started_while_redis_is_down_waits_for_it_without_exiting() {
    let mut redis = RedisServer::start(false);
    let env = deployment_env(redis_env(&redis.url()), LEASE_TTL);
    redis.stop();
    let gateway = Gateway::spawn(&env).await;
    assert_eq!(gateway.status_of("/ready").await, Some(503));
    let plan = plan(1, 2);
    let early = gateway.app.post_shopify(&plan[0].1[0].delivery).await;
    assert_eq!(early.status(), 503);
    assert!(early.headers().contains_key("retry-after"));
    redis.restart();
    gateway.wait_for("/ready").await;
    let (_targets, receiver) = watch::channel(vec![gateway.app.address.clone()]);
    let tally = Tally::default();
    send_load(&plan, receiver, 1, Duration::ZERO, &tally).await;
    gateway.app.wait_until_applied().await;
    assert_applied_once_in_order(&gateway.app, &plan).await;
    gateway.stop().await;
}

/// After a load that ran through a storage outage ending when
/// `accepted_before_restart` updates were in: requests saw the outage,
/// none went unanswered, the load outlasted it, and every update was
/// accepted at last and applied once, in order.
async fn assert_the_outage_lost_nothing(
    gateway: &Gateway,
    plan: &[(String, Vec<Update>)],
    tally: &Tally,
    accepted_before_restart: usize,
) {
    assert!(tally.unavailable() > 0, "no request saw the outage");
    assert_eq!(tally.unreachable(), 0, "the gateway must keep answering");
    assert!(
        accepted_before_restart < total(plan),
        "the load ended before storage came back"
    );
    assert_eq!(tally.accepted(), total(plan));
    gateway.app.wait_until_applied().await;
    assert_applied_once_in_order(&gateway.app, plan).await;
    let stats = gateway.app.stats("shopify").await;
    assert_eq!(stats["accepted"], total(plan), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_answers_503_loses_no_2xx_and_recovers_by_itself() {
    let mut redis = RedisServer::start(true);
    let env = deployment_env(redis_env(&redis.url()), LEASE_TTL);
    let plan = plan(40, 30);
    let gateway = Gateway::start(&env).await;
    let (_targets, receiver) = watch::channel(vec![gateway.app.address.clone()]);
    let tally = Tally::default();
    let load = send_load(&plan, receiver, 8, Duration::from_millis(40), &tally);
    let outage = async {
        wait_until("load under way", LOAD_PATIENCE, || tally.accepted() >= 100).await;
        redis.stop();
        // Requests sent from here on find Redis down (those already on
        // their way may still land).
        tally.outage_begins();
        gateway
            .wait_for_ready(503, "/ready never said 503 while Redis was down")
            .await;
        wait_until("the outage answered with 503s", LOAD_PATIENCE, || {
            tally.unavailable() >= 50
        })
        .await;
        let during = tally.accepted();
        tally.outage_ends();
        redis.restart();
        gateway.wait_until_ready_again().await;
        during
    };
    let ((), accepted_before_restart) = tokio::join!(load, outage);
    assert_eq!(tally.accepted_in_outage(), 0, "a 2xx while Redis was down");
    assert_the_outage_lost_nothing(&gateway, &plan, &tally, accepted_before_restart).await;
    let ingest_errors = Scrape::of(&gateway.app)
        .await
        .value("shipgate_storage_errors_total", &[("operation", "ingest")])
        as u64;
    assert_eq!(
        ingest_errors,
        tally.unavailable() as u64,
        "one storage error per 503"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_cluster_node_outage_answers_503_loses_no_2xx_and_recovers_by_itself() {
    let mut cluster = RedisCluster::start(true);
    let env = deployment_env(cluster_env(&cluster.url()), LEASE_TTL);
    let plan = plan(40, 30);
    let gateway = Gateway::start(&env).await;
    let (_targets, receiver) = watch::channel(vec![gateway.app.address.clone()]);
    let tally = Tally::default();
    let load = send_load(&plan, receiver, 8, Duration::from_millis(40), &tally);
    let outage = async {
        wait_until("load under way", LOAD_PATIENCE, || tally.accepted() >= 100).await;
        // The partitions whose slots it serves are out; the others are not
        // (well within cluster-node-timeout, so the Cluster stays up).
        cluster.nodes[1].stop();
        gateway
            .wait_for_ready(503, "/ready never said 503 while a Cluster node was down")
            .await;
        wait_until("the outage answered with 503s", LOAD_PATIENCE, || {
            tally.unavailable() >= 50
        })
        .await;
        let during = tally.accepted();
        cluster.nodes[1].restart();
        cluster.wait_until_up();
        gateway.wait_until_ready_again().await;
        during
    };
    let ((), accepted_before_restart) = tokio::join!(load, outage);
    assert_the_outage_lost_nothing(&gateway, &plan, &tally, accepted_before_restart).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_storm_applies_each_delivery_once() {
    let app = spawn_app(Backend::Redis).await;
    let plan = plan(100, 10);
    let clients: Vec<reqwest::Client> = (0..8).map(|_| reqwest::Client::new()).collect();
    let copies = plan
        .iter()
        .flat_map(|(_, updates)| updates)
        .flat_map(|update| std::iter::repeat_n(update, 5));
    let resent = AtomicU64::new(0);
    let statuses: Vec<u16> = stream::iter(copies.enumerate())
        .map(|(i, update)| {
            let (client, address) = (&clients[i % clients.len()], &app.address);
            let resent = &resent;
            async move {
                // A request that got no answer (a loaded machine may close
                // a pooled connection as it is reused) is sent again, as a
                // provider would: one more copy of the storm.
                for _ in 0..5 {
                    match shopify_request(client, address, &update.delivery)
                        .send()
                        .await
                    {
                        Ok(response) => return response.status().as_u16(),
                        Err(_) => resent.fetch_add(1, Ordering::Relaxed),
                    };
                }
                panic!("{} got no answer in five tries", update.message)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(statuses.len(), 5_000);
    assert!(statuses.iter().all(|s| *s == 200), "not all 200");
    app.wait_until_applied().await;
    let stats = app.stats("shopify").await;
    // A resent request may or may not have been counted the first time.
    let resent = resent.load(Ordering::Relaxed);
    let duplicates = stats["duplicate"].as_u64().unwrap_or(0);
    assert_eq!(stats["accepted"].as_u64(), Some(1_000), "{stats}");
    assert!(
        (4_000..=4_000 + resent).contains(&duplicates),
        "{duplicates} duplicates for 4,000 copies and {resent} resent: {stats}"
    );
    for (fulfillment, updates) in &plan {
        let f = app
            .fulfillment("acme", ORDER, fulfillment)
            .await
            .expect("applied");
        let messages: Vec<&str> = f["trackingHistory"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| e["message"].as_str().unwrap_or(""))
                    .collect()
            })
            .unwrap_or_default();
        let expected: Vec<&str> = updates.iter().map(|u| u.message.as_str()).collect();
        assert_eq!(messages, expected, "history of fulfillment {fulfillment}");
    }
    app.stop().await;
}
