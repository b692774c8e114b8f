//! `shipgate-load`: drives a running gateway with realistic signed traffic
//! from all three providers, measures what it answers, and then checks
//! through the read API that every update it acknowledged was applied
//! exactly once.
//!
//! A run goes through four phases: setup (the Redo orders and
//! fulfillments that shipment statuses need, then the run's requests
//! rendered beforehand), load (closed or open loop,
//! with a share of provider retries and of late news), drain (the event
//! log empties) and verify. Exit status: 0 when every acknowledged update
//! was applied exactly once, 1 when one is missing or doubled (or none was
//! acknowledged, which proves nothing), 2 when the run could not be made
//! or checked. With `--send-only` only the load runs, so the same traffic
//! can measure a server that is not shipgate (the bench's floor): what the
//! machine itself allows at a rate. It exits 0 when every request got a
//! 2xx, else 1. With `--e2e` it also takes the automations the updates
//! fire, on a receiver of its own, and fails the run when one due is
//! missing or doubled, or one arrives unexpected or badly signed
//! (`--e2e-config` prints the gateway config that sends them there).
//!
//! - [`plan`]: what to send (providers, fulfillments, retries, late news);
//! - [`wire`]: how it looks on the wire (the real samples, signed);
//! - [`drive`]: sending and measuring;
//! - [`http`]: the load's lean HTTP/1.1 client;
//! - [`gateway`]: reading the ops API and sampling backlog and memory;
//! - [`verify`]: the check;
//! - [`e2e`]: the automations' receiver, and their check and latency.

mod defined;
mod drive;
mod e2e;
mod gateway;
mod http;
mod plan;
mod verify;
mod wire;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{stream, StreamExt};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::SeedableRng;
use shipgate::canonical::Provider;
use tokio_util::sync::CancellationToken;

use drive::{Bound, Load, Pace, Tally};
use gateway::{Peaks, ReadApi};
use http::Target;
use plan::{Mix, Plan, Shape};
use verify::Verdict;
use wire::{Credentials, Delivery, RunId, Wire, MAX_FULFILLMENTS};

/// Redo setup requests in flight at once.
const SETUP_IN_FLIGHT: usize = 16;
/// The highest `--rate`: a nanosecond's schedule is already fiction.
const MAX_RATE: f64 = 1e6;

#[derive(Debug, Parser)]
#[command(
    name = "shipgate-load",
    version,
    about = "Load generator for shipgate: signed Shopify, Carriyo and Redo traffic, \
             latency percentiles, and an exactly-once check through the read API",
    after_help = "Credentials default to the dev-only values of config/default.toml."
)]
struct Cli {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Closed loop: this many senders, each sending again when answered
    /// [default: 16, unless --rate is given].
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Open loop: offer this many requests a second whatever the gateway
    /// does; latency counts from each request's intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: most requests unanswered at once; past it the schedule
    /// waits (and the wait shows in the latencies).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// How long to send, like 30s or 2m [default: 10s, unless --requests].
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// How many requests to send, retries included.
    #[arg(long)]
    requests: Option<u64>,
    /// Each provider's share of the deliveries: shopify, carriyo, redo,
    /// and the shipped data-defined senders aftership and easypost.
    #[arg(long, default_value = "shopify=70,carriyo=20,redo=10")]
    mix: Mix,
    /// Share of deliveries that resend an earlier delivery with the same
    /// delivery id and body, as a provider's retry does.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    duplicates: f64,
    /// Share of updates whose time is older than an update already sent
    /// for the same fulfillment.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    out_of_order: f64,
    /// How many distinct fulfillments the updates spread over.
    #[arg(long, default_value_t = 1000)]
    fulfillments: u32,
    /// One request's limit, from sending to the answer's last byte.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    timeout: Duration,
    /// How long to wait after the load for the event log to drain.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    drain_timeout: Duration,
    /// The gateway's pid, to sample its resident memory (Linux /proc).
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Seed for the traffic's choices, to repeat a run's shape.
    #[arg(long)]
    seed: Option<u64>,
    /// The store's name in the gateway's config (the ops API's {store}).
    #[arg(long, default_value = "acme")]
    store: String,
    /// X-Shopify-Shop-Domain.
    #[arg(long, default_value = "acme.myshopify.com")]
    shop: String,
    /// The secret Shopify webhooks are signed with.
    #[arg(long, default_value = "dev-only-shopify-webhook-secret")]
    shopify_secret: String,
    /// Carriyo's tenant-id.
    #[arg(long, default_value = "ACME")]
    carriyo_tenant: String,
    /// Carriyo's x-api-key.
    #[arg(long, default_value = "dev-only-carriyo-api-key")]
    carriyo_key: String,
    /// The Redo store id in Redo-style paths.
    #[arg(long, default_value = "64e5a8a1af49a89df37e4ee7")]
    redo_store_id: String,
    /// Redo's bearer token.
    #[arg(long, default_value = "dev-only-redo-api-token")]
    redo_token: String,
    /// The store's AfterShip webhook secret (`--mix aftership=N`).
    #[arg(long, default_value = "dev-only-aftership-webhook-secret")]
    aftership_secret: String,
    /// The store's EasyPost webhook secret (`--mix easypost=N`).
    #[arg(long, default_value = "dev-only-easypost-webhook-secret")]
    easypost_secret: String,
    /// A bearer token for the ops API (/api/v1), to verify and sample.
    #[arg(long, default_value = "dev-only-admin-token")]
    admin_token: String,
    /// Only send and measure: no ops API, drain or check, for a baseline
    /// against a server without them (`../shared/bench`'s floor takes
    /// `--mix shopify=100`).
    #[arg(long)]
    send_only: bool,
    /// End to end: take the automations the updates fire on `--receiver`,
    /// check them, and report their latency from each update's intended
    /// send time (run the gateway with `--e2e-config`'s config).
    #[arg(long, conflicts_with = "send_only")]
    e2e: bool,
    /// Where `--e2e` listens for automations (on the path /e2e).
    #[arg(long, default_value = "127.0.0.1:18099")]
    receiver: SocketAddr,
    /// The Standard Webhooks secret (`whsec_<base64 key>`) automations are
    /// signed with, in `--e2e-config` and checked by `--e2e`.
    #[arg(long, default_value = e2e::DEV_SECRET)]
    e2e_secret: String,
    /// Print a gateway config (TOML, for `shipgate serve --config`) whose
    /// rule sends every automation the load fires to `--receiver`, and exit.
    #[arg(long)]
    e2e_config: bool,
}

/// A share between 0 and 1.
fn share(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not a share from 0 up to (not including) 1"
        ))
    }
}

impl Cli {
    fn pace(&self) -> Result<Pace, String> {
        match self.rate {
            Some(rate) if rate > 0.0 && rate <= MAX_RATE => Ok(Pace::Open {
                rate,
                max_in_flight: self.max_in_flight.clamp(1, u32::MAX as usize),
            }),
            Some(rate) => Err(format!(
                "--rate {rate} is not a positive number up to {MAX_RATE}"
            )),
            None => match self.concurrency.unwrap_or(16) {
                0 => Err("--concurrency 0 sends nothing".into()),
                concurrency => Ok(Pace::Closed { concurrency }),
            },
        }
    }

    fn bound(&self) -> Bound {
        match self.requests {
            Some(n) => Bound::Requests(n),
            None => Bound::For(self.duration.unwrap_or(Duration::from_secs(10))),
        }
    }

    fn shape(&self) -> Result<Shape, String> {
        if self.fulfillments == 0 || self.fulfillments >= MAX_FULFILLMENTS {
            return Err(format!(
                "--fulfillments {} is not between 1 and {}",
                self.fulfillments,
                MAX_FULFILLMENTS - 1
            ));
        }
        Ok(Shape {
            mix: self.mix.clone(),
            fulfillments: self.fulfillments,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
        })
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            shop: self.shop.clone(),
            shopify_secret: self.shopify_secret.clone(),
            carriyo_tenant: self.carriyo_tenant.clone(),
            carriyo_key: self.carriyo_key.clone(),
            redo_store_id: self.redo_store_id.clone(),
            redo_token: self.redo_token.clone(),
            store: self.store.clone(),
            aftership_secret: self.aftership_secret.clone(),
            easypost_secret: self.easypost_secret.clone(),
        }
    }
}

/// One runtime thread: sending is light, and on a small machine shared
/// with the gateway every extra thread to wake costs the gateway CPU.
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.e2e_config {
        return match e2e::config(cli.receiver, &cli.e2e_secret) {
            Ok(config) => {
                print!("{config}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("shipgate-load: {e}");
                ExitCode::from(2)
            }
        };
    }
    match run(cli).await {
        Ok(Ran::SendOnly { all_2xx: true }) => ExitCode::SUCCESS,
        Ok(Ran::SendOnly { all_2xx: false }) => ExitCode::from(1),
        Ok(Ran::Verified(verdict, e2e))
            if verdict.acknowledged > 0
                && verdict.passed()
                && e2e.as_ref().is_none_or(|e2e| e2e.passed()) =>
        {
            ExitCode::SUCCESS
        }
        Ok(Ran::Verified(verdict, _)) => {
            if verdict.acknowledged == 0 {
                eprintln!("shipgate-load: no update was answered 2xx, so nothing was verified");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("shipgate-load: {e}");
            ExitCode::from(2)
        }
    }
}

/// What a run ended with.
enum Ran {
    /// The load was checked through the ops API, and with `--e2e` its
    /// automations too.
    Verified(Verdict, Option<Box<e2e::Verdict>>),
    /// `--send-only`: the load alone, and whether every request got a 2xx.
    SendOnly { all_2xx: bool },
}

async fn run(cli: Cli) -> Result<Ran, String> {
    let (pace, bound, shape) = (cli.pace()?, cli.bound(), cli.shape()?);
    let base_url = cli.target.trim_end_matches('/').to_owned();
    let target = Target::resolve(&base_url)?;
    let client = reqwest::Client::builder()
        .timeout(cli.timeout)
        .build()
        .map_err(|e| format!("an HTTP client: {e}"))?;
    let run = RunId::random();
    let rng = match cli.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let wire = Wire::new(run, cli.credentials())?;
    let mut plan = Plan::new(shape.clone(), rng);
    let api = ReadApi {
        client: client.clone(),
        base_url: base_url.clone(),
        admin_token: cli.admin_token.clone(),
        store: cli.store.clone(),
    };
    println!(
        "shipgate-load: run {run} against {base_url}: {}, {}; mix {}, {} fulfillments, \
         duplicates {:.0}%, out-of-order {:.0}%",
        describe_pace(pace),
        describe_bound(bound),
        shape.mix,
        plan.fulfillments().len(),
        shape.duplicates * 100.0,
        shape.out_of_order * 100.0,
    );
    if !cli.send_only {
        api.backlog()
            .await
            .map_err(|e| format!("the ops API does not answer (check --admin-token): {e}"))?;
    }
    if cli.e2e {
        e2e::check_rule(&api, cli.receiver).await?;
    }

    // Before the setup, whose Redo fulfillments may fire automations too.
    let receiver = if cli.e2e {
        Some(e2e::Receiver::start(cli.receiver, &cli.e2e_secret)?)
    } else {
        None
    };
    let setup = set_up_redo(&client, &base_url, &wire, &plan).await?;
    if let Some(took) = setup {
        println!("setup      Redo orders and fulfillments created in {took:.1?}");
    }
    let prebuilt = drive::known_count(pace, bound).map(|count| {
        let started = Instant::now();
        let (prebuilt, bytes) = drive::prebuild(&wire, &mut plan, &target, count);
        let later = match count - prebuilt.len() as u64 {
            0 => String::new(),
            n => format!("; {n} more are built while sending"),
        };
        println!(
            "prebuild   {} requests ({:.1} MiB) rendered in {:.1?}{later}",
            prebuilt.len(),
            bytes as f64 / (1 << 20) as f64,
            started.elapsed(),
        );
        prebuilt
    });
    let load = Arc::new(Load {
        http: http::Client::new(target, cli.timeout),
        wire,
        plan: Mutex::new(plan),
        tally: Mutex::new(Tally::default()),
    });

    if cli.send_only {
        drive::drive(Arc::clone(&load), pace, bound, prebuilt.unwrap_or_default()).await;
        let tally = load.tally.lock().unwrap_or_else(|e| e.into_inner());
        print_load(&tally);
        return Ok(Ran::SendOnly {
            all_2xx: tally.sent > 0 && tally.successes() == tally.sent,
        });
    }
    let peaks = Arc::new(Peaks::default());
    let stop_watching = CancellationToken::new();
    let watcher = tokio::spawn(gateway::watch(
        api.clone(),
        cli.gateway_pid,
        Duration::from_millis(250),
        Arc::clone(&peaks),
        stop_watching.clone(),
    ));
    drive::drive(Arc::clone(&load), pace, bound, prebuilt.unwrap_or_default()).await;
    let backlog_at_end = api.backlog().await.ok();
    let drained = verify::drain(&api, cli.drain_timeout).await;
    stop_watching.cancel();
    let _ = watcher.await;

    let tally = std::mem::take(&mut *load.tally.lock().unwrap_or_else(|e| e.into_inner()));
    print_load(&tally);
    print_gateway(&peaks, backlog_at_end, cli.gateway_pid);
    let drained = drained?;
    let (expectations, late) = {
        let plan = load.plan();
        let late = plan.updates().iter().filter(|u| u.late).count();
        (verify::expectations(&load.wire, &plan), late)
    };
    let verdict = verify::verify(&api, expectations).await?;
    print_verdict(&verdict, drained, tally.retries, late);
    let e2e = match receiver {
        Some(receiver) => {
            let e2e = e2e::check(&api, receiver, &load, cli.drain_timeout).await?;
            e2e.print();
            Some(Box::new(e2e))
        }
        None => None,
    };
    Ok(Ran::Verified(verdict, e2e))
}

fn describe_pace(pace: Pace) -> String {
    match pace {
        Pace::Closed { concurrency } => format!("closed loop, {concurrency} senders"),
        Pace::Open { rate, .. } => format!("open loop at {rate} req/s"),
    }
}

fn describe_bound(bound: Bound) -> String {
    match bound {
        Bound::For(d) => format!("for {}", humantime::format_duration(d)),
        Bound::Requests(n) => format!("{n} requests"),
    }
}

/// Creates the order and fulfillment of every Redo fulfillment of the
/// plan; how long it took, or `None` when the mix has no Redo.
async fn set_up_redo(
    client: &reqwest::Client,
    base_url: &str,
    wire: &Wire,
    plan: &Plan,
) -> Result<Option<Duration>, String> {
    let started = Instant::now();
    let setups: Vec<[Delivery; 2]> = plan
        .fulfillments()
        .iter()
        .filter(|f| f.provider == Provider::Redo)
        .map(|f| wire.redo_setup(f))
        .collect();
    if setups.is_empty() {
        return Ok(None);
    }
    let mut done = stream::iter(setups.into_iter().map(|[order, fulfillment]| async move {
        post(client, base_url, order).await?;
        post(client, base_url, fulfillment).await
    }))
    .buffer_unordered(SETUP_IN_FLIGHT);
    while let Some(result) = done.next().await {
        result?;
    }
    Ok(Some(started.elapsed()))
}

/// Posts a setup request, which must succeed.
async fn post(client: &reqwest::Client, base_url: &str, delivery: Delivery) -> Result<(), String> {
    let url = format!("{base_url}{}", delivery.path);
    let mut request = client.post(&url);
    for (name, value) in delivery.headers {
        request = request.header(name, value);
    }
    let response = request
        .body(delivery.body)
        .send()
        .await
        .map_err(|e| format!("setup: POST {url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(format!("setup: POST {url} answered {status}: {text}"))
}

/// p50 / p99 / p99.9 / max in milliseconds.
fn percentiles(h: &Histogram<u64>) -> String {
    let ms = |micros: u64| micros as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    )
}

fn print_load(tally: &Tally) {
    let successes = tally.successes();
    let others: Vec<String> = tally
        .by_status
        .iter()
        .filter(|(status, _)| !(200..300).contains(*status))
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    let non_2xx: u64 = tally.sent - successes - tally.errors.values().sum::<u64>();
    let errors: u64 = tally.errors.values().sum();
    println!(
        "requests   {} sent ({} of them retries), {successes} 2xx, {non_2xx} non-2xx{}, {errors} errors{}",
        tally.sent,
        tally.retries,
        if others.is_empty() {
            String::new()
        } else {
            format!(" ({})", others.join(", "))
        },
        if tally.errors.is_empty() {
            String::new()
        } else {
            let kinds: Vec<String> = tally
                .errors
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect();
            format!(" ({})", kinds.join(", "))
        },
    );
    if let Some(e) = &tally.first_error {
        println!("           first error: {e}");
    }
    let seconds = tally.elapsed.as_secs_f64();
    if seconds > 0.0 {
        println!(
            "throughput {:.0} req/s ({:.0} 2xx/s) over {seconds:.1} s",
            tally.sent as f64 / seconds,
            successes as f64 / seconds
        );
    }
    println!("latency    {}", percentiles(&tally.latency));
    for (provider, p) in &tally.by_provider {
        println!(
            "  {:<8} {} sent; {}",
            provider.as_str(),
            p.sent,
            percentiles(&p.latency)
        );
    }
}

fn print_gateway(peaks: &Peaks, backlog_at_end: Option<u64>, pid: Option<u32>) {
    let (samples, failed) = peaks.samples();
    println!(
        "backlog    max {} in {samples} samples ({failed} failed), {} when the load ended",
        peaks.backlog(),
        backlog_at_end.map_or("unknown".into(), |b| b.to_string()),
    );
    if let Some(pid) = pid {
        println!(
            "gateway    pid {pid}: resident memory max {:.1} MiB",
            peaks.resident_kib() as f64 / 1024.0
        );
    }
}

fn print_verdict(verdict: &Verdict, drained: Duration, retries: u64, late: usize) {
    println!(
        "verify     event log drained {:.1} s after the load; {} unique updates 2xx'd: \
         {} applied once, {} missing, {} doubled",
        drained.as_secs_f64(),
        verdict.acknowledged,
        verdict.applied_once,
        verdict.missing,
        verdict.doubled,
    );
    println!(
        "           {retries} retries and {late} out-of-order updates sent; \
         {} updates never 2xx'd, {} of them applied anyway",
        verdict.unacknowledged, verdict.unacknowledged_applied
    );
    for example in &verdict.missing_examples {
        println!("           missing: {example}");
    }
    for example in &verdict.doubled_examples {
        println!("           doubled: {example}");
    }
    println!(
        "result     {}",
        if verdict.passed() { "PASS" } else { "FAIL" }
    );
}
