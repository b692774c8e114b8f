//! An automation subscriber for the tests to deliver to: a `wiremock`
//! server that answers as a test scripts it (statuses in turn, delays,
//! `Retry-After`, a fulfillment that always fails) and keeps every request
//! it got with the moment it came, which wiremock's own log lacks and the
//! retry tests measure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::{any, body_partial_json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::PATIENCE;

/// How a [`Receiver`] answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// A status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// 200, after this long: a slow receiver, or one that never answers
    /// in time.
    After(Duration),
}

impl Answer {
    fn response(self) -> ResponseTemplate {
        match self {
            Answer::Status(code) => ResponseTemplate::new(code).set_body_string("receiver says so"),
            Answer::RetryAfter(code, seconds) => {
                ResponseTemplate::new(code).insert_header("Retry-After", seconds.to_string())
            }
            Answer::After(delay) => ResponseTemplate::new(200).set_delay(delay),
        }
    }
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub json: Value,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn trigger(&self) -> &str {
        self.json["trigger"].as_str().unwrap_or("")
    }

    pub fn fulfillment(&self) -> &str {
        self.json["fulfillment"]["id"].as_str().unwrap_or("")
    }
}

/// The words of what a receiver got, in order.
pub fn triggers(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.trigger().to_owned()).collect()
}

/// Answers with `answer`, first noting the request in `log`: every mock of
/// a [`Receiver`] responds through one, so each request is noted once.
struct Noted {
    answer: Answer,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Respond for Noted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let headers = request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        self.log.lock().unwrap().push(Received {
            path: request.url.path().to_owned(),
            headers,
            json: serde_json::from_str(&body).unwrap_or(Value::Null),
            body,
            at: Instant::now(),
        });
        self.answer.response()
    }
}

// wiremock tries mocks by priority, lowest first, then in the order they
// were mounted; a mock limited to one answer drops out once it is used.
const FAILING: u8 = 1;
const SCRIPTED: u8 = 2;
/// Each `answer_usually` mounts below the one before, so the latest wins.
const FIRST_USUAL: u8 = 200;
const DEFAULT: u8 = 255;

/// An automation subscriber on 127.0.0.1 that records what it gets and
/// answers as a test tells it: 200 unless told otherwise.
pub struct Receiver {
    server: MockServer,
    log: Arc<Mutex<Vec<Received>>>,
    usual: AtomicU8,
}

impl Receiver {
    /// Starts one on a port it can come back to (see
    /// [`restartable_port`](super::redis_server::restartable_port)).
    pub async fn start() -> Self {
        Self::start_on(super::redis_server::restartable_port()).await
    }

    /// Starts one on `port`, as a subscriber comes back where it was.
    pub async fn start_on(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("a receiver port");
        let server = MockServer::builder()
            .listener(listener)
            .disable_request_recording()
            .start()
            .await;
        let receiver = Self {
            server,
            log: Arc::default(),
            usual: AtomicU8::new(FIRST_USUAL),
        };
        receiver
            .answering(any(), Answer::Status(200))
            .with_priority(DEFAULT)
            .mount(&receiver.server)
            .await;
        receiver
    }

    /// A mock answering requests that `matcher` matches with `answer`.
    fn answering(&self, matcher: impl wiremock::Match + 'static, answer: Answer) -> Mock {
        let log = self.log.clone();
        Mock::given(matcher).respond_with(Noted { answer, log })
    }

    pub fn port(&self) -> u16 {
        self.server.address().port()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port())
    }

    /// Answers the next requests with `answers`, one each, in order; then
    /// as usual.
    pub async fn answer_next(&self, answers: &[Answer]) {
        for &answer in answers {
            self.answering(any(), answer)
                .up_to_n_times(1)
                .with_priority(SCRIPTED)
                .mount(&self.server)
                .await;
        }
    }

    /// Answers with `answer` from now on, when nothing else is scripted.
    pub async fn answer_usually(&self, answer: Answer) {
        let priority = self.usual.fetch_sub(1, Ordering::Relaxed);
        self.answering(any(), answer)
            .with_priority(priority)
            .mount(&self.server)
            .await;
    }

    /// Answers every delivery of `fulfillment` with 500.
    pub async fn fail_fulfillment(&self, fulfillment: &str) {
        let of_it = body_partial_json(serde_json::json!({ "fulfillment": { "id": fulfillment } }));
        self.answering(of_it, Answer::Status(500))
            .with_priority(FAILING)
            .mount(&self.server)
            .await;
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `n` requests came; panics with what came after
    /// [`PATIENCE`].
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests, got {}: {:?}",
                received.len(),
                received.iter().map(Received::trigger).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server and waits until its port refuses connections, so
    /// that a test may count on a delivery finding nobody there.
    pub async fn stop(self) {
        let port = self.port();
        drop(self.server);
        let deadline = Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "the receiver never stopped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
