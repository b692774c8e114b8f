//! End to end (`--e2e`): the load's updates go through the gateway and come
//! back out as automations, to a receiver of the load generator's own. Each
//! automation's Standard Webhooks signature is checked and each is matched
//! to the update whose apply fired it, so the report says how long updates
//! took from their intended send time to their automation's arrival (an
//! open loop: a queue anywhere on the way shows) and whether every
//! automation the gateway's applies fired arrived exactly once.
//!
//! Which automations are due is read from the gateway's histories, not
//! predicted from the plan: two updates of one fulfillment sent a moment
//! apart may be applied in either order, and the one applied second is
//! then stale and fires nothing. A history marks its stale entries; among
//! the others, a status entry fires when it changes the status (they were
//! applied in the order of their times, since an older one would have been
//! stale), and every event entry fires.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt};
use hdrhistogram::Histogram;
use httparse::Status;
use serde::Deserialize;
use serde_json::Value;
use shipgate::canonical::{AutomationEvent, ShipmentStatus};
use shipgate::domain::{SigningSecret, Trigger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::drive::Load;
use crate::gateway::ReadApi;
use crate::wire::Refs;

/// The path the receiver takes automations on.
pub const PATH: &str = "/e2e";
/// The dev-only signing secret `--e2e-config` and `--e2e` agree on by
/// default (32 bytes, base64).
pub const DEV_SECRET: &str = "whsec_ZGV2LW9ubHktc2hpcGdhdGUtbG9hZC1lMmUta2V5ISE=";
/// The rule's name in the printed config.
const RULE: &str = "shipgate-load-e2e";
/// The events the rule listens for: those an apply can fire. A stall is
/// fired by silence, never by anything the load sends, so it is left out.
const EVENTS: [AutomationEvent; 2] = [AutomationEvent::Delayed, AutomationEvent::ArrivingEarly];
/// Most header fields a request to the receiver may carry.
const MAX_HEADERS: usize = 32;
/// Most bytes of a request head.
const MAX_HEAD: usize = 16 << 10;
/// Most bytes of an automation's body: it carries the whole fulfillment,
/// history and all, but not without end.
const MAX_BODY: usize = 16 << 20;
/// Room made in a connection's buffer before each read.
const READ_CHUNK: usize = 16 << 10;
/// Fulfillments read at once for their histories.
const READS_IN_FLIGHT: usize = 8;
/// Examples of each kind of fault the report names.
const EXAMPLES: usize = 5;
/// How often the wait for due automations looks.
const POLL: Duration = Duration::from_millis(20);

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Whether the printed rule fires on `trigger`: every status, and the
/// events of [`EVENTS`].
fn listens(trigger: Trigger) -> bool {
    match trigger {
        Trigger::Status(_) => true,
        Trigger::Event(event) => EVENTS.contains(&event),
    }
}

/// A gateway config (TOML, layered over the defaults with `shipgate serve
/// --config`) whose one rule fires on every status and event the load can
/// cause, signed with `secret`, to the receiver at `receiver`, which is on
/// a private address the gateway refuses unless told otherwise.
pub fn config(receiver: SocketAddr, secret: &str) -> Result<String, String> {
    SigningSecret::parse(secret).map_err(|e| format!("--e2e-secret: {e}"))?;
    let words: Vec<String> = ShipmentStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(EVENTS.iter().map(|e| e.as_str()))
        .map(|word| format!("\"{word}\""))
        .collect();
    Ok(format!(
        "# For `shipgate-load --e2e --receiver {receiver}`: every status change and\n\
         # event goes, signed, to the load generator's receiver.\n\
         [delivery]\n\
         # The receiver listens on a private (loopback) address.\n\
         allow_private_targets = true\n\
         \n\
         [[automations]]\n\
         name = \"{RULE}\"\n\
         on = [{words}]\n\
         directions = [\"forward\", \"return\"]\n\
         url = \"http://{receiver}{PATH}\"\n\
         signing_secret = \"{secret}\"\n",
        words = words.join(", "),
    ))
}

/// Checks before the load that the gateway has exactly one rule sending
/// to the receiver, and that it fires on every word the check expects of
/// it, signed, for the store: without it every automation would only be
/// found missing after the whole run and its drain timeout.
pub async fn check_rule(api: &ReadApi, receiver: SocketAddr) -> Result<(), String> {
    let url = format!("http://{receiver}{PATH}");
    let answer: Value = api.get_json("/api/v1/automations").await?;
    let rules: Vec<&Value> = answer["automations"]
        .as_array()
        .map(|rules| rules.iter().filter(|r| r["url"] == url.as_str()).collect())
        .unwrap_or_default();
    let rule = match rules.as_slice() {
        [rule] => *rule,
        [] => {
            return Err(format!(
                "the gateway has no automation rule sending to {url}; run it with the \
                 config `shipgate-load --e2e-config` prints (same --receiver)"
            ))
        }
        more => {
            return Err(format!(
                "{} of the gateway's rules send to {url}: each automation would arrive \
                 that many times",
                more.len()
            ))
        }
    };
    let name = rule["name"].as_str().unwrap_or_default();
    let on: Vec<&str> = rule["on"]
        .as_array()
        .map(|words| words.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let unheard: Vec<&str> = ShipmentStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(EVENTS.iter().map(|e| e.as_str()))
        .filter(|word| !on.contains(word))
        .collect();
    if !unheard.is_empty() {
        return Err(format!(
            "rule {name} sends to {url} but not on {}; use the config `shipgate-load \
             --e2e-config` prints",
            unheard.join(", ")
        ));
    }
    if rule["signed"] != true {
        return Err(format!(
            "rule {name} sends to {url} unsigned; give it the signing_secret of --e2e-secret"
        ));
    }
    Ok(())
}

/// An automation, by the apply that fired it: the applied event's id and
/// the trigger (one apply can fire a status and an event).
type Fired = (String, Trigger);

/// The part of an automation's body the check reads.
#[derive(Deserialize)]
struct Payload {
    trigger: Trigger,
    order: String,
    fulfillment: PayloadFulfillment,
    /// `null` for a stall.
    event: Option<PayloadEvent>,
}

#[derive(Deserialize)]
struct PayloadFulfillment {
    id: String,
}

#[derive(Deserialize)]
struct PayloadEvent {
    id: String,
    occurred_at: DateTime<Utc>,
}

/// One automation that arrived signed right.
struct Arrival {
    fired: Option<Fired>,
    refs: Refs,
    occurred_at: Option<DateTime<Utc>>,
    at: Instant,
}

/// Everything the receiver took.
#[derive(Default)]
struct Inbox {
    arrivals: Vec<Arrival>,
    /// How often each apply's automation arrived, signed right.
    counts: HashMap<Fired, u32>,
    bad_signatures: u64,
    /// Requests that were not an automation (wrong path, bad framing or
    /// body); the first few are named.
    malformed: u64,
    problems: Vec<String>,
}

impl Inbox {
    fn note(&mut self, problem: String) {
        if self.problems.len() < EXAMPLES {
            self.problems.push(problem);
        }
    }

    fn record(&mut self, judged: Judged) {
        match judged {
            Judged::Automation(arrival) => {
                if let Some(fired) = &arrival.fired {
                    *self.counts.entry(fired.clone()).or_default() += 1;
                }
                self.arrivals.push(arrival);
            }
            Judged::BadSignature(problem) => {
                self.bad_signatures += 1;
                self.note(problem);
            }
            Judged::Malformed(problem) => {
                self.malformed += 1;
                self.note(problem);
            }
        }
    }
}

/// What one request to the receiver turned out to be.
enum Judged {
    Automation(Arrival),
    BadSignature(String),
    Malformed(String),
}

/// The receiver: a plain HTTP/1.1 server on a thread and runtime of its
/// own, so that taking automations neither waits for the load's sending nor
/// delays it.
pub struct Receiver {
    inbox: Arc<Mutex<Inbox>>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `addr` (bound before this returns, so the gateway's
    /// first automation finds it) for automations signed with `secret`.
    pub fn start(addr: SocketAddr, secret: &str) -> Result<Self, String> {
        let secret = SigningSecret::parse(secret).map_err(|e| format!("--e2e-secret: {e}"))?;
        let listener =
            std::net::TcpListener::bind(addr).map_err(|e| format!("--receiver {addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("--receiver {addr}: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| format!("the receiver's runtime: {e}"))?;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let stop = CancellationToken::new();
        let thread = {
            let (inbox, stop) = (Arc::clone(&inbox), stop.clone());
            std::thread::Builder::new()
                .name("e2e-receiver".into())
                .spawn(move || runtime.block_on(accept(listener, inbox, Arc::new(secret), stop)))
                .map_err(|e| format!("the receiver's thread: {e}"))?
        };
        Ok(Self {
            inbox,
            stop,
            thread: Some(thread),
        })
    }

    /// The inbox; a connection that panicked holding it left it whole
    /// (every change is a push or a count).
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    inbox: Arc<Mutex<Inbox>>,
    secret: Arc<SigningSecret>,
    stop: CancellationToken,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            let mut inbox = inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.note(format!("the receiver cannot listen: {e}"));
            return;
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (out of descriptors) leaves the gateway
                // to retry, and the report to count what never came.
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, Arc::clone(&inbox), Arc::clone(&secret)));
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// A request's head, as far as the receiver reads it.
#[derive(Debug)]
struct Head {
    len: usize,
    path: String,
    content_length: usize,
    id: Option<String>,
    timestamp: Option<String>,
    signature: Option<String>,
}

impl Head {
    /// The head at the start of `buffer`, `None` while it is incomplete.
    fn parse(buffer: &[u8]) -> Result<Option<Self>, String> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let len = match request.parse(buffer) {
            Ok(Status::Complete(len)) => len,
            Ok(Status::Partial) if buffer.len() < MAX_HEAD => return Ok(None),
            Ok(Status::Partial) => return Err(format!("a request head over {MAX_HEAD} bytes")),
            Err(e) => return Err(format!("a request head: {e}")),
        };
        let field = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
        };
        if let Some(coding) = field("transfer-encoding") {
            return Err(format!(
                "Transfer-Encoding '{coding}': the receiver takes Content-Length bodies only"
            ));
        }
        let content_length = match field("content-length") {
            None => 0,
            Some(value) => value
                .parse()
                .map_err(|_| format!("Content-Length '{value}' is not a length"))?,
        };
        if content_length > MAX_BODY {
            return Err(format!(
                "Content-Length {content_length} is over {MAX_BODY} bytes"
            ));
        }
        Ok(Some(Self {
            len,
            path: request.path.unwrap_or_default().to_owned(),
            content_length,
            id: field("webhook-id"),
            timestamp: field("webhook-timestamp"),
            signature: field("webhook-signature"),
        }))
    }
}

/// Takes one connection's requests, one at a time, until it closes.
async fn serve(mut stream: TcpStream, inbox: Arc<Mutex<Inbox>>, secret: Arc<SigningSecret>) {
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    let record = |judged| {
        inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(judged)
    };
    loop {
        let head = loop {
            match Head::parse(&buffer) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(problem) => {
                    record(Judged::Malformed(problem));
                    let _ = stream.write_all(BAD_REQUEST).await;
                    return;
                }
            }
            if !read_more(&mut stream, &mut buffer).await {
                return;
            }
        };
        let whole = head.len + head.content_length;
        while buffer.len() < whole {
            if !read_more(&mut stream, &mut buffer).await {
                return;
            }
        }
        let at = Instant::now();
        let request = buffer.split_to(whole);
        let answer = if head.path == PATH {
            record(judge(&head, &request[head.len..], &secret, at));
            NO_CONTENT
        } else {
            record(Judged::Malformed(format!(
                "a request to {}, not {PATH}",
                head.path
            )));
            NOT_FOUND
        };
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// Reads what more the connection has; false once it is closed or broken.
async fn read_more(stream: &mut TcpStream, buffer: &mut BytesMut) -> bool {
    buffer.reserve(READ_CHUNK);
    matches!(stream.read_buf(buffer).await, Ok(n) if n > 0)
}

/// Checks an automation's signature and reads what it names. A bad
/// signature is answered 2xx all the same: a refusal would only make the
/// gateway retry, and the count is what the run reports.
fn judge(head: &Head, body: &[u8], secret: &SigningSecret, at: Instant) -> Judged {
    if let Err(problem) = verify(head, body, secret) {
        return Judged::BadSignature(problem);
    }
    let payload: Payload = match serde_json::from_slice(body) {
        Ok(payload) => payload,
        Err(e) => return Judged::Malformed(format!("an automation's body: {e}")),
    };
    Judged::Automation(Arrival {
        fired: payload
            .event
            .as_ref()
            .map(|event| (event.id.clone(), payload.trigger)),
        refs: Refs {
            order: payload.order,
            fulfillment: payload.fulfillment.id,
        },
        occurred_at: payload.event.map(|event| event.occurred_at),
        at,
    })
}

/// Standard Webhooks: one of the space-separated `webhook-signature`
/// values is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
fn verify(head: &Head, body: &[u8], secret: &SigningSecret) -> Result<(), String> {
    let id = head
        .id
        .as_deref()
        .ok_or("an automation without webhook-id")?;
    let timestamp = head
        .timestamp
        .as_deref()
        .ok_or_else(|| format!("automation {id} without webhook-timestamp"))?;
    let seconds: i64 = timestamp.parse().map_err(|_| {
        format!("automation {id}: webhook-timestamp '{timestamp}' is not a Unix time")
    })?;
    let signatures = head
        .signature
        .as_deref()
        .ok_or_else(|| format!("automation {id} without webhook-signature"))?;
    let expected = secret.sign(id, seconds, body);
    if signatures.split(' ').any(|s| s == expected) {
        Ok(())
    } else {
        Err(format!(
            "automation {id}: webhook-signature is not signed with --e2e-secret"
        ))
    }
}

/// One history entry, in the ops API's shape.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    event_id: String,
    kind: String,
    stale: bool,
    status: String,
    datetime: DateTime<Utc>,
}

/// The automations a fulfillment's `history` says its applies fired: a
/// status entry that was not stale and changed the status (from `unknown`,
/// a new fulfillment's), and every event entry.
fn fired_by(history: &[Entry]) -> Result<Vec<Fired>, String> {
    let mut statuses: Vec<&Entry> = history
        .iter()
        .filter(|e| e.kind == "status" && !e.stale)
        .collect();
    statuses.sort_by_key(|e| e.datetime);
    let mut current = ShipmentStatus::Unknown;
    let mut fired = Vec::new();
    for entry in statuses {
        let status: ShipmentStatus = entry
            .status
            .parse()
            .map_err(|e| format!("history entry {}: status: {e}", entry.event_id))?;
        if status != current {
            fired.push((entry.event_id.clone(), Trigger::Status(status)));
            current = status;
        }
    }
    for entry in history.iter().filter(|e| e.kind == "event") {
        let event: AutomationEvent = entry
            .status
            .parse()
            .map_err(|e| format!("history entry {}: event: {e}", entry.event_id))?;
        fired.push((entry.event_id.clone(), Trigger::Event(event)));
    }
    fired.retain(|(_, trigger)| listens(*trigger));
    Ok(fired)
}

/// Reads the histories of `fulfillments` for the automations due.
async fn due(api: &ReadApi, fulfillments: Vec<Refs>) -> Result<HashSet<Fired>, String> {
    let reads = fulfillments.into_iter().map(|refs| async move {
        let found = api.fulfillment(&refs).await?;
        Ok::<_, String>((refs, found))
    });
    let mut reads = stream::iter(reads).buffer_unordered(READS_IN_FLIGHT);
    let mut due = HashSet::new();
    while let Some(read) = reads.next().await {
        let (refs, found) = read?;
        let Some(mut found) = found else { continue };
        let history: Vec<Entry> =
            serde_json::from_value(found["trackingHistory"].take()).map_err(|e| {
                format!(
                    "the trackingHistory of order {} fulfillment {}: {e}",
                    refs.order, refs.fulfillment
                )
            })?;
        due.extend(fired_by(&history)?);
    }
    Ok(due)
}

/// What the receiver showed against what was due.
pub struct Verdict {
    pub due: u64,
    /// Due automations that arrived (once or more).
    pub arrived: u64,
    pub missing: u64,
    /// Due automations that arrived more than once.
    pub doubled: u64,
    /// Automations for the run's fulfillments that no apply fired.
    pub unexpected: u64,
    pub bad_signatures: u64,
    pub malformed: u64,
    /// Automations for fulfillments of other runs: reported, not judged.
    pub elsewhere: u64,
    /// Due automations that arrived but match no update the load sent
    /// (the Redo setup's, say): not in the latency.
    pub untimed: u64,
    /// Microseconds from an update's intended (first) send time to its
    /// automation's arrival.
    pub latency: Histogram<u64>,
    /// How long the wait for them took once the event log had drained,
    /// the load was checked and the histories read (or when it gave up).
    pub waited: Duration,
    pub examples: Vec<String>,
}

impl Verdict {
    /// Nothing missing, doubled, unexpected or badly signed, and at least
    /// one automation due (none proves nothing).
    pub fn passed(&self) -> bool {
        self.due > 0
            && self.missing == 0
            && self.doubled == 0
            && self.unexpected == 0
            && self.bad_signatures == 0
            && self.malformed == 0
    }

    /// Prints the report's `e2e` lines.
    pub fn print(&self) {
        println!(
            "e2e        {} automations due, {} arrived ({:.1} s waited after the check): \
             {} missing, {} doubled, {} unexpected, {} bad signatures, {} malformed",
            self.due,
            self.arrived,
            self.waited.as_secs_f64(),
            self.missing,
            self.doubled,
            self.unexpected,
            self.bad_signatures,
            self.malformed,
        );
        if self.elsewhere > 0 || self.untimed > 0 {
            println!(
                "           {} for other runs' fulfillments (not judged), {} matching no update sent",
                self.elsewhere, self.untimed
            );
        }
        let ms = |quantile: f64| self.latency.value_at_quantile(quantile) as f64 / 1000.0;
        println!(
            "e2e lat    receipt to automation, from each update's intended send time: \
             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} timed)",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.latency.len(),
        );
        for example in &self.examples {
            println!("           {example}");
        }
        println!("e2e result {}", if self.passed() { "PASS" } else { "FAIL" });
    }
}

/// After the event log drained: reads what was due, waits up to `limit`
/// for all of it to arrive, and judges what the receiver took.
pub async fn check(
    api: &ReadApi,
    receiver: Receiver,
    load: &Load,
    limit: Duration,
) -> Result<Verdict, String> {
    let (fulfillments, sent) = {
        let plan = load.plan();
        let fulfillments: Vec<Refs> = plan
            .fulfillments()
            .iter()
            .map(|f| load.wire.refs(f))
            .collect();
        let mut sent = HashMap::new();
        for update in plan.updates() {
            if let Some(at) = update.sent_at {
                let refs = load.wire.refs(plan.fulfillment_of(update));
                sent.insert((refs, update.occurred_at), at);
            }
        }
        (fulfillments, sent)
    };
    let run: HashSet<Refs> = fulfillments.iter().cloned().collect();
    let due = due(api, fulfillments).await?;
    let started = Instant::now();
    while started.elapsed() < limit && !all_arrived(&receiver.inbox(), &due) {
        tokio::time::sleep(POLL).await;
    }
    let waited = started.elapsed();
    receiver.stop.cancel();
    let inbox = receiver.inbox();
    Ok(judge_all(&inbox, &due, &run, &sent, waited))
}

fn all_arrived(inbox: &Inbox, due: &HashSet<Fired>) -> bool {
    // Cheap first: fewer distinct arrivals than due cannot be all.
    inbox.counts.len() >= due.len() && due.iter().all(|f| inbox.counts.contains_key(f))
}

fn judge_all(
    inbox: &Inbox,
    due: &HashSet<Fired>,
    run: &HashSet<Refs>,
    sent: &HashMap<(Refs, DateTime<Utc>), Instant>,
    waited: Duration,
) -> Verdict {
    let mut latency = Histogram::new_with_bounds(1, 600_000_000, 3).expect("the bounds are valid");
    let (mut arrived, mut unexpected, mut elsewhere, mut untimed) = (0, 0, 0, 0);
    let mut examples: Vec<String> = inbox.problems.clone();
    let mut example = |text: String| {
        if examples.len() < 3 * EXAMPLES {
            examples.push(text);
        }
    };
    let mut seen = HashSet::new();
    for arrival in &inbox.arrivals {
        if !run.contains(&arrival.refs) {
            elsewhere += 1;
            continue;
        }
        let due_one = arrival.fired.as_ref().filter(|f| due.contains(*f));
        let Some(fired) = due_one else {
            unexpected += 1;
            example(format!(
                "unexpected: {} of order {} fulfillment {}, which no applied entry fired",
                arrival
                    .fired
                    .as_ref()
                    .map_or("a stall".into(), |(id, t)| format!("{t} of event {id}")),
                arrival.refs.order,
                arrival.refs.fulfillment
            ));
            continue;
        };
        if !seen.insert(fired) {
            continue;
        }
        arrived += 1;
        let sent_at = arrival
            .occurred_at
            .and_then(|at| sent.get(&(arrival.refs.clone(), at)));
        match sent_at {
            Some(sent_at) => {
                let micros = arrival.at.saturating_duration_since(*sent_at).as_micros();
                latency.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
            }
            None => untimed += 1,
        }
    }
    let mut doubled = 0;
    for (fired, times) in &inbox.counts {
        if *times > 1 && due.contains(fired) {
            doubled += 1;
            example(format!(
                "doubled: {} of event {} arrived {times} times",
                fired.1, fired.0
            ));
        }
    }
    for (id, trigger) in due.iter().filter(|f| !seen.contains(f)).take(EXAMPLES) {
        example(format!("missing: {trigger} of event {id}"));
    }
    Verdict {
        due: due.len() as u64,
        arrived,
        missing: due.len() as u64 - arrived,
        doubled,
        unexpected,
        bad_signatures: inbox.bad_signatures,
        malformed: inbox.malformed,
        elsewhere,
        untimed,
        latency,
        waited,
        examples,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(id: &str, kind: &str, status: &str, at: &str, stale: bool) -> Value {
        json!({"eventId": id, "kind": kind, "status": status, "datetime": at,
               "stale": stale, "message": "m"})
    }

    #[test]
    fn a_history_fires_status_changes_in_time_order_and_every_event() {
        let history: Vec<Entry> = serde_json::from_value(json!([
            entry("a", "status", "in_transit", "2026-11-21T00:00:00Z", false),
            entry("b", "status", "in_transit", "2026-11-21T00:00:10Z", false),
            entry("c", "status", "pre_transit", "2026-11-21T00:00:05Z", true),
            entry("d", "event", "delayed", "2026-11-21T00:00:07Z", false),
            entry("e", "status", "delivered", "2026-11-21T00:00:20Z", false),
            entry("f", "unmapped", "unknown", "2026-11-21T00:00:30Z", false),
        ]))
        .unwrap();
        let fired = fired_by(&history).unwrap();
        let words: Vec<(&str, String)> = fired
            .iter()
            .map(|(id, t)| (id.as_str(), t.to_string()))
            .collect();
        assert_eq!(
            words,
            [
                ("a", "in_transit".to_owned()),
                ("e", "delivered".to_owned()),
                ("d", "delayed".to_owned())
            ]
        );
    }

    #[test]
    fn arrivals_are_judged_against_what_was_due_and_timed_from_their_update() {
        let refs = |f: &str| Refs {
            order: "o".into(),
            fulfillment: f.into(),
        };
        let at = |s: i64| DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::seconds(s);
        let fired = |id: &str| (id.to_owned(), Trigger::Status(ShipmentStatus::InTransit));
        let start = Instant::now();
        let arrival = |id: Option<&str>, f: &str, occurred: i64, ms: u64| Arrival {
            fired: id.map(fired),
            refs: refs(f),
            occurred_at: Some(at(occurred)),
            at: start + Duration::from_millis(ms),
        };
        let mut inbox = Inbox::default();
        for a in [
            arrival(Some("a"), "f1", 1, 30),
            arrival(Some("a"), "f1", 1, 40),
            arrival(Some("b"), "f1", 2, 50),
            arrival(Some("x"), "f1", 3, 60),
            arrival(None, "f1", 4, 70),
            arrival(Some("c"), "other-run", 5, 80),
        ] {
            inbox.record(Judged::Automation(a));
        }
        inbox.record(Judged::BadSignature("bad".into()));
        let due: HashSet<Fired> = ["a", "b", "m"].into_iter().map(fired).collect();
        let run: HashSet<Refs> = [refs("f1")].into_iter().collect();
        let sent = HashMap::from([((refs("f1"), at(1)), start + Duration::from_millis(10))]);
        let v = judge_all(&inbox, &due, &run, &sent, Duration::ZERO);
        assert_eq!(
            (v.due, v.arrived, v.missing, v.doubled, v.unexpected),
            (3, 2, 1, 1, 2)
        );
        assert_eq!((v.elsewhere, v.untimed, v.bad_signatures), (1, 1, 1));
        // Timed from the update's send to the first arrival only.
        assert_eq!(v.latency.len(), 1);
        assert!(v.latency.equivalent(v.latency.max(), 20_000));
        let said = v.examples.join("\n");
        for words in [
            "bad",
            "doubled: in_transit of event a",
            "missing: in_transit of event m",
        ] {
            assert!(said.contains(words), "{words}: {said}");
        }
        assert!(!v.passed());
    }

    /// The specification's published vector (see `shipgate::domain`'s
    /// signing tests), among other signatures, as a key rotation sends.
    #[test]
    fn a_signature_is_checked_against_the_secret_over_id_time_and_body() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let head = |signature: &str| Head {
            len: 0,
            path: PATH.into(),
            content_length: 0,
            id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            timestamp: Some("1614265330".into()),
            signature: Some(signature.into()),
        };
        let body = br#"{"test": 2432232314}"#;
        let signed = "v1,other v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(verify(&head(signed), body, &secret), Ok(()));
        let tampered = verify(&head(signed), br#"{"test": 1}"#, &secret).unwrap_err();
        assert!(
            tampered.contains("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            "{tampered}"
        );
        let unsigned = Head {
            signature: None,
            ..head("")
        };
        let missing = verify(&unsigned, body, &secret).unwrap_err();
        assert!(missing.contains("webhook-signature"), "{missing}");
    }

    #[test]
    fn a_head_is_framed_by_content_length_only() {
        let head =
            Head::parse(b"POST /e2e HTTP/1.1\r\ncontent-length: 12\r\nwebhook-id: m\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((head.path.as_str(), head.content_length), (PATH, 12));
        assert_eq!(head.id.as_deref(), Some("m"));
        assert!(Head::parse(b"POST /e2e HTTP/1.1\r\ncontent-")
            .unwrap()
            .is_none());
        let chunked =
            Head::parse(b"POST /e2e HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n").unwrap_err();
        assert!(chunked.contains("Transfer-Encoding"), "{chunked}");
        let length = Head::parse(b"POST /e2e HTTP/1.1\r\ncontent-length: x\r\n\r\n").unwrap_err();
        assert!(length.contains("Content-Length 'x'"), "{length}");
    }

    #[test]
    fn the_config_names_the_receiver_and_every_word_the_rule_needs() {
        let addr: SocketAddr = "127.0.0.1:18099".parse().unwrap();
        let text = config(addr, DEV_SECRET).unwrap();
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let rule = &parsed["automations"][0];
        assert_eq!(rule["url"].as_str(), Some("http://127.0.0.1:18099/e2e"));
        let on = rule["on"].as_array().unwrap();
        assert_eq!(on.len(), ShipmentStatus::ALL.len() + EVENTS.len());
        assert_eq!(
            parsed["delivery"]["allow_private_targets"].as_bool(),
            Some(true)
        );
        let bad = config(addr, "whsec_short").unwrap_err();
        assert!(bad.contains("--e2e-secret"), "{bad}");
    }
}
