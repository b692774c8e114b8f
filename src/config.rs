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
    pub status_maps: StatusMapSettings,
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
    /// The nice value (0 to 19) of the thread that applies the log and runs
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
    pub tokens: Vec<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMapSettings {
    /// A directory with `<provider>/status_map.toml` files that replace the
    /// built-in maps; empty for the built-in ones.
    pub dir: Option<PathBuf>,
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
    /// The URL may carry a password: printed masked, like the secrets.
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
        if raw
            .bearer_token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            return Err(problem("`bearer_token` is empty".into()));
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

/// A credential: never printed, not even by `{:?}`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

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
        let settings: Settings = files().add_source(environment).build()?.try_deserialize()?;
        settings.check()
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
        check("admin.tokens".into(), &self.admin.tokens);
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
        if self.worker.batch_size == 0 {
            return Err(invalid("worker.batch_size", "must be at least 1"));
        }
        if !(0..=19).contains(&self.worker.nice) {
            return Err(invalid("worker.nice", "must be between 0 and 19"));
        }
        if self.worker.linger > MAX_LINGER {
            return Err(invalid("worker.linger", "must be at most 1s"));
        }
        if self.admin.tokens.iter().any(|t| t.expose().is_empty()) {
            return Err(invalid(
                "admin.tokens",
                "an empty token would let anyone in",
            ));
        }
        self.check_automations()?;
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
            let need = |key: String, secrets: &[Secret]| -> Result<(), ConfigError> {
                if secrets.is_empty() || secrets.iter().any(|s| s.expose().is_empty()) {
                    return Err(invalid(key, "needs at least one non-empty secret"));
                }
                Ok(())
            };
            if let Some(s) = &store.shopify {
                claim(
                    "shop",
                    &s.shop_domain,
                    format!("stores.{name}.shopify.shop_domain"),
                )?;
                need(
                    format!("stores.{name}.shopify.webhook_secrets"),
                    &s.webhook_secrets,
                )?;
            }
            if let Some(c) = &store.carriyo {
                claim(
                    "tenant",
                    &c.tenant_id,
                    format!("stores.{name}.carriyo.tenant_id"),
                )?;
                need(
                    format!("stores.{name}.carriyo.{}", c.auth.key()),
                    c.auth.secrets(),
                )?;
            }
            if let Some(r) = &store.redo {
                claim("redo", &r.store_id, format!("stores.{name}.redo.store_id"))?;
                need(format!("stores.{name}.redo.api_tokens"), &r.api_tokens)?;
            }
        }
        Ok(self)
    }
}

impl Settings {
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
        assert_eq!(s.admin.tokens, vec![Secret::from("a"), Secret::from("b")]);
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
                 stores = [\"acme\"]\nurl = \"https://u:pw123@hooks.example.com/x\"\n\
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
        assert_eq!(rule.url.as_str(), "https://u:pw123@hooks.example.com/x");
        let printed = format!("{s:?}");
        for secret in ["tok\"", SECRET, "pw123"] {
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
    fn byte_sizes() {
        assert_eq!(parse_byte_size("256KiB"), Some(262_144));
        assert_eq!(parse_byte_size("1MiB"), Some(1_048_576));
        assert_eq!(parse_byte_size("64kB"), Some(64_000));
        assert_eq!(parse_byte_size("4096"), Some(4096));
        assert_eq!(parse_byte_size("12 parsecs"), None);
        assert_eq!(parse_byte_size(""), None);
    }
}
