//! The load generator against a real gateway: `shipgate serve` as a
//! process on the memory backend, `shipgate-load` as a process against it,
//! both the binaries this crate builds. Short, bounded runs: these check
//! that the generator's traffic is accepted and its verdict is right, not
//! how fast anything is (that is the README's benchmark).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use helpers::{Answer, Receiver};
use serde_json::Value;
use tokio::process::{Child, Command};

// Here the automation subscriber's stand-in, as a server that is not
// shipgate, a free port and the shared Redis.
#[path = "helpers/mod.rs"]
mod helpers;

const ADMIN_TOKEN: &str = "dev-only-admin-token";

/// A `shipgate serve` process on the memory backend, with the dev-only
/// credentials of config/default.toml that the generator defaults to.
struct Gateway {
    child: Child,
    port: u16,
}

impl Gateway {
    async fn start_on(port: u16) -> Self {
        Self::start_with(port, None, &[]).await
    }

    /// One on `port`, with a `config` file over the defaults and `env`.
    async fn start_with(port: u16, config: Option<&Path>, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shipgate"));
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHIPGATE__")) {
            command.env_remove(name);
        }
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("serve")
            .env_remove("RUST_LOG")
            .env("SHIPGATE__SERVER__PORT", port.to_string())
            .env("SHIPGATE__TELEMETRY__FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the shipgate binary starts");
        let gateway = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while gateway.get("/health").await.is_none() {
            assert!(
                Instant::now() < deadline,
                "the gateway never answered /health"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gateway
    }

    async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("a running gateway has a pid")
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())?;
        response.json().await.ok()
    }

    async fn accepted(&self, provider: &str) -> u64 {
        let stats = self.get("/api/v1/stats").await.unwrap_or_default();
        stats["providers"][provider]["accepted"]
            .as_u64()
            .unwrap_or(0)
    }

    async fn duplicates(&self, provider: &str) -> u64 {
        let stats = self.get("/api/v1/stats").await.unwrap_or_default();
        stats["providers"][provider]["duplicate"]
            .as_u64()
            .unwrap_or(0)
    }

    /// SIGKILL, and wait for the exit.
    async fn kill(mut self) {
        self.child.kill().await.expect("the gateway can be killed");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `shipgate-load` against `gateway`, sampling its memory.
fn generator(gateway: &Gateway, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shipgate-load"));
    command
        .arg("--target")
        .arg(gateway.url())
        .arg("--gateway-pid")
        .arg(gateway.pid().to_string())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs the generator to the end; its exit code and report.
async fn finish(command: &mut Command) -> (i32, String) {
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the generator finishes within its bounds")
        .expect("the generator runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr);
    // Shown when a test fails.
    println!("{report}{errors}");
    (
        output.status.code().unwrap_or(-1),
        format!("{report}{errors}"),
    )
}

/// The number just before `label` in the report, e.g. 12 for
/// `number_before(r, " missing")` on "... 12 missing, ...".
fn number_before(report: &str, label: &str) -> u64 {
    let at = report
        .find(label)
        .unwrap_or_else(|| panic!("no '{label}' in the report:\n{report}"));
    let digits: String = report[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before '{label}' in the report:\n{report}"))
}

#[tokio::test]
async fn a_run_with_retries_and_late_news_applies_every_acknowledged_update_once() {
    let gateway = Gateway::start().await;
    let (code, report) = finish(&mut generator(
        &gateway,
        &[
            "--rate",
            "400",
            "--requests",
            "800",
            "--duplicates",
            "0.1",
            "--out-of-order",
            "0.1",
            "--fulfillments",
            "40",
            "--seed",
            "1",
        ],
    ))
    .await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(number_before(&report, " sent ("), 800, "{report}");
    let retries = number_before(&report, " of them retries");
    let late = number_before(&report, " out-of-order updates sent");
    assert!(retries > 0 && late > 0, "{report}");
    let acknowledged = number_before(&report, " unique updates 2xx'd");
    assert_eq!(acknowledged, 800 - retries, "{report}");
    assert_eq!(
        number_before(&report, " applied once"),
        acknowledged,
        "{report}"
    );
    assert_eq!(number_before(&report, " missing"), 0, "{report}");
    assert_eq!(number_before(&report, " doubled"), 0, "{report}");
    assert!(report.contains("resident memory max"), "{report}");
    // The gateway saw the retries as the duplicates they are.
    let duplicates = gateway.duplicates("shopify").await
        + gateway.duplicates("carriyo").await
        + gateway.duplicates("redo").await;
    assert!(duplicates > 0, "the gateway saw no duplicate");
    gateway.kill().await;
}

#[tokio::test]
async fn updates_lost_after_their_2xx_are_reported_missing_and_fail_the_run() {
    // The memory backend forgets everything when its process dies (it
    // says so at start-up): a gateway killed mid-run and restarted on the
    // same port has lost every update it acknowledged before.
    let gateway = Gateway::start().await;
    let port = gateway.port;
    let mut command = generator(
        &gateway,
        &[
            "--rate",
            "200",
            "--duration",
            "6s",
            "--fulfillments",
            "20",
            "--mix",
            "shopify=1",
            "--timeout",
            "2s",
        ],
    );
    let run = tokio::spawn(async move { finish(&mut command).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.accepted("shopify").await < 100 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.kill().await;
    let restarted = Gateway::start_on(port).await;
    let (code, report) = run.await.expect("the generator's task");
    assert_eq!(code, 1, "{report}");
    // At least 100 were accepted before the kill; a few of those may not
    // have had their answer back yet.
    assert!(number_before(&report, " missing") >= 90, "{report}");
    assert_eq!(number_before(&report, " doubled"), 0, "{report}");
    assert!(report.contains("missing: message 'load "), "{report}");
    assert!(report.contains("result     FAIL"), "{report}");
    restarted.kill().await;
}

/// `shipgate-load --send-only` against `receiver`, a stand-in for a
/// server that is not shipgate (the bench's floor).
async fn send_only(receiver: &Receiver, requests: &str) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shipgate-load"));
    command
        .arg("--target")
        .arg(format!("http://127.0.0.1:{}", receiver.port()))
        .args(["--send-only", "--mix", "shopify=1"])
        .args(["--rate", "500", "--requests", requests])
        .args(["--duplicates", "0.1", "--fulfillments", "20"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    finish(&mut command).await
}

/// The paths `receiver` was sent, each once however often it came.
fn paths(receiver: &Receiver) -> Vec<String> {
    let paths: std::collections::BTreeSet<String> =
        receiver.received().into_iter().map(|r| r.path).collect();
    paths.into_iter().collect()
}

#[tokio::test]
async fn send_only_measures_a_server_without_the_ops_api_and_touches_nothing_else() {
    let receiver = Receiver::start().await;
    let (code, report) = send_only(&receiver, "300").await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(number_before(&report, " sent ("), 300, "{report}");
    assert_eq!(number_before(&report, " 2xx,"), 300, "{report}");
    assert!(report.contains("latency    p50 "), "{report}");
    assert!(!report.contains("verify"), "{report}");
    assert_eq!(receiver.received().len(), 300);
    assert_eq!(paths(&receiver), ["/webhooks/shopify"]);
}

#[tokio::test]
async fn send_only_fails_the_run_when_a_request_is_not_answered_2xx() {
    let receiver = Receiver::start().await;
    receiver.answer_usually(Answer::Status(503)).await;
    let (code, report) = send_only(&receiver, "50").await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(number_before(&report, " non-2xx"), 50, "{report}");
    assert_eq!(receiver.received().len(), 50);
    assert_eq!(paths(&receiver), ["/webhooks/shopify"]);
}

/// The config `shipgate-load --e2e-config` prints for a receiver on
/// `port` (with `secret`, else its default), in a file of its own.
async fn e2e_config(port: u16, secret: Option<&str>) -> PathBuf {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shipgate-load"));
    command
        .arg("--e2e-config")
        .arg("--receiver")
        .arg(format!("127.0.0.1:{port}"));
    if let Some(secret) = secret {
        command.arg("--e2e-secret").arg(secret);
    }
    let output = command.output().await.expect("the generator runs");
    assert!(output.status.success(), "{output:?}");
    let path = std::env::temp_dir().join(format!(
        "shipgate-load-e2e-{}-{port}.toml",
        std::process::id()
    ));
    std::fs::write(&path, &output.stdout).expect("a temporary file");
    path
}

/// A gateway whose automations go to a `shipgate-load --e2e` receiver on
/// the port that comes with it, signed with `secret` (else the default).
async fn e2e_gateway(env: &[(&str, String)], secret: Option<&str>) -> (Gateway, u16) {
    let receiver = helpers::redis_server::restartable_port();
    let config = e2e_config(receiver, secret).await;
    let gateway = Gateway::start_with(free_port(), Some(&config), env).await;
    // Read at start-up, which /health answering says is over.
    let _ = std::fs::remove_file(&config);
    (gateway, receiver)
}

/// The report's `e2e` lines, on: the numbers after them are theirs.
fn e2e_part(report: &str) -> &str {
    let at = report
        .find("\ne2e ")
        .unwrap_or_else(|| panic!("no e2e lines in the report:\n{report}"));
    &report[at..]
}

/// The receiver's flag for `port`.
fn receiver_flag(port: u16) -> String {
    format!("--receiver=127.0.0.1:{port}")
}

/// An `--e2e` run with retries and late news against a gateway with
/// `env`: every automation its applies fired arrives once, signed right.
async fn every_automation_arrives_once(env: &[(&str, String)]) {
    let (gateway, receiver) = e2e_gateway(env, None).await;
    let (code, report) = finish(&mut generator(
        &gateway,
        &[
            "--e2e",
            &receiver_flag(receiver),
            "--rate",
            "400",
            "--requests",
            "600",
            "--duplicates",
            "0.1",
            "--out-of-order",
            "0.1",
            "--fulfillments",
            "30",
            "--seed",
            "2",
        ],
    ))
    .await;
    assert_eq!(code, 0, "{report}");
    let e2e = e2e_part(&report);
    let due = number_before(e2e, " automations due");
    // Every fulfillment's first update changes its status, at least.
    assert!(due >= 30, "{report}");
    assert_eq!(number_before(e2e, " arrived ("), due, "{report}");
    for fault in [
        " missing, ",
        " doubled, ",
        " unexpected",
        " bad signatures",
        " malformed",
    ] {
        assert_eq!(number_before(e2e, fault), 0, "{fault}: {report}");
    }
    // The Redo setup's automations are due too, but no load update sent them.
    assert!(number_before(e2e, " timed)") * 10 >= due * 8, "{report}");
    assert!(report.contains("e2e result PASS"), "{report}");
    gateway.kill().await;
}

#[tokio::test]
async fn e2e_finds_every_automation_once_on_the_memory_backend() {
    every_automation_arrives_once(&[]).await;
}

#[tokio::test]
async fn e2e_finds_every_automation_once_on_redis() {
    let prefix = format!("load-e2e-{}", std::process::id());
    every_automation_arrives_once(&[
        ("SHIPGATE__STORAGE__BACKEND", "redis".into()),
        (
            "SHIPGATE__STORAGE__REDIS_URL",
            helpers::redis_server::shared_redis_url(),
        ),
        ("SHIPGATE__STORAGE__KEY_PREFIX", prefix),
    ])
    .await;
}

#[tokio::test]
async fn automations_signed_with_another_secret_are_counted_and_fail_the_run() {
    let other = "whsec_YW5vdGhlci1rZXktb2YtdGhpcnR5LXR3by1ieXRlcyE=";
    let (gateway, receiver) = e2e_gateway(&[], Some(other)).await;
    let (code, report) = finish(&mut generator(
        &gateway,
        &[
            "--e2e",
            &receiver_flag(receiver),
            "--rate",
            "200",
            "--requests",
            "60",
            "--fulfillments",
            "10",
            "--mix",
            "shopify=1",
            "--drain-timeout",
            "2s",
        ],
    ))
    .await;
    assert_eq!(code, 1, "{report}");
    let e2e = e2e_part(&report);
    let due = number_before(e2e, " automations due");
    assert!(due >= 10, "{report}");
    assert!(number_before(e2e, " bad signatures") > 0, "{report}");
    assert_eq!(number_before(e2e, " missing, "), due, "{report}");
    assert!(
        report.contains("result     PASS"),
        "the load itself passed: {report}"
    );
    assert!(
        report.contains("webhook-signature is not signed with --e2e-secret"),
        "{report}"
    );
    assert!(report.contains("e2e result FAIL"), "{report}");
    gateway.kill().await;
}

#[tokio::test]
async fn e2e_refuses_to_start_against_a_gateway_without_the_rule() {
    let gateway = Gateway::start().await;
    let port = helpers::redis_server::restartable_port();
    let (code, report) = finish(&mut generator(
        &gateway,
        &["--e2e", &receiver_flag(port), "--requests", "10"],
    ))
    .await;
    assert_eq!(code, 2, "{report}");
    assert!(
        report.contains(&format!(
            "no automation rule sending to http://127.0.0.1:{port}/e2e"
        )),
        "{report}"
    );
    assert!(report.contains("--e2e-config"), "{report}");
    assert!(
        !report.contains("requests   "),
        "nothing was sent: {report}"
    );
    gateway.kill().await;
}

#[tokio::test]
async fn the_data_defined_senders_mix_in_and_every_update_is_applied_once() {
    let gateway = Gateway::start().await;
    let (code, report) = finish(&mut generator(
        &gateway,
        &[
            "--rate",
            "400",
            "--requests",
            "300",
            "--mix",
            "aftership=50,easypost=40,shopify=10",
            "--duplicates",
            "0.1",
            "--out-of-order",
            "0.1",
            "--fulfillments",
            "30",
            "--seed",
            "2",
        ],
    ))
    .await;
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("mix shopify=10,aftership=50,easypost=40"),
        "{report}"
    );
    let retries = number_before(&report, " of them retries");
    let acknowledged = number_before(&report, " unique updates 2xx'd");
    assert_eq!(acknowledged, 300 - retries, "{report}");
    assert_eq!(
        number_before(&report, " applied once"),
        acknowledged,
        "{report}"
    );
    assert_eq!(number_before(&report, " missing"), 0, "{report}");
    // Signed as each sender signs, every delivery was taken as theirs.
    let (aftership, easypost) = (
        gateway.accepted("aftership").await,
        gateway.accepted("easypost").await,
    );
    assert!(aftership > 0 && easypost > 0, "{aftership} {easypost}");
    let shopify = gateway.accepted("shopify").await;
    assert_eq!(aftership + easypost + shopify, acknowledged, "{report}");
    gateway.kill().await;
}
