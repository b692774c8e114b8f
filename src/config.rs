//! Layered configuration: the commented `config/default.toml` (compiled in,
//! so the binary runs anywhere), then `--config FILE`, then environment
//! variables `SHIPGATE__SECTION__KEY`. Everything is parsed into typed
//! settings once, at start-up, and checked there: a bad value stops the
//! server with the key's name instead of surfacing on the first request.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use reqwest::Url;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use crate::canonical::Direction;
use crate::domain::{SigningSecret, Trigger};

/// The default configuration, every key commented.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// Credentials that begin with this are the demo store's development
/// values; the server warns loudly while any of them is in use.
pub const DEV_CREDENTIAL_PREFIX: &str = "dev-only-";

/// Longest `worker.linger`: past it, apply lag would look like a stuck worker.
const MAX_LINGER: Duration = Duration::from_secs(1);

/// Largest `server.backlog`: a queue past it only hides an overload.
const MAX_BACKLOG: u32 = 65_535;

/// Why configuration could not be loaded: always names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// All of shipgate's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub telemetry: TelemetrySettings,
    pub storage: StorageSettings,
    pub worker: WorkerSettings,
    pub admin: AdminSettings,
    pub providers: ProvidersSettings,
    /// The old name of `providers.dir`, still read (with a warning).
    #[serde(default)]
    pub status_maps: Option<StatusMapSettings>,
    #[serde(default)]
    pub stores: BTreeMap<String, StoreSettings>,
    pub core: CoreSettings,
    pub delivery: DeliverySettings,
    /// The `[[automations]]` rules; none by default.
    #[serde(default)]
    pub automations: Vec<AutomationSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted; larger ones get 413.
    #[serde(deserialize_with = "byte_size")]
    pub body_limit: usize,
    /// How long a graceful shutdown waits for requests in flight.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Connections the kernel queues before they are accepted. A sender
    /// whose connection finds the queue full is not refused but silently
    /// dropped, and waits a second for its SYN retry.
    pub backlog: u32,
    /// How long a request's body may take to arrive once its headers
    /// have: a sender that stalls mid-body gets 408 and its connection
    /// closed, instead of holding a buffer for as long as it likes.
    #[serde(deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// Most connections served at once, across the HTTP threads; more
    /// wait in the backlog. With `body_limit` it bounds the memory that
    /// request bodies can hold.
    pub max_connections: usize,
}

/// How logs are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `shipgate=debug,info`; the
    /// `RUST_LOG` variable wins when set.
    pub filter: String,
}

/// Human-readable lines for a terminal, or one JSON object per line for a
/// log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Which storage backend holds the gateway's durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub backend: Backend,
    pub redis_url: Secret,
    /// `redis_url` names nodes of a Redis Cluster (comma-separated; one is
    /// enough to find the rest), and each partition is served by the node
    /// that owns its hash slot.
    pub redis_cluster: bool,
    pub key_prefix: String,
    pub partitions: u32,
    #[serde(deserialize_with = "duration")]
    pub dedup_ttl: Duration,
    /// How many recent events the ops API and dashboard can page through.
    pub recent_events: usize,
}

/// The workers that apply the event log to the fulfillment core.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Most log entries taken in one read.
    pub batch_size: usize,
    /// How long a partition lease lasts without renewal; a dead worker's
    /// partitions move to another process after this.
    #[serde(deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// The nice value (0 to 19) of the threads that apply the log and run
    /// automations. Above 0, ingest wins the CPU in a burst and the durable
    /// log absorbs it; the workers catch up when the burst passes.
    pub nice: i32,
    /// After a read that did not fill a batch, how long the worker lets the
    /// log fill before reading again. Each read and write of a round costs
    /// a Redis call per partition whatever the batch holds, so at a steady
    /// trickle small rounds cost several times more per event than full
    /// ones; the price is up to this much more apply lag.
    #[serde(deserialize_with = "duration")]
    pub linger: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Who may use the ops API and on which stores: a plain string is an
    /// `admin` token on every store (the first form, kept working), a
    /// table is scoped.
    pub tokens: Vec<AdminToken>,
}

/// One ops token: how it is recognised, which stores it sees and what it
/// may do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub credential: TokenCredential,
    pub stores: StoreScope,
    pub role: Role,
}

/// How a presented token is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCredential {
    /// The token itself (from the config text or a file).
    Token(Secret),
    /// The SHA-256 of the token, so the config need not hold the secret.
    Sha256([u8; 32]),
}

/// The stores a token sees; every other store's data is as if absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreScope {
    /// `"*"`: every store, and what belongs to none (refused requests,
    /// counts recorded before stores were counted).
    All,
    /// These stores only (never empty).
    Only(std::collections::BTreeSet<String>),
}

impl StoreScope {
    /// Whether the token sees `store`'s data.
    pub fn sees(&self, store: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(stores) => stores.contains(store),
        }
    }
}

/// What a token may do on the stores it sees; each role includes the
/// ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything the ops API shows.
    Read,
    /// Read, and send dead letters again (one or in bulk).
    Operate,
    /// Everything; what a plain-string token gets.
    Admin,
}

impl Role {
    /// The role's name in config and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Operate => "operate",
            Self::Admin => "admin",
        }
    }
}

/// A `[[admin.tokens]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopedTokenToml {
    token: Option<Secret>,
    token_sha256: Option<String>,
    stores: StoresToml,
    role: Role,
}

/// `stores = "*"` or a list of store names (`["*"]` too).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoresToml {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for AdminToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        // A string, or a `{ file = ... }` table, is the first form.
        let plain = match &value {
            serde_json::Value::Object(table) => table.len() == 1 && table.contains_key("file"),
            _ => true,
        };
        if plain {
            let secret = Secret::deserialize(value).map_err(D::Error::custom)?;
            return Ok(Self {
                credential: TokenCredential::Token(secret),
                stores: StoreScope::All,
                role: Role::Admin,
            });
        }
        let raw = ScopedTokenToml::deserialize(value).map_err(D::Error::custom)?;
        let credential = match (raw.token, raw.token_sha256) {
            (Some(token), None) => TokenCredential::Token(token),
            (None, Some(hex_text)) => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hex_text.trim(), &mut digest).map_err(|_| {
                    D::Error::custom(format!(
                        "`token_sha256` '{hex_text}' is not 64 hex digits (the SHA-256 of the token)"
                    ))
                })?;
                TokenCredential::Sha256(digest)
            }
            (Some(_), Some(_)) => {
                return Err(D::Error::custom(
                    "both `token` and `token_sha256` are set; give one",
                ))
            }
            (None, None) => {
                return Err(D::Error::custom(
                    "set `token` or `token_sha256`: how the token is recognised",
                ))
            }
        };
        let names = match raw.stores {
            StoresToml::One(name) => vec![name],
            StoresToml::Many(names) => names,
        };
        let stores = match names.as_slice() {
            [] => {
                return Err(D::Error::custom(
                    "`stores` is empty; list store names, or \"*\" for every store",
                ))
            }
            [all] if all == "*" => StoreScope::All,
            _ if names.iter().any(|n| n == "*") => {
                return Err(D::Error::custom(
                    "`stores` mixes \"*\" with store names; give one or the other",
                ))
            }
            _ => StoreScope::Only(names.into_iter().collect()),
        };
        Ok(Self {
            credential,
            stores,
            role: raw.role,
        })
    }
}

/// `[status_maps]`: deprecated, `[providers]` says the same.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMapSettings {
    /// What `providers.dir` is now.
    pub dir: Option<PathBuf>,
}

/// `[providers]`: where a deployment's provider folders are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersSettings {
    /// A directory of `<provider>/` folders: `status_map.toml` files that
    /// replace the built-in maps, and `provider.toml` definitions of
    /// senders (with their map and samples) added to the shipped ones.
    pub dir: Option<PathBuf>,
}

/// `[stores.NAME.providers.PROVIDER]`: a data-defined provider's
/// credentials for one store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinedProviderSettings {
    /// Lets a layer switch the provider off for the store: its deliveries
    /// are then answered 401, like a bad credential.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// HMAC keys, tokens, or `user:password` pairs for Basic, as the
    /// definition's scheme takes; several while one is rotated.
    pub secrets: Vec<Secret>,
    /// The zone of times the provider sends without an offset.
    #[serde(default = "utc", deserialize_with = "time_zone")]
    pub time_zone: Tz,
}

fn utc() -> Tz {
    Tz::UTC
}

fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    TimeZone::deserialize(d).map(|z| z.0)
}

/// One merchant store and the credentials each provider uses for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Lets a deployment switch off a store from an earlier layer (the
    /// demo store of the default config).
    #[serde(default = "yes")]
    pub enabled: bool,
    pub shopify: Option<ShopifySettings>,
    pub carriyo: Option<CarriyoSettings>,
    pub redo: Option<RedoSettings>,
    /// `[stores.NAME.providers.PROVIDER]`: the data-defined providers this
    /// store takes deliveries from, by name.
    #[serde(default)]
    pub providers: BTreeMap<String, DefinedProviderSettings>,
    /// `[stores.NAME.limits]`: unset, the store's ingest is not limited
    /// (and costs no extra storage call).
    pub limits: Option<RateLimit>,
}

/// A store's ingest limit, one token bucket per provider
/// (`[stores.NAME.limits]`): one sender's flood, or an attacker holding
/// one store's credentials, cannot starve the other stores.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "LimitsToml")]
pub struct RateLimit {
    /// Requests a second, sustained, as configured: what a refusal quotes.
    pub rate: f64,
    /// The time one request's token takes to come back: 1 / `rate`.
    pub interval: Duration,
    /// How many requests may come at once after a quiet spell.
    pub burst: u32,
}

/// Most requests a second a limit may allow: its interval is counted in
/// microseconds.
const MAX_RATE: f64 = 1_000_000.0;

/// `[stores.NAME.limits]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsToml {
    /// Requests a second, sustained (fractions allowed: 0.5 is one every 2s).
    rate: f64,
    /// One second's worth of `rate` unless set.
    burst: Option<u32>,
}

impl TryFrom<LimitsToml> for RateLimit {
    type Error = String;

    fn try_from(raw: LimitsToml) -> Result<Self, String> {
        if !(raw.rate > 0.0 && raw.rate <= MAX_RATE) {
            return Err(format!(
                "rate {} must be a number of requests a second above 0 and at most {MAX_RATE}",
                raw.rate
            ));
        }
        let burst = match raw.burst {
            Some(0) => return Err("burst 0 would refuse every request; use 1 or more".into()),
            Some(burst) => burst,
            // `rate` is at most MAX_RATE, so this fits.
            None => raw.rate.ceil() as u32,
        };
        Ok(Self {
            rate: raw.rate,
            interval: Duration::from_secs_f64(1.0 / raw.rate),
            burst,
        })
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifySettings {
    pub shop_domain: String,
    /// Several while a secret is rotated: Shopify signs with the old one
    /// for up to an hour.
    pub webhook_secrets: Vec<Secret>,
    #[serde(default)]
    pub access_tokens: Vec<Secret>,
}

/// One store's Carriyo settings: its tenant, how Carriyo authenticates to
/// it, and the time zone of the times Carriyo sends without an offset.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "CarriyoToml")]
pub struct CarriyoSettings {
    pub tenant_id: String,
    pub auth: CarriyoAuth,
    /// Carriyo accepts times without an offset; they are read here.
    pub time_zone: Tz,
}

/// How Carriyo authenticates to a store: one scheme per store, as a
/// Carriyo webhook has one authentication setting
/// (https://carriyo.com/docs/platform/webhooks/authentication/).
#[derive(Debug, Clone)]
pub enum CarriyoAuth {
    /// A static header: `name` carries one of `values`.
    Header {
        name: HeaderName,
        values: Vec<Secret>,
    },
    /// `Authorization: Basic`; each secret is one `user:password`.
    Basic(Vec<Secret>),
    /// `Authorization: Bearer` with one of these tokens.
    Bearer(Vec<Secret>),
}

impl CarriyoAuth {
    /// Every secret the scheme accepts, whatever its kind.
    pub fn secrets(&self) -> &[Secret] {
        match self {
            Self::Header { values, .. } => values,
            Self::Basic(secrets) | Self::Bearer(secrets) => secrets,
        }
    }

    /// The configuration key that holds the scheme's secrets.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Header { .. } => "api_keys",
            Self::Basic(_) => "basic_auth",
            Self::Bearer(_) => "bearer_tokens",
        }
    }
}

/// The header Carriyo's key comes in unless a store names another in
/// `api_key_header`.
pub const DEFAULT_CARRIYO_KEY_HEADER: &str = "x-api-key";

/// A header name as HTTP allows it (RFC 9110 token characters), in lower
/// case; refused at load otherwise, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(String);

impl HeaderName {
    /// The name, lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if text.is_empty() || !text.chars().all(token) {
            return Err(serde::de::Error::custom(format!(
                "'{text}' is not an HTTP header name"
            )));
        }
        Ok(Self(text.to_ascii_lowercase()))
    }
}

/// An IANA time zone name such as `Asia/Dubai`.
#[derive(Debug, Clone, Copy)]
struct TimeZone(Tz);

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse::<Tz>().map(Self).map_err(|_| {
            serde::de::Error::custom(format!(
                "'{text}' is not an IANA time zone name like UTC or Asia/Dubai"
            ))
        })
    }
}

/// A store's Carriyo table as written, before its scheme is chosen.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CarriyoToml {
    tenant_id: String,
    #[serde(default)]
    api_keys: Vec<Secret>,
    api_key_header: Option<HeaderName>,
    #[serde(default)]
    basic_auth: Vec<Secret>,
    #[serde(default)]
    bearer_tokens: Vec<Secret>,
    time_zone: Option<TimeZone>,
}

impl TryFrom<CarriyoToml> for CarriyoSettings {
    type Error = String;

    /// Exactly one scheme's list may hold secrets (an empty list is unset,
    /// so a layer can switch the demo store's `api_keys` off).
    fn try_from(raw: CarriyoToml) -> Result<Self, String> {
        let set: Vec<&str> = [
            ("api_keys", &raw.api_keys),
            ("basic_auth", &raw.basic_auth),
            ("bearer_tokens", &raw.bearer_tokens),
        ]
        .iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(name, _)| *name)
        .collect();
        if raw.api_key_header.is_some() && raw.api_keys.is_empty() {
            return Err("`api_key_header` is set, but `api_keys` is not".into());
        }
        let auth = match set.as_slice() {
            ["api_keys"] => CarriyoAuth::Header {
                name: raw
                    .api_key_header
                    .unwrap_or_else(|| HeaderName(DEFAULT_CARRIYO_KEY_HEADER.into())),
                values: raw.api_keys,
            },
            ["basic_auth"] => {
                if let Some(bad) = raw.basic_auth.iter().position(|s| {
                    s.expose()
                        .split_once(':')
                        .is_none_or(|(user, _)| user.is_empty())
                }) {
                    return Err(format!(
                        "`basic_auth` entry {bad} is not of the form user:password"
                    ));
                }
                CarriyoAuth::Basic(raw.basic_auth)
            }
            ["bearer_tokens"] => CarriyoAuth::Bearer(raw.bearer_tokens),
            [] => {
                return Err(
                    "set one of `api_keys`, `basic_auth` or `bearer_tokens`: how Carriyo \
                     authenticates"
                        .into(),
                )
            }
            several => {
                return Err(format!(
                    "`{}` are all set; a store takes one scheme (set the others to [])",
                    several.join("`, `")
                ))
            }
        };
        Ok(Self {
            tenant_id: raw.tenant_id,
            auth,
            time_zone: raw.time_zone.map_or(Tz::UTC, |z| z.0),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedoSettings {
    pub store_id: String,
    pub api_tokens: Vec<Secret>,
}

/// How the core derives the automation events that no provider sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreSettings {
    /// An in-transit fulfillment with no update for this long fires
    /// `stalled_in_transit`, once per stall.
    #[serde(deserialize_with = "duration")]
    pub stall_after: Duration,
    /// Whether a moved ETA fires `arriving_early` / `delayed`.
    pub derive_eta_events: bool,
    /// How far after its receipt news may be dated: senders' clocks run a
    /// little ahead, but news dated later would outrank every real status
    /// until then. Refused with 400 past it.
    #[serde(deserialize_with = "duration")]
    pub max_clock_skew: Duration,
}

/// How automation deliveries are sent, retried and kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// One attempt's limit, from connecting to the end of the answer.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// The waits between attempts (jittered); one more attempt than
    /// entries, then a dead letter.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Lets targets resolve to loopback, private, link-local or metadata
    /// addresses (tests and closed networks only).
    pub allow_private_targets: bool,
    /// Most deliveries in flight at once in this process.
    pub concurrency: usize,
    /// The gap between the deliveries of one bulk replay, so a receiver
    /// that just recovered is not flooded.
    #[serde(deserialize_with = "duration")]
    pub replay_pace: Duration,
    /// How long delivered messages stay listed (and replayable by force).
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// The HTTP proxy deliveries go through, when set; otherwise none,
    /// whatever `HTTP_PROXY` or `HTTPS_PROXY` say, so the environment
    /// cannot route deliveries past the private-target check.
    #[serde(default, deserialize_with = "proxy_url")]
    pub proxy: Option<Url>,
}

/// One `[[automations]]` rule: which statuses and events, for which
/// stores, go to which subscriber, and how it is authenticated.
#[derive(Clone, Deserialize)]
#[serde(try_from = "AutomationToml")]
pub struct AutomationSettings {
    pub name: String,
    pub on: Vec<Trigger>,
    /// Only fulfillments going these ways: `forward` unless the rule lists
    /// `directions`, so a return's `delivered` (back at the warehouse)
    /// tells no customer their parcel arrived.
    pub directions: Vec<Direction>,
    /// Only these stores' fulfillments; empty for every store.
    pub stores: Vec<String>,
    pub url: Url,
    /// Sent as `Authorization: Bearer` when set.
    pub bearer_token: Option<Secret>,
    /// Signs each delivery with Standard Webhooks headers when set.
    pub signing_secret: Option<SigningSecret>,
}

impl fmt::Debug for AutomationSettings {
    /// The secrets print masked, the URL as the ops API lists it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutomationSettings")
            .field("name", &self.name)
            .field("on", &self.on)
            .field("directions", &self.directions)
            .field("stores", &self.stores)
            .field("url", &self.display_url())
            .field("bearer_token", &self.bearer_token)
            .field("signing_secret", &self.signing_secret)
            .finish()
    }
}

/// A rule as written, before its words and URL are parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutomationToml {
    name: String,
    on: Vec<String>,
    directions: Option<Vec<String>>,
    #[serde(default)]
    stores: Vec<String>,
    url: String,
    bearer_token: Option<Secret>,
    signing_secret: Option<Secret>,
}

impl TryFrom<AutomationToml> for AutomationSettings {
    type Error = String;

    /// Every message names the rule, so a typo in a long list of rules is
    /// found at once.
    fn try_from(raw: AutomationToml) -> Result<Self, String> {
        let name = raw.name.trim().to_owned();
        if name.is_empty() {
            return Err("an automation rule has an empty `name`".into());
        }
        let problem = |what: String| format!("automation rule `{name}`: {what}");
        if raw.on.is_empty() {
            return Err(problem(
                "`on` is empty; list the statuses and events it fires on".into(),
            ));
        }
        let on = raw
            .on
            .iter()
            .map(|word| word.parse::<Trigger>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| problem(format!("`on`: {e}")))?;
        let directions = match raw.directions {
            None => vec![Direction::Forward],
            Some(words) if words.is_empty() => {
                return Err(problem(
                    "`directions` is empty; list forward and/or return, or leave it out for forward only"
                        .into(),
                ))
            }
            Some(words) => words
                .iter()
                .map(|word| {
                    word.parse::<Direction>().map_err(|_| {
                        problem(format!(
                            "`directions`: '{word}' is neither forward nor return"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let url = Url::parse(&raw.url)
            .map_err(|e| problem(format!("`url` is not an absolute URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(problem(format!(
                "`url` must be an http or https URL with a host, not a {} URL",
                url.scheme()
            )));
        }
        // reqwest sends userinfo as Basic credentials in place of the
        // configured bearer, and listings would have to hide it.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(problem(
                "`url` carries user:password@; put the subscriber's credential in \
                 `bearer_token` instead"
                    .into(),
            ));
        }
        if raw
            .bearer_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            return Err(problem("`bearer_token` is empty or only whitespace".into()));
        }
        let signing_secret = raw
            .signing_secret
            .map(|s| SigningSecret::parse(s.expose()))
            .transpose()
            .map_err(|e| problem(format!("`signing_secret`: {e}")))?;
        Ok(Self {
            name,
            on,
            directions,
            stores: raw.stores,
            url,
            bearer_token: raw.bearer_token,
            signing_secret,
        })
    }
}

/// A credential: never printed, not even by `{:?}`. Written as a string,
/// or as `{ file = "/run/secrets/x" }` to read it from a file (as
/// container secrets are mounted), its trailing newlines trimmed; a file
/// that is missing or empty stops the load, naming the path.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret, or { file = \"/path/to/secret\" }")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret(v.to_owned()))
    }

    // The environment source parses values that look like numbers or
    // booleans; a secret is their text.
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        use serde::de::Error;
        let mut path: Option<PathBuf> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "file" || path.is_some() {
                return Err(A::Error::custom(format!(
                    "a secret given as a table takes one key, `file`, not `{key}`"
                )));
            }
            path = Some(map.next_value()?);
        }
        let path = path.ok_or_else(|| A::Error::custom("a secret table needs `file`"))?;
        read_secret_file(&path).map_err(A::Error::custom)
    }
}

/// The secret a file holds, without its trailing newlines.
fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("secret file {} is empty", path.display()));
    }
    Ok(Secret(secret.to_owned()))
}

impl Secret {
    /// The secret itself, for the one place that compares or signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether this is one of the demo store's development values.
    pub fn is_development_value(&self) -> bool {
        self.0.starts_with(DEV_CREDENTIAL_PREFIX)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Settings {
    /// Loads the default config, then `file`, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As `load`, with the environment given: tests use it to stay
    /// independent of the process environment.
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SHIPGATE__"))
            .collect();
        let files = || {
            let mut builder = config::Config::builder().add_source(config::File::from_str(
                DEFAULT_CONFIG,
                config::FileFormat::Toml,
            ));
            if let Some(file) = file {
                builder = builder.add_source(config::File::from(file).required(true));
            }
            builder
        };
        // List-valued keys must be named for the environment source to split
        // them; store names are only known once the files are read.
        let mut store_names: std::collections::BTreeSet<String> = files()
            .build()?
            .get_table("stores")
            .map(|t| t.into_keys().collect())
            .unwrap_or_default();
        store_names.extend(env.keys().filter_map(|k| {
            let name = k.strip_prefix("SHIPGATE__STORES__")?.split("__").next()?;
            Some(name.to_ascii_lowercase())
        }));
        // A defined provider's secrets are a list too, under names only
        // the environment gives.
        let provider_secrets: Vec<String> = env
            .keys()
            .filter_map(|key| {
                let parts: Vec<&str> = key.split("__").collect();
                match parts[..] {
                    ["SHIPGATE", "STORES", store, "PROVIDERS", provider, "SECRETS"] => {
                        Some(format!(
                            "stores.{}.providers.{}.secrets",
                            store.to_ascii_lowercase(),
                            provider.to_ascii_lowercase()
                        ))
                    }
                    _ => None,
                }
            })
            .collect();
        let mut environment = config::Environment::with_prefix("SHIPGATE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .source(Some(env))
            .with_list_parse_key("admin.tokens")
            .with_list_parse_key("delivery.retry_schedule");
        for store in &store_names {
            for key in ["shopify.webhook_secrets", "shopify.access_tokens"] {
                environment = environment.with_list_parse_key(&format!("stores.{store}.{key}"));
            }
            for key in [
                "carriyo.api_keys",
                "carriyo.basic_auth",
                "carriyo.bearer_tokens",
            ] {
                environment = environment.with_list_parse_key(&format!("stores.{store}.{key}"));
            }
            environment =
                environment.with_list_parse_key(&format!("stores.{store}.redo.api_tokens"));
        }
        for key in provider_secrets {
            environment = environment.with_list_parse_key(&key);
        }
        let settings: Settings = files().add_source(environment).build()?.try_deserialize()?;
        settings.check()
    }

    /// Where the deployment's provider folders are: `providers.dir`, or
    /// the deprecated `status_maps.dir`.
    pub fn providers_dir(&self) -> Option<&Path> {
        self.providers
            .dir
            .as_deref()
            .or_else(|| self.status_maps.as_ref()?.dir.as_deref())
    }

    /// The stores that are switched on.
    pub fn enabled_stores(&self) -> impl Iterator<Item = (&String, &StoreSettings)> {
        self.stores.iter().filter(|(_, s)| s.enabled)
    }

    /// Every development credential still in use, by key, for the warning.
    pub fn development_credentials(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut check = |key: String, secrets: &[Secret]| {
            if secrets.iter().any(Secret::is_development_value) {
                found.push(key);
            }
        };
        let plain: Vec<Secret> = self
            .admin
            .tokens
            .iter()
            .filter_map(|t| match &t.credential {
                TokenCredential::Token(secret) => Some(secret.clone()),
                TokenCredential::Sha256(_) => None,
            })
            .collect();
        check("admin.tokens".into(), &plain);
        for (name, store) in self.enabled_stores() {
            if let Some(s) = &store.shopify {
                check(
                    format!("stores.{name}.shopify.webhook_secrets"),
                    &s.webhook_secrets,
                );
                check(
                    format!("stores.{name}.shopify.access_tokens"),
                    &s.access_tokens,
                );
            }
            if let Some(c) = &store.carriyo {
                check(
                    format!("stores.{name}.carriyo.{}", c.auth.key()),
                    c.auth.secrets(),
                );
            }
            if let Some(r) = &store.redo {
                check(format!("stores.{name}.redo.api_tokens"), &r.api_tokens);
            }
            for (provider, p) in &store.providers {
                check(
                    format!("stores.{name}.providers.{provider}.secrets"),
                    &p.secrets,
                );
            }
        }
        found
    }

    /// Checks what types alone cannot say.
    fn check(self) -> Result<Self, ConfigError> {
        if self.storage.partitions == 0 || self.storage.partitions > 1024 {
            return Err(invalid("storage.partitions", "must be between 1 and 1024"));
        }
        if self.storage.key_prefix.is_empty() || self.storage.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "storage.key_prefix",
                "must be non-empty and without braces",
            ));
        }
        if self.storage.redis_cluster && self.storage.backend != Backend::Redis {
            return Err(invalid(
                "storage.redis_cluster",
                "needs storage.backend = \"redis\"; the memory backend would ignore it",
            ));
        }
        if !(1..=MAX_BACKLOG).contains(&self.server.backlog) {
            return Err(invalid(
                "server.backlog",
                format!("must be between 1 and {MAX_BACKLOG}"),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.server.body_timeout.is_zero() {
            return Err(invalid("server.body_timeout", "must be longer than zero"));
        }
        if self.worker.batch_size == 0 {
            return Err(invalid("worker.batch_size", "must be at least 1"));
        }
        if !(0..=19).contains(&self.worker.nice) {
            return Err(invalid("worker.nice", "must be between 0 and 19"));
        }
        if self.worker.linger > MAX_LINGER {
            return Err(invalid("worker.linger", "must be at most 1s"));
        }
        if let (Some(old), Some(_)) = (&self.status_maps, &self.providers.dir) {
            if old.dir.is_some() {
                return Err(invalid(
                    "status_maps.dir",
                    "is the old name of providers.dir, which is set too; keep providers.dir",
                ));
            }
        }
        self.check_admin_tokens()?;
        self.check_automations()?;
        self.check_credentials()?;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (name, store) in self.enabled_stores() {
            let mut claim = |what: &str, id: &str, key: String| -> Result<(), ConfigError> {
                if id.trim().is_empty() {
                    return Err(invalid(key, "must not be empty"));
                }
                let tag = format!("{what}:{}", id.to_ascii_lowercase());
                if let Some(other) = seen.insert(tag, name.clone()) {
                    return Err(invalid(
                        key,
                        format!("'{id}' is also used by store `{other}`"),
                    ));
                }
                Ok(())
            };
            if let Some(s) = &store.shopify {
                claim(
                    "shop",
                    &s.shop_domain,
                    format!("stores.{name}.shopify.shop_domain"),
                )?;
            }
            if let Some(c) = &store.carriyo {
                claim(
                    "tenant",
                    &c.tenant_id,
                    format!("stores.{name}.carriyo.tenant_id"),
                )?;
            }
            if let Some(r) = &store.redo {
                claim("redo", &r.store_id, format!("stores.{name}.redo.store_id"))?;
            }
        }
        Ok(self)
    }
}

impl Settings {
    /// Every store's credentials: present where required, none empty or
    /// only whitespace, and none that finds its store shared with another
    /// store. A shared one would let a request found by its credential
    /// land in either store, whichever is looked up first, and one store's
    /// leak open both. Shopify's webhook secrets are the exception: Shopify
    /// signs every shop's webhooks with the app's one client secret, and
    /// the shop domain header, not the secret, finds the store.
    fn check_credentials(&self) -> Result<(), ConfigError> {
        // Each credential's first owner: the store and its key.
        let mut owners: BTreeMap<&str, (&str, String)> = BTreeMap::new();
        for (name, store) in self.enabled_stores() {
            // (key, its secrets, whether one is required, whether it finds the store)
            let mut lists: Vec<(String, &[Secret], bool, bool)> = Vec::new();
            if let Some(s) = &store.shopify {
                lists.push((
                    "shopify.webhook_secrets".into(),
                    &s.webhook_secrets,
                    true,
                    false,
                ));
                lists.push((
                    "shopify.access_tokens".into(),
                    &s.access_tokens,
                    false,
                    true,
                ));
            }
            if let Some(c) = &store.carriyo {
                lists.push((
                    format!("carriyo.{}", c.auth.key()),
                    c.auth.secrets(),
                    true,
                    true,
                ));
            }
            if let Some(r) = &store.redo {
                lists.push(("redo.api_tokens".into(), &r.api_tokens, true, true));
            }
            // The URL names the store, so a secret finds none: one sender
            // account may sign several stores' deliveries with one secret.
            for (provider, p) in store.providers.iter().filter(|(_, p)| p.enabled) {
                lists.push((
                    format!("providers.{provider}.secrets"),
                    &p.secrets,
                    true,
                    false,
                ));
            }
            for (key, secrets, required, finds_store) in lists {
                let key = format!("stores.{name}.{key}");
                if required && secrets.is_empty() {
                    return Err(invalid(key, "needs at least one non-empty secret"));
                }
                for (i, secret) in secrets.iter().enumerate() {
                    if secret.expose().trim().is_empty() {
                        return Err(invalid(
                            key,
                            format!("entry {i} is empty or only whitespace"),
                        ));
                    }
                    if !finds_store {
                        continue;
                    }
                    match owners.get(secret.expose()) {
                        Some((other, other_key)) if *other != name.as_str() => {
                            return Err(invalid(
                                key,
                                format!(
                                    "entry {i} is also a credential of store `{other}` \
                                     (`{other_key}`); each store needs its own, or its requests \
                                     could land in store `{other}`"
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            owners.insert(secret.expose(), (name, key.clone()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Ops tokens: none empty, none given twice (it would hold two
    /// scopes), and only enabled stores named.
    fn check_admin_tokens(&self) -> Result<(), ConfigError> {
        let mut digests: Vec<[u8; 32]> = Vec::new();
        for (i, token) in self.admin.tokens.iter().enumerate() {
            let key = format!("admin.tokens[{i}]");
            let digest = match &token.credential {
                TokenCredential::Token(secret) if secret.expose().trim().is_empty() => {
                    return Err(invalid(
                        key,
                        "an empty or whitespace-only token would let anyone in",
                    ))
                }
                TokenCredential::Token(secret) => Sha256::digest(secret.expose()).into(),
                TokenCredential::Sha256(digest) => *digest,
            };
            if let Some(first) = digests.iter().position(|d| *d == digest) {
                return Err(invalid(
                    key,
                    format!("the same token as admin.tokens[{first}]; give each token once"),
                ));
            }
            digests.push(digest);
            if let StoreScope::Only(stores) = &token.stores {
                let unknown: Vec<&str> = stores
                    .iter()
                    .filter(|s| !self.enabled_stores().any(|(name, _)| name == *s))
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    return Err(invalid(
                        format!("{key}.stores"),
                        format!(
                            "names '{}', which {} not enabled in [stores]",
                            unknown.join("', '"),
                            if unknown.len() == 1 { "is" } else { "are" }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What the automation rules and delivery settings need beyond types:
    /// unique rule names, known stores, usable limits.
    fn check_automations(&self) -> Result<(), ConfigError> {
        if self.core.stall_after.is_zero() {
            return Err(invalid("core.stall_after", "must be longer than zero"));
        }
        if self.delivery.timeout.is_zero() {
            return Err(invalid("delivery.timeout", "must be longer than zero"));
        }
        if self.delivery.concurrency == 0 {
            return Err(invalid("delivery.concurrency", "must be at least 1"));
        }
        let mut names = std::collections::BTreeSet::new();
        for rule in &self.automations {
            if !names.insert(rule.name.as_str()) {
                return Err(invalid(
                    "automations",
                    format!("two rules are named `{}`; names must be unique", rule.name),
                ));
            }
            if let Some(unknown) = rule
                .stores
                .iter()
                .find(|s| !self.enabled_stores().any(|(name, _)| name == *s))
            {
                return Err(invalid(
                    "automations",
                    format!(
                        "automation rule `{}`: `stores` names '{unknown}', which is not an enabled store",
                        rule.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| {
            humantime::parse_duration(text.trim()).map_err(|e| {
                serde::de::Error::custom(format!("'{text}' is not a duration like 5s or 30m: {e}"))
            })
        })
        .collect()
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("'{text}' is not a duration like 15s or 7d: {e}"))
    })
}

/// An http or https URL with a host, or unset (absent or empty).
fn proxy_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let url = Url::parse(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("'{text}' is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(serde::de::Error::custom(format!(
            "'{text}' must be an http or https URL with a host"
        )));
    }
    Ok(Some(url))
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let text = String::deserialize(d)?;
    parse_byte_size(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("'{text}' is not a size like 256KiB, 1MiB or 4096"))
    })
}

/// Parses `4096`, `256KiB`, `1MiB`, `64kB`, `1MB` into bytes.
pub fn parse_byte_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_default_config_loads_and_serves_the_demo_store_on_memory() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.server.body_limit, 256 * 1024);
        assert_eq!(s.storage.backend, Backend::Memory);
        assert_eq!(s.storage.dedup_ttl, Duration::from_secs(7 * 24 * 3600));
        let acme = &s.stores["acme"];
        assert_eq!(
            acme.shopify.as_ref().unwrap().shop_domain,
            "acme.myshopify.com"
        );
        assert!(!s.development_credentials().is_empty());
    }

    #[test]
    fn environment_overrides_files_and_splits_lists() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("SHIPGATE__SERVER__PORT", "9999"),
                ("SHIPGATE__STORAGE__BACKEND", "redis"),
                ("SHIPGATE__ADMIN__TOKENS", "a,b"),
                (
                    "SHIPGATE__STORES__ACME__SHOPIFY__WEBHOOK_SECRETS",
                    "new,old",
                ),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 9999);
        assert_eq!(s.storage.backend, Backend::Redis);
        let everywhere = |token: &str| AdminToken {
            credential: TokenCredential::Token(Secret::from(token)),
            stores: StoreScope::All,
            role: Role::Admin,
        };
        assert_eq!(s.admin.tokens, vec![everywhere("a"), everywhere("b")]);
        let secrets = &s.stores["acme"].shopify.as_ref().unwrap().webhook_secrets;
        assert_eq!(secrets, &vec![Secret::from("new"), Secret::from("old")]);
    }

    #[test]
    fn a_file_layers_over_the_defaults_and_can_switch_off_the_demo_store() {
        let dir = std::env::temp_dir().join(format!("shipgate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("prod.toml");
        std::fs::write(
            &file,
            "[server]\nport = 7000\n[stores.acme]\nenabled = false\n\
             [stores.north.carriyo]\ntenant_id = \"NORTH\"\napi_keys = [\"k1\"]\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(s.server.port, 7000);
        assert_eq!(s.server.host, "127.0.0.1");
        let enabled: Vec<_> = s.enabled_stores().map(|(n, _)| n.as_str()).collect();
        assert_eq!(enabled, ["north"]);
        assert_eq!(s.development_credentials(), ["admin.tokens"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("SHIPGATE__STORAGE__PARTITIONS", "0", "storage.partitions"),
            ("SHIPGATE__STORAGE__DEDUP_TTL", "a week", "dedup_ttl"),
            ("SHIPGATE__SERVER__BODY_LIMIT", "lots", "body_limit"),
            ("SHIPGATE__STORAGE__BACKEND", "postgres", "backend"),
            ("SHIPGATE__SERVER__BACKLOG", "0", "server.backlog"),
            ("SHIPGATE__SERVER__BACKLOG", "many", "backlog"),
            (
                "SHIPGATE__SERVER__MAX_CONNECTIONS",
                "0",
                "server.max_connections",
            ),
            (
                "SHIPGATE__SERVER__BODY_TIMEOUT",
                "0s",
                "server.body_timeout",
            ),
            ("SHIPGATE__DELIVERY__PROXY", "ftp://proxy", "proxy"),
            ("SHIPGATE__DELIVERY__PROXY", "not a url", "proxy"),
            ("SHIPGATE__WORKER__NICE", "20", "worker.nice"),
            ("SHIPGATE__WORKER__NICE", "-5", "worker.nice"),
            ("SHIPGATE__WORKER__LINGER", "2s", "worker.linger"),
            ("SHIPGATE__WORKER__LINGER", "soon", "linger"),
            (
                "SHIPGATE__STORAGE__REDIS_CLUSTER",
                "true",
                "storage.redis_cluster",
            ),
            (
                "SHIPGATE__STORES__ACME__CARRIYO__API_KEYS",
                "",
                "stores.acme.carriyo.api_keys",
            ),
        ];
        for (var, value, named) in cases {
            let err = Settings::load_with_env(None, env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(named), "{var}={value}: {err}");
        }
    }

    #[test]
    fn carriyo_schemes_and_time_zones_are_parsed() {
        let store = |pairs: &[(&str, &str)]| {
            let mut all = vec![("SHIPGATE__STORES__NORTH__CARRIYO__TENANT_ID", "NORTH")];
            all.extend_from_slice(pairs);
            Settings::load_with_env(None, env(&all))
                .map(|s| s.stores["north"].carriyo.clone().unwrap())
        };
        let acme = Settings::load_with_env(None, env(&[])).unwrap().stores["acme"]
            .carriyo
            .clone()
            .unwrap();
        assert!(
            matches!(&acme.auth, CarriyoAuth::Header { name, .. } if name.as_str() == "x-api-key")
        );
        assert_eq!(acme.time_zone, Tz::UTC);
        let named = store(&[
            ("SHIPGATE__STORES__NORTH__CARRIYO__API_KEYS", "k1,k2"),
            (
                "SHIPGATE__STORES__NORTH__CARRIYO__API_KEY_HEADER",
                "X-Carriyo-Key",
            ),
            ("SHIPGATE__STORES__NORTH__CARRIYO__TIME_ZONE", "Asia/Dubai"),
        ])
        .unwrap();
        assert!(
            matches!(&named.auth, CarriyoAuth::Header { name, values } if name.as_str() == "x-carriyo-key" && values.len() == 2)
        );
        assert_eq!(named.time_zone, chrono_tz::Asia::Dubai);
        let bearer = store(&[("SHIPGATE__STORES__NORTH__CARRIYO__BEARER_TOKENS", "t1")]).unwrap();
        assert!(matches!(bearer.auth, CarriyoAuth::Bearer(_)));
        let basic = store(&[("SHIPGATE__STORES__NORTH__CARRIYO__BASIC_AUTH", "u:p")]).unwrap();
        assert!(matches!(basic.auth, CarriyoAuth::Basic(_)));
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case; 6] = [
            (
                &[
                    ("SHIPGATE__STORES__NORTH__CARRIYO__API_KEYS", "k1"),
                    ("SHIPGATE__STORES__NORTH__CARRIYO__BEARER_TOKENS", "t1"),
                ],
                &["stores.north.carriyo", "`api_keys`, `bearer_tokens`"],
            ),
            (&[], &["stores.north.carriyo", "api_keys", "bearer_tokens"]),
            (
                &[("SHIPGATE__STORES__NORTH__CARRIYO__BASIC_AUTH", "nopassword")],
                &["stores.north.carriyo", "user:password"],
            ),
            (
                &[
                    ("SHIPGATE__STORES__NORTH__CARRIYO__BEARER_TOKENS", "t1"),
                    ("SHIPGATE__STORES__NORTH__CARRIYO__API_KEY_HEADER", "x-key"),
                ],
                &["stores.north.carriyo", "api_key_header"],
            ),
            (
                &[
                    ("SHIPGATE__STORES__NORTH__CARRIYO__API_KEYS", "k1"),
                    ("SHIPGATE__STORES__NORTH__CARRIYO__API_KEY_HEADER", "x key"),
                ],
                &["stores.north.carriyo.api_key_header", "'x key'"],
            ),
            (
                &[
                    ("SHIPGATE__STORES__NORTH__CARRIYO__API_KEYS", "k1"),
                    (
                        "SHIPGATE__STORES__NORTH__CARRIYO__TIME_ZONE",
                        "Mars/Olympus",
                    ),
                ],
                &["stores.north.carriyo.time_zone", "'Mars/Olympus'"],
            ),
        ];
        for (pairs, named) in cases {
            let err = store(pairs).unwrap_err().to_string();
            for part in named {
                assert!(err.contains(part), "{pairs:?}: {err}");
            }
        }
    }

    #[test]
    fn two_stores_cannot_share_a_shop_domain() {
        let err = Settings::load_with_env(
            None,
            env(&[
                (
                    "SHIPGATE__STORES__OTHER__SHOPIFY__SHOP_DOMAIN",
                    "ACME.myshopify.com",
                ),
                ("SHIPGATE__STORES__OTHER__SHOPIFY__WEBHOOK_SECRETS", "s"),
            ]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("also used by store `acme`"),
            "{err}"
        );
    }

    #[test]
    fn two_stores_cannot_share_a_credential_of_any_kind() {
        let other = |pairs: &[(&str, &str)]| {
            let mut all = vec![
                (
                    "SHIPGATE__STORES__ACME__SHOPIFY__WEBHOOK_SECRETS",
                    "a-secret",
                ),
                ("SHIPGATE__STORES__ACME__SHOPIFY__ACCESS_TOKENS", "a-token"),
                ("SHIPGATE__STORES__ACME__CARRIYO__API_KEYS", "a-key"),
                ("SHIPGATE__STORES__ACME__REDO__API_TOKENS", "a-redo"),
            ];
            all.extend_from_slice(pairs);
            Settings::load_with_env(None, env(&all))
        };
        let shopify = |secrets: &'static str, tokens: &'static str| {
            [
                (
                    "SHIPGATE__STORES__OTHER__SHOPIFY__SHOP_DOMAIN",
                    "o.myshopify.com",
                ),
                ("SHIPGATE__STORES__OTHER__SHOPIFY__WEBHOOK_SECRETS", secrets),
                ("SHIPGATE__STORES__OTHER__SHOPIFY__ACCESS_TOKENS", tokens),
            ]
        };
        let carriyo = |kind: &'static str, value: &'static str| {
            [
                ("SHIPGATE__STORES__OTHER__CARRIYO__TENANT_ID", "OTHER"),
                (kind, value),
            ]
        };
        let redo = |token: &'static str| {
            [
                ("SHIPGATE__STORES__OTHER__REDO__STORE_ID", "other-redo"),
                ("SHIPGATE__STORES__OTHER__REDO__API_TOKENS", token),
            ]
        };
        type Case = (Vec<(&'static str, &'static str)>, [&'static str; 2]);
        let cases: Vec<Case> = vec![
            (
                shopify("o-secret", "a-token").to_vec(),
                [
                    "stores.other.shopify.access_tokens",
                    "`stores.acme.shopify.access_tokens`",
                ],
            ),
            (
                carriyo("SHIPGATE__STORES__OTHER__CARRIYO__API_KEYS", "a-key").to_vec(),
                [
                    "stores.other.carriyo.api_keys",
                    "`stores.acme.carriyo.api_keys`",
                ],
            ),
            (
                carriyo("SHIPGATE__STORES__OTHER__CARRIYO__BEARER_TOKENS", "a-redo").to_vec(),
                [
                    "stores.other.carriyo.bearer_tokens",
                    "`stores.acme.redo.api_tokens`",
                ],
            ),
            (
                redo("a-token").to_vec(),
                [
                    "stores.other.redo.api_tokens",
                    "`stores.acme.shopify.access_tokens`",
                ],
            ),
        ];
        for (pairs, named) in cases {
            let err = other(&pairs).unwrap_err().to_string();
            for part in named.iter().chain(&["store `acme`"]) {
                assert!(err.contains(part), "{pairs:?}: {err}");
            }
            assert!(
                !err.contains("a-token") && !err.contains("a-secret"),
                "{err}"
            );
        }
        let pairs = [
            ("SHIPGATE__STORES__N__CARRIYO__TENANT_ID", "N"),
            ("SHIPGATE__STORES__N__CARRIYO__BASIC_AUTH", "carriyo:pw"),
            ("SHIPGATE__STORES__S__CARRIYO__TENANT_ID", "S"),
            ("SHIPGATE__STORES__S__CARRIYO__BASIC_AUTH", "carriyo:pw"),
        ];
        let err = other(&pairs).unwrap_err().to_string();
        assert!(
            err.contains("stores.s.carriyo.basic_auth") && err.contains("store `n`"),
            "{err}"
        );
        // One store may use one secret in two places: no request can
        // land in another store by it.
        let own = other(&[("SHIPGATE__STORES__ACME__REDO__API_TOKENS", "a-key")]);
        assert!(own.is_ok(), "{own:?}");
        // Shops of one Shopify app share its client secret; their shop
        // domains tell their webhooks apart.
        let one_app = other(&shopify("a-secret", "o-token"));
        assert!(one_app.is_ok(), "{one_app:?}");
    }

    #[test]
    fn blank_credentials_are_refused_naming_their_key() {
        for (key, value, named) in [
            (
                "SHIPGATE__STORES__ACME__REDO__API_TOKENS",
                "  ",
                "stores.acme.redo.api_tokens",
            ),
            (
                "SHIPGATE__STORES__ACME__SHOPIFY__ACCESS_TOKENS",
                "t, ",
                "stores.acme.shopify.access_tokens",
            ),
            (
                "SHIPGATE__STORES__ACME__CARRIYO__API_KEYS",
                " ",
                "stores.acme.carriyo.api_keys",
            ),
            (
                "SHIPGATE__STORES__ACME__SHOPIFY__WEBHOOK_SECRETS",
                "\t",
                "stores.acme.shopify.webhook_secrets",
            ),
            ("SHIPGATE__ADMIN__TOKENS", " ", "admin.tokens"),
        ] {
            let err = Settings::load_with_env(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(named) && err.contains("whitespace"),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains(DEV_CREDENTIAL_PREFIX), "{printed}");
    }

    fn with_rules(rules: &str, extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "shipgate-config-rules-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rules.toml");
        std::fs::write(&file, rules).unwrap();
        Settings::load_with_env(Some(&file), env(extra))
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn automations_core_and_delivery_have_their_defaults() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert!(s.automations.is_empty());
        assert_eq!(s.core.stall_after, Duration::from_secs(72 * 3600));
        assert!(s.core.derive_eta_events);
        assert_eq!(s.delivery.timeout, Duration::from_secs(15));
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(
            s.delivery.retry_schedule,
            [
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(1800),
                hours(2),
                hours(5),
                hours(10),
                hours(10)
            ]
        );
        assert!(!s.delivery.allow_private_targets);
    }

    #[test]
    fn the_retry_schedule_is_a_list_in_the_environment() {
        let s = Settings::load_with_env(
            None,
            env(&[("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "100ms,2s")]),
        )
        .unwrap();
        assert_eq!(
            s.delivery.retry_schedule,
            [Duration::from_millis(100), Duration::from_secs(2)]
        );
    }

    #[test]
    fn a_rule_is_parsed_with_its_words_url_and_secrets() {
        let s = with_rules(
            &format!(
                "[[automations]]\nname = \"delays\"\non = [\"delayed\", \"delivered\"]\n\
                 stores = [\"acme\"]\nurl = \"https://hooks.example.com/x\"\n\
                 bearer_token = \"tok\"\nsigning_secret = \"{SECRET}\"\n"
            ),
            &[],
        )
        .unwrap();
        let rule = &s.automations[0];
        assert_eq!(rule.name, "delays");
        assert_eq!(
            rule.on.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["delayed", "delivered"]
        );
        assert_eq!(rule.directions, [Direction::Forward], "forward by default");
        assert_eq!(rule.url.as_str(), "https://hooks.example.com/x");
        let printed = format!("{s:?}");
        for secret in ["tok\"", SECRET] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn a_rule_may_fire_on_returns_too() {
        let s = with_rules(
            "[[automations]]\nname = \"returns\"\non = [\"delivered\"]\n\
             directions = [\"forward\", \"return\"]\nurl = \"https://hooks.example.com/x\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.automations[0].directions,
            [Direction::Forward, Direction::Return]
        );
    }

    #[test]
    fn an_unknown_word_in_on_names_the_rule_and_the_word() {
        let err = with_rules(
            "[[automations]]\nname = \"tell-customer\"\non = [\"delayed\", \"shiped\"]\n\
             url = \"https://hooks.example.com/x\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("automation rule `tell-customer`"), "{err}");
        assert!(err.contains("'shiped'"), "{err}");
    }

    #[test]
    fn bad_rules_name_the_rule_and_what_is_wrong() {
        let rule = |body: &str| format!("[[automations]]\nname = \"r1\"\n{body}\n");
        let cases = [
            (rule("on = []\nurl = \"https://h.example/x\""), "`on` is empty"),
            (rule("on = [\"delivered\"]\nurl = \"ftp://h.example/x\""), "`url`"),
            (rule("on = [\"delivered\"]\nurl = \"not a url\""), "`url`"),
            (
                rule("on = [\"delivered\"]\nurl = \"https://h.example/x\"\nsigning_secret = \"plain\""),
                "`signing_secret`",
            ),
            (
                rule("on = [\"delivered\"]\nurl = \"https://h.example/x\"\nstores = [\"zeta\"]"),
                "'zeta'",
            ),
            (
                rule("on = [\"delivered\"]\nurl = \"https://h.example/x\"\ndirections = [\"reverse\"]"),
                "'reverse'",
            ),
            (
                rule("on = [\"delivered\"]\nurl = \"https://h.example/x\"\ndirections = []"),
                "`directions` is empty",
            ),
            (
                rule("on = [\"delivered\"]\nurl = \"https://user:pw@h.example/x\""),
                "`url` carries user:password@",
            ),
            (
                rule("on = [\"delivered\"]\nurl = \"https://user@h.example/x\""),
                "`url` carries user:password@",
            ),
            (
                rule("on = [\"delivered\"]\nurl = \"https://h.example/x\"\nbearer_token = \" \""),
                "`bearer_token` is empty",
            ),
        ];
        for (text, named) in cases {
            let err = with_rules(&text, &[]).unwrap_err().to_string();
            assert!(err.contains("r1") && err.contains(named), "{text}: {err}");
        }
        let twice = format!(
            "{}{}",
            rule("on = [\"delivered\"]\nurl = \"https://h.example/x\""),
            rule("on = [\"delayed\"]\nurl = \"https://h.example/y\"")
        );
        let err = with_rules(&twice, &[]).unwrap_err().to_string();
        assert!(err.contains("two rules are named `r1`"), "{err}");
    }

    #[test]
    fn admin_tokens_may_be_scoped_to_stores_and_roles() {
        let digest = hex::encode(Sha256::digest("op"));
        let s = with_rules(
            &format!(
                "[[admin.tokens]]\ntoken = \"r\"\nstores = [\"acme\"]\nrole = \"read\"\n\
                 [[admin.tokens]]\ntoken_sha256 = \"{digest}\"\nstores = \"*\"\nrole = \"operate\"\n"
            ),
            &[],
        )
        .unwrap();
        let [reader, operator] = s.admin.tokens.as_slice() else {
            panic!("two tokens: {:?}", s.admin.tokens);
        };
        assert_eq!(reader.credential, TokenCredential::Token(Secret::from("r")));
        assert_eq!(
            reader.stores,
            StoreScope::Only(["acme".to_owned()].into_iter().collect())
        );
        assert_eq!(reader.role, Role::Read);
        assert_eq!(
            operator.credential,
            TokenCredential::Sha256(Sha256::digest("op").into())
        );
        assert_eq!(operator.stores, StoreScope::All);
        assert_eq!(operator.role, Role::Operate);
        assert!(Role::Read < Role::Operate && Role::Operate < Role::Admin);
    }

    #[test]
    fn bad_admin_tokens_name_the_entry_and_what_is_wrong() {
        let entry = |body: &str| format!("[[admin.tokens]]\n{body}\n");
        let cases = [
            (
                entry("token = \"t\"\nstores = [\"acme\", \"zeta\"]\nrole = \"read\""),
                &["admin.tokens[0].stores", "'zeta'"][..],
            ),
            (
                entry("token_sha256 = \"abc\"\nstores = \"*\"\nrole = \"read\""),
                &["admin.tokens", "`token_sha256` 'abc'"],
            ),
            (
                entry("stores = \"*\"\nrole = \"read\""),
                &["admin.tokens", "set `token` or `token_sha256`"],
            ),
            (
                entry("token = \"t\"\nstores = []\nrole = \"read\""),
                &["admin.tokens", "`stores` is empty"],
            ),
            (
                entry("token = \"t\"\nstores = [\"*\", \"acme\"]\nrole = \"read\""),
                &["admin.tokens", "mixes"],
            ),
            (
                entry("token = \"t\"\nstores = \"*\"\nrole = \"root\""),
                &["admin.tokens", "root"],
            ),
            (
                format!(
                    "{}{}",
                    entry("token = \"t\"\nstores = \"*\"\nrole = \"read\""),
                    entry(&format!(
                        "token_sha256 = \"{}\"\nstores = [\"acme\"]\nrole = \"admin\"",
                        hex::encode(Sha256::digest("t"))
                    ))
                ),
                &["admin.tokens[1]", "admin.tokens[0]"],
            ),
        ];
        for (text, named) in cases {
            let err = with_rules(&text, &[]).unwrap_err().to_string();
            for part in named {
                assert!(err.contains(part), "{text}: {err}");
            }
        }
    }

    #[test]
    fn secrets_may_come_from_files_trimmed_and_never_empty() {
        let dir = std::env::temp_dir().join(format!(
            "shipgate-config-secrets-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("redo");
        std::fs::write(&token, "s3cret\n").unwrap();
        let admin = dir.join("admin");
        std::fs::write(&admin, "adm1n\r\n").unwrap();
        let s = with_rules(
            &format!(
                "[admin]\ntokens = [{{ file = \"{}\" }}]\n[stores.acme.redo]\n\
                 api_tokens = [{{ file = \"{}\" }}, \"inline\"]\n",
                admin.display(),
                token.display()
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            s.admin.tokens[0].credential,
            TokenCredential::Token(Secret::from("adm1n"))
        );
        assert_eq!(
            s.stores["acme"].redo.as_ref().unwrap().api_tokens,
            [Secret::from("s3cret"), Secret::from("inline")]
        );
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let missing = dir.join("missing");
        for (path, problem) in [(&empty, "is empty"), (&missing, "cannot read")] {
            let err = with_rules(
                &format!(
                    "[stores.acme.redo]\napi_tokens = [{{ file = \"{}\" }}]\n",
                    path.display()
                ),
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("stores.acme.redo.api_tokens"), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(problem), "{err}");
        }
    }

    #[test]
    fn defined_providers_take_secrets_per_store_and_the_old_maps_key_still_works() {
        let load = |pairs: &[(&str, &str)]| Settings::load_with_env(None, env(pairs));
        let settings = load(&[
            (
                "SHIPGATE__STORES__ACME__PROVIDERS__EASYPOST__SECRETS",
                "new,old",
            ),
            (
                "SHIPGATE__STORES__ACME__PROVIDERS__AFTERSHIP__TIME_ZONE",
                "America/New_York",
            ),
            ("SHIPGATE__STATUS_MAPS__DIR", "/etc/maps"),
        ])
        .unwrap();
        let easypost = &settings.stores["acme"].providers["easypost"];
        let secrets: Vec<&str> = easypost.secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["new", "old"]);
        assert!(easypost.enabled);
        let aftership = &settings.stores["acme"].providers["aftership"];
        assert_eq!(
            aftership.time_zone,
            "America/New_York".parse::<Tz>().unwrap()
        );
        assert_eq!(settings.providers_dir(), Some(Path::new("/etc/maps")));
        let both = load(&[
            ("SHIPGATE__STATUS_MAPS__DIR", "/etc/maps"),
            ("SHIPGATE__PROVIDERS__DIR", "/etc/providers"),
        ])
        .unwrap_err();
        assert!(both.to_string().contains("status_maps.dir"), "{both}");
        let blank =
            load(&[("SHIPGATE__STORES__ACME__PROVIDERS__EASYPOST__SECRETS", " ")]).unwrap_err();
        assert!(
            blank
                .to_string()
                .contains("stores.acme.providers.easypost.secrets"),
            "{blank}"
        );
        let zone = load(&[(
            "SHIPGATE__STORES__ACME__PROVIDERS__AFTERSHIP__TIME_ZONE",
            "Mars/Base",
        )])
        .unwrap_err();
        assert!(zone.to_string().contains("Mars/Base"), "{zone}");
    }

    #[test]
    fn store_limits_are_parsed_and_bad_ones_name_their_key() {
        let load = |pairs: &[(&str, &str)]| Settings::load_with_env(None, env(pairs));
        let settings = load(&[]).unwrap();
        assert_eq!(settings.stores["acme"].limits, None, "no limit by default");
        let settings = load(&[
            ("SHIPGATE__STORES__ACME__LIMITS__RATE", "4"),
            ("SHIPGATE__STORES__ACME__LIMITS__BURST", "10"),
        ])
        .unwrap();
        assert_eq!(
            settings.stores["acme"].limits,
            Some(RateLimit {
                rate: 4.0,
                interval: Duration::from_millis(250),
                burst: 10
            })
        );
        let settings = load(&[("SHIPGATE__STORES__ACME__LIMITS__RATE", "2.5")]).unwrap();
        let limits = settings.stores["acme"].limits.unwrap();
        assert_eq!(
            (limits.interval, limits.burst),
            (Duration::from_millis(400), 3)
        );
        for (rate, burst, named) in [
            ("0", "1", "rate 0"),
            ("-1", "1", "rate -1"),
            ("2000000", "1", "rate 2000000"),
            ("1", "0", "burst 0"),
        ] {
            let err = load(&[
                ("SHIPGATE__STORES__ACME__LIMITS__RATE", rate),
                ("SHIPGATE__STORES__ACME__LIMITS__BURST", burst),
            ])
            .unwrap_err()
            .to_string();
            assert!(err.contains(named) && err.contains("limits"), "{err}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("256KiB"), Some(262_144));
        assert_eq!(parse_byte_size("1MiB"), Some(1_048_576));
        assert_eq!(parse_byte_size("64kB"), Some(64_000));
        assert_eq!(parse_byte_size("4096"), Some(4096));
        assert_eq!(parse_byte_size("12 parsecs"), None);
        assert_eq!(parse_byte_size(""), None);
    }
}
