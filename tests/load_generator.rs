//! The load generator against a real gateway: `shipgate serve` as a
//! process on the memory backend, `shipgate-load` as a process against it,
//! both the binaries this crate builds. Short, bounded runs: these check
//! that the generator's traffic is accepted and its verdict is right, not
//! how fast anything is (that is the README's benchmark).

use std::process::Stdio;
use std::time::{Duration, Instant};

use helpers::{Answer, Receiver};
use serde_json::Value;
use tokio::process::{Child, Command};

// Here only the automation subscriber's stand-in, as a server that is not
// shipgate.
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
        let mut command = Command::new(env!("CARGO_BIN_EXE_shipgate"));
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHIPGATE__")) {
            command.env_remove(name);
        }
        let child = command
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port).await
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
