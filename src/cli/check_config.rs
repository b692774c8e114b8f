//! `shipgate check-config`: every problem in the configuration and the
//! status maps, each with where it is, in one run.
//!
//! It uses the server's own loaders so it can never disagree with what
//! `shipgate serve` would do. Those loaders stop at the first problem; to
//! find the next one, the offending key (or status-map line) is set aside
//! and the load repeated. Problems that setting a key aside causes (its
//! table now lacks a field) are not reported.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use actix_web::http::header::HeaderMap;
use chrono_tz::Tz;

use crate::canonical::{EventKind, Provider};
use crate::config::{ConfigError, Settings};
use crate::providers::defined::{self, Definition, Loaded, Reading, Sample};
use crate::providers::status_map::{StatusMap, StatusMaps};

/// More rounds than any real file has problems; a guard against a loader
/// that keeps failing on a key it cannot be rid of.
const MAX_ROUNDS: usize = 100;

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A config key (`storage.partitions`), a file, or `file:line`.
    pub place: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Every problem in the layered configuration (`file` over the defaults,
/// then `env`) and in the status maps it points to.
pub fn find_problems(file: Option<&Path>, env: Vec<(String, String)>) -> Vec<Problem> {
    check(file, env).problems
}

/// What `check-config` found: the problems, and what each provider
/// definition's samples become.
#[derive(Debug, Default)]
pub struct Checked {
    pub problems: Vec<Problem>,
    /// One line per sample: the sample's file and its reading.
    pub readings: Vec<String>,
}

/// [`find_problems`], with the definitions' samples read.
pub fn check(file: Option<&Path>, env: Vec<(String, String)>) -> Checked {
    let scratch = Scratch::new();
    let mut problems = Vec::new();
    let settings = config_problems(file, env, &scratch, &mut problems);
    let dir = settings
        .as_ref()
        .and_then(|s| s.providers_dir().map(Path::to_path_buf));
    problems.extend(status_map_problems(dir.as_deref(), &scratch));
    let mut readings = Vec::new();
    match defined::load_all(dir.as_deref()) {
        Err(e) => problems.push(Problem {
            place: format!("{}:{}", e.file, e.line),
            message: e.problem,
        }),
        Ok(loaded) => {
            for one in &loaded {
                readings.extend(one.samples.iter().map(|s| reading(&one.definition, s)));
            }
            if let Some(settings) = &settings {
                problems.extend(unknown_providers(settings, &loaded));
            }
        }
    }
    Checked { problems, readings }
}

/// What a definition makes of one of its samples, in one line.
fn reading(definition: &Definition, sample: &Sample) -> String {
    // The store is the URL's, unknown here; its zone is taken as UTC.
    let read = definition.read("", Tz::UTC, &HeaderMap::new(), &sample.body);
    let what = match read {
        Ok(Reading::News(o)) => {
            let mut line = format!(
                "store from the URL /webhooks/{}/{{store}}, order {}, fulfillment {}, {} {} ('{}')",
                definition.name.as_str(),
                o.key.order_ref,
                o.key.fulfillment_ref,
                o.kind.label(),
                kind_word(o.kind),
                o.raw_status
            );
            if let Some(at) = &o.occurred_at {
                line.push_str(&format!(", at {} (from {})", at.at.to_rfc3339(), at.field));
            }
            if let Some(eta) = o.estimated_delivery {
                line.push_str(&format!(", ETA {eta}"));
            }
            line
        }
        Ok(Reading::Ignored { event_type }) => format!("ignored: event type '{event_type}'"),
        Err(e) => format!("refused: {e} (pointers in {})", definition.file),
    };
    format!("{}: {} -> {what}", sample.file, definition.name.as_str())
}

/// The canonical word of an event kind, if it has one.
fn kind_word(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Status(s) => s.as_str(),
        EventKind::Event(e) => e.as_str(),
        EventKind::Unmapped | EventKind::Details | EventKind::Retraction => "-",
    }
}

/// Every `[stores.NAME.providers.PROVIDER]` that names no definition.
fn unknown_providers(settings: &Settings, loaded: &[Loaded]) -> Vec<Problem> {
    let defined: Vec<&str> = loaded.iter().map(|l| l.definition.name.as_str()).collect();
    defined::undefined_providers(settings, &defined)
        .into_iter()
        .map(|u| Problem {
            place: format!("config key `{}`", u.key),
            message: u.problem,
        })
        .collect()
}

/// A private directory for the edited copies the loaders read; removed
/// when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "shipgate-check-config-{}",
            uuid::Uuid::now_v7().simple()
        )))
    }

    /// Writes `text` at `relative` inside the directory.
    fn write(&self, relative: &Path, text: &str) -> std::io::Result<PathBuf> {
        let path = self.0.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Nothing to do if it was never created.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads the configuration again and again, setting aside each key at
/// fault; answers the settings once they load.
fn config_problems(
    file: Option<&Path>,
    mut env: Vec<(String, String)>,
    scratch: &Scratch,
    problems: &mut Vec<Problem>,
) -> Option<Settings> {
    let mut layer = match file.map(read_layer).transpose() {
        Ok(layer) => layer,
        Err(problem) => {
            problems.push(problem);
            return None;
        }
    };
    let mut set_aside: BTreeSet<String> = BTreeSet::new();
    for _ in 0..MAX_ROUNDS {
        let copy = match (file, &layer) {
            (Some(file), Some(table)) => {
                let name = file.file_name().unwrap_or(file.as_os_str());
                match toml::to_string(table)
                    .map_err(std::io::Error::other)
                    .and_then(|text| scratch.write(Path::new(name), &text))
                {
                    Ok(copy) => Some(copy),
                    Err(e) => {
                        problems.push(Problem {
                            place: "check-config".into(),
                            message: format!("cannot write a scratch copy: {e}"),
                        });
                        return None;
                    }
                }
            }
            _ => None,
        };
        let error = match Settings::load_with_env(copy.as_deref(), env.clone()) {
            Ok(settings) => return Some(settings),
            Err(error) => error,
        };
        let Some(fault) = Fault::of(&error) else {
            problems.push(Problem {
                place: file.map_or("configuration".into(), |f| f.display().to_string()),
                message: error.to_string(),
            });
            return None;
        };
        let caused_by_us = fault.missing_field.as_ref().is_some_and(|field| {
            let missing = join_key(&fault.key, field);
            set_aside
                .iter()
                .any(|gone| missing == *gone || missing.starts_with(&format!("{gone}.")))
        });
        let removed_from_file = layer
            .as_mut()
            .is_some_and(|table| remove_key(table, &fault.key));
        let (from_env, rest): (Vec<_>, Vec<_>) = env
            .into_iter()
            .partition(|(name, _)| env_names_key(name, &fault.key));
        env = rest;
        if !caused_by_us {
            let source = match (from_env.first(), file) {
                (Some((name, _)), _) => format!(" (set by {name})"),
                (None, Some(file)) if removed_from_file => format!(" (in {})", file.display()),
                _ => String::new(),
            };
            problems.push(Problem {
                place: format!("config key `{}`{source}", fault.key),
                message: fault.message,
            });
        }
        if !removed_from_file && from_env.is_empty() {
            // The fault lies in a default or in how layers combine, and
            // setting nothing aside would only repeat it.
            return None;
        }
        set_aside.insert(fault.key);
    }
    None
}

/// The user's file as a TOML table, or the problem reading it.
fn read_layer(file: &Path) -> Result<toml::Table, Problem> {
    let place = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| Problem {
        place: place.clone(),
        message: format!("cannot read: {e}"),
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        let line = e.span().map_or(1, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        Problem {
            place: format!("{place}:{line}"),
            message: format!("not valid TOML: {}", one_line(e.message())),
        }
    })
}

/// Which key a load failed on, and what is wrong with it.
struct Fault {
    /// The key to set aside: the bad value, the unknown key, or the table
    /// that lacks a field.
    key: String,
    /// Set when a table lacks this field.
    missing_field: Option<String>,
    /// What is wrong, without the key (the place says it).
    message: String,
}

impl Fault {
    fn of(error: &ConfigError) -> Option<Self> {
        match error {
            ConfigError::Invalid { key, problem } => Some(Self {
                key: without_index(key),
                missing_field: None,
                message: problem.clone(),
            }),
            ConfigError::Load(error) => Self::of_load(error, None),
        }
    }

    fn of_load(error: &config::ConfigError, at: Option<&str>) -> Option<Self> {
        let plain = |key: &str, message: String| {
            Some(Self {
                key: without_index(key),
                missing_field: None,
                message,
            })
        };
        match error {
            config::ConfigError::Type {
                key: Some(key),
                unexpected,
                expected,
                ..
            } => plain(
                key,
                format!("invalid type: {unexpected}, expected {expected}"),
            ),
            config::ConfigError::At {
                error,
                key: Some(key),
                ..
            } => Self::of_load(error, Some(key)),
            config::ConfigError::NotFound(key) => {
                let key = without_index(key);
                let (table, field) = key.rsplit_once('.').unwrap_or(("", &key));
                Some(Self {
                    key: table.to_owned(),
                    missing_field: Some(field.to_owned()),
                    message: format!("missing field `{field}`"),
                })
            }
            config::ConfigError::Message(message) => {
                let parent = at.map(without_index).unwrap_or_default();
                if let Some(field) = quoted_after(message, "unknown field ") {
                    plain(&join_key(&parent, &field), message.clone())
                } else if let Some(field) = quoted_after(message, "missing field ") {
                    Some(Self {
                        key: parent,
                        missing_field: Some(field),
                        message: message.clone(),
                    })
                } else {
                    (!parent.is_empty()).then(|| Self {
                        key: parent,
                        missing_field: None,
                        message: message.clone(),
                    })
                }
            }
            other => at.and_then(|key| plain(key, other.to_string())),
        }
    }
}

/// The name serde quotes after `prefix`: ``unknown field `prot` `` → `prot`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('`')?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// Parser messages can span lines; a problem is printed on one.
fn one_line(message: &str) -> String {
    message.trim().lines().collect::<Vec<_>>().join("; ")
}

/// `admin.tokens[0]` → `admin.tokens`: a list is set aside whole.
fn without_index(key: &str) -> String {
    key.find('[').map_or(key, |i| &key[..i]).to_owned()
}

fn join_key(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// Removes `key` (dotted) from `table`; false if it was not there.
fn remove_key(table: &mut toml::Table, key: &str) -> bool {
    match key.split_once('.') {
        None => table.remove(key).is_some(),
        Some((head, rest)) => match table.get_mut(head) {
            Some(toml::Value::Table(inner)) => remove_key(inner, rest),
            _ => false,
        },
    }
}

/// Whether environment variable `name` sets `key` or something inside it.
fn env_names_key(name: &str, key: &str) -> bool {
    let Some(rest) = name.strip_prefix("SHIPGATE__") else {
        return false;
    };
    let dotted = rest.to_ascii_lowercase().replace("__", ".");
    dotted == key || dotted.starts_with(&format!("{key}."))
}

/// Every problem in the status maps of `dir`, line by line: a bad line is
/// blanked (keeping the numbering) and the file parsed again.
fn status_map_problems(dir: Option<&Path>, scratch: &Scratch) -> Vec<Problem> {
    let Some(dir) = dir else {
        // The built-in maps are checked by the build's own tests.
        return Vec::new();
    };
    if !dir.is_dir() {
        return vec![Problem {
            place: "config key `providers.dir`".into(),
            message: format!("'{}' is not a directory", dir.display()),
        }];
    }
    let mut problems = Vec::new();
    for provider in Provider::ALL {
        let relative = Path::new(provider.as_str()).join("status_map.toml");
        let path = dir.join(&relative);
        if !path.exists() {
            continue;
        }
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Problem {
                    place: name,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for _ in 0..=lines.len() {
            let Err(e) = StatusMap::parse(&name, &lines.join("\n")) else {
                break;
            };
            let message = if e.problem.trim().is_empty() {
                "not valid TOML".to_owned()
            } else {
                e.problem
            };
            problems.push(Problem {
                place: format!("{}:{}", e.file, e.line),
                message: one_line(&message),
            });
            match lines.get_mut(e.line.wrapping_sub(1)) {
                Some(line) if !line.trim().is_empty() => line.clear(),
                _ => break,
            }
        }
        // What only the whole set checks (a table an adapter needs): load
        // this provider's cleaned map alone, the others built in, so any
        // problem found is this file's.
        let maps = scratch.0.join("maps");
        match scratch.write(&Path::new("maps").join(&relative), &lines.join("\n")) {
            Ok(copy) => {
                if let Err(e) = StatusMaps::load(Some(&maps)) {
                    problems.push(Problem {
                        place: format!("{name}:{}", e.line),
                        message: e.problem,
                    });
                }
                let _ = std::fs::remove_file(&copy);
            }
            Err(e) => problems.push(Problem {
                place: name,
                message: format!("cannot write a scratch copy to check it whole: {e}"),
            }),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_read_from_messages() {
        let message = "unknown field `prot`, expected one of `host`, `port`";
        assert_eq!(quoted_after(message, "unknown field "), Some("prot".into()));
        assert_eq!(
            quoted_after("missing field `api_keys`", "missing field "),
            Some("api_keys".into())
        );
        assert_eq!(quoted_after("invalid type", "unknown field "), None);
    }

    #[test]
    fn keys_are_removed_from_tables_and_the_environment() {
        let mut table: toml::Table = "[stores.north.carriyo]\ntenant_id = 'N'\napi_keys = []\n"
            .parse()
            .unwrap();
        assert!(remove_key(&mut table, "stores.north.carriyo.api_keys"));
        assert!(!remove_key(&mut table, "stores.north.carriyo.api_keys"));
        assert!(remove_key(&mut table, "stores.north"));
        assert!(env_names_key(
            "SHIPGATE__STORES__NORTH__CARRIYO__API_KEYS",
            "stores.north"
        ));
        assert!(!env_names_key(
            "SHIPGATE__STORES__NORTHERN__REDO__STORE_ID",
            "stores.north"
        ));
        assert_eq!(without_index("admin.tokens[0]"), "admin.tokens");
    }
}
