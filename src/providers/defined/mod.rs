//! Providers as data: a sender described by `providers/NAME/provider.toml`
//! (how it authenticates, where its delivery id and each canonical field
//! are, as JSON Pointers, and what it expects back) with its
//! `status_map.toml` and `samples/` beside it. The definitions shipped in
//! the repository's `providers/` are compiled in; `providers.dir` adds
//! more, or replaces a shipped one, without a rebuild. Every definition is
//! checked at start-up: each of its pointers must reach a value in at
//! least one of its samples.

mod adapter;
pub mod auth;
mod definition;
mod layout;
pub mod pointer;

pub use adapter::Reading;
pub use definition::{Answer, Definition, DefinitionError, DeliveryId, EventTypes, Fields};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::status_map::StatusMap;
use crate::canonical::Provider;
use crate::config::Settings;

/// A sender compiled in from the repository's `providers/` folder.
struct Shipped {
    folder: &'static str,
    definition: &'static str,
    status_map: &'static str,
    samples: &'static [(&'static str, &'static str)],
}

/// Written by build.rs: one [`Shipped`] per `providers/*/provider.toml`.
const SHIPPED: &[Shipped] = include!(concat!(env!("OUT_DIR"), "/shipped_providers.rs"));

/// One sample delivery of a definition's `samples/`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where it was read from, for messages.
    pub file: String,
    pub body: Vec<u8>,
}

/// A definition with its samples, as `check-config` shows them.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub definition: Arc<Definition>,
    pub samples: Vec<Sample>,
}

/// Every data-defined provider this process serves, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_name: BTreeMap<&'static str, Arc<Definition>>,
}

impl Catalog {
    /// The shipped definitions, then those under `dir` (a definition
    /// there named like a shipped one replaces it); each checked.
    pub fn load(dir: Option<&Path>) -> Result<Self, DefinitionError> {
        load_all(dir).map(|loaded| Self::of(&loaded))
    }

    /// The catalog of definitions already loaded (see [`load_all`]).
    pub fn of(loaded: &[Loaded]) -> Self {
        let by_name = loaded
            .iter()
            .map(|l| (l.definition.name.as_str(), Arc::clone(&l.definition)))
            .collect();
        Self { by_name }
    }

    /// The definition of provider `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Definition>> {
        self.by_name.get(name)
    }

    /// The built-in providers, then each defined here, by name: what
    /// stats, metrics and the dashboard list.
    pub fn providers(&self) -> Vec<Provider> {
        Provider::ALL
            .into_iter()
            .chain(self.iter().map(|d| d.provider()))
            .collect()
    }

    /// Every definition, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Definition>> {
        self.by_name.values()
    }
}

/// A `[stores.NAME.providers.PROVIDER]` table that names no definition:
/// its config key and what is wrong, for start-up and `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndefinedProvider {
    pub key: String,
    pub problem: String,
}

/// Every store's provider table whose provider is none of `defined`.
pub fn undefined_providers(settings: &Settings, defined: &[&str]) -> Vec<UndefinedProvider> {
    settings
        .stores
        .iter()
        .flat_map(|(store, s)| s.providers.keys().map(move |p| (store, p)))
        .filter(|(_, provider)| !defined.contains(&provider.as_str()))
        .map(|(store, provider)| UndefinedProvider {
            key: format!("stores.{store}.providers.{provider}"),
            problem: format!(
                "no provider '{provider}' is defined (defined: {}); a definition is a \
                 providers.dir folder with a provider.toml",
                defined.join(", ")
            ),
        })
        .collect()
}

/// Every definition with its samples, checked, by name.
pub fn load_all(dir: Option<&Path>) -> Result<Vec<Loaded>, DefinitionError> {
    let mut loaded: BTreeMap<&'static str, Loaded> = BTreeMap::new();
    for shipped in SHIPPED {
        let folder = format!("providers/{}", shipped.folder);
        let samples = shipped
            .samples
            .iter()
            .map(|(name, body)| Sample {
                file: format!("{folder}/samples/{name}"),
                body: body.as_bytes().to_vec(),
            })
            .collect();
        let one = build(&folder, shipped.definition, shipped.status_map, samples)?;
        loaded.insert(one.definition.name.as_str(), one);
    }
    let mut mounted: BTreeMap<&'static str, String> = BTreeMap::new();
    for folder in dir.map(mounted_folders).transpose()?.unwrap_or_default() {
        let one = read_folder(&folder)?;
        let definition = &one.definition;
        let name = definition.name.as_str();
        if let Some(other) = mounted.insert(name, definition.file.clone()) {
            return Err(DefinitionError {
                file: definition.file.clone(),
                line: definition.name_line,
                problem: format!("key `name`: provider '{name}' is also defined by {other}"),
            });
        }
        if loaded.contains_key(name) {
            tracing::info!(provider = name, file = %definition.file, "replaces the shipped definition");
        }
        loaded.insert(name, one);
    }
    Ok(loaded.into_values().collect())
}

/// The folders of `dir` that hold a `provider.toml`, sorted.
fn mounted_folders(dir: &Path) -> Result<Vec<std::path::PathBuf>, DefinitionError> {
    let unreadable = |e: std::io::Error| DefinitionError {
        file: dir.display().to_string(),
        line: 1,
        problem: format!("cannot read the providers folder: {e}"),
    };
    layout::definition_folders(dir).map_err(unreadable)
}

/// A mounted folder's definition, map and samples.
fn read_folder(folder: &Path) -> Result<Loaded, DefinitionError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| DefinitionError {
            file: path.display().to_string(),
            line: 1,
            problem: format!("cannot read: {e}"),
        })
    };
    let text = |path: &Path| {
        read(path).and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| DefinitionError {
                file: path.display().to_string(),
                line: 1,
                problem: "is not UTF-8 text".into(),
            })
        })
    };
    let definition = text(&folder.join("provider.toml"))?;
    let status_map = text(&folder.join("status_map.toml"))?;
    let samples = layout::sample_files(folder)
        .iter()
        .map(|path| {
            Ok(Sample {
                file: path.display().to_string(),
                body: read(path)?,
            })
        })
        .collect::<Result<Vec<_>, DefinitionError>>()?;
    build(
        &folder.display().to_string(),
        &definition,
        &status_map,
        samples,
    )
}

/// Parses a definition and its map, and checks every pointer against the
/// samples.
fn build(
    folder: &str,
    definition: &str,
    status_map: &str,
    samples: Vec<Sample>,
) -> Result<Loaded, DefinitionError> {
    let map_file = format!("{folder}/status_map.toml");
    let map = StatusMap::parse(&map_file, status_map).map_err(|e| DefinitionError {
        file: e.file,
        line: e.line,
        problem: e.problem,
    })?;
    let file = format!("{folder}/provider.toml");
    let definition = definition::Definition::parse(&file, definition, map)?;
    if samples.is_empty() {
        return Err(DefinitionError {
            file,
            line: 1,
            problem: format!(
                "{folder}/samples/ holds no *.json sample; each pointer is checked against the \
                 samples, so give at least one real delivery"
            ),
        });
    }
    let bodies = samples
        .iter()
        .map(|s| {
            serde_json::from_slice::<serde_json::Value>(&s.body).map_err(|e| DefinitionError {
                file: s.file.clone(),
                line: e.line(),
                problem: format!("the sample is not valid JSON: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (key, pointer) in definition.pointers() {
        if !bodies.iter().any(|body| pointer.find(body).is_some()) {
            return Err(DefinitionError {
                file: file.clone(),
                line: pointer.line(),
                problem: format!(
                    "key `{key}`: pointer '{pointer}' reaches a value in none of the {} samples \
                     in {folder}/samples/",
                    bodies.len()
                ),
            });
        }
    }
    Ok(Loaded {
        definition: Arc::new(definition),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{EventKind, ShipmentStatus};
    use actix_web::http::header::HeaderMap;
    use chrono_tz::Tz;

    fn shipped(name: &str) -> Loaded {
        load_all(None)
            .unwrap()
            .into_iter()
            .find(|l| l.definition.name.as_str() == name)
            .unwrap()
    }

    fn readings(name: &str) -> Vec<(String, Reading)> {
        let loaded = shipped(name);
        loaded
            .samples
            .iter()
            .map(|s| {
                let read = loaded
                    .definition
                    .read("acme", Tz::UTC, &HeaderMap::new(), &s.body)
                    .unwrap_or_else(|e| panic!("{}: {e}", s.file));
                (s.file.rsplit('/').next().unwrap().to_owned(), read)
            })
            .collect()
    }

    fn news<'r>(all: &'r [(String, Reading)], file: &str) -> &'r crate::canonical::Observation {
        match &all.iter().find(|(f, _)| f == file).unwrap().1 {
            Reading::News(o) => o,
            other => panic!("{file}: {other:?}"),
        }
    }

    #[test]
    fn every_shipped_sample_reads() {
        let aftership = readings("aftership");
        let delivered = news(&aftership, "tracking_update_delivered.json");
        assert_eq!(delivered.kind, EventKind::Status(ShipmentStatus::Delivered));
        assert!(delivered.delivery_id.is_some());
        let local = news(&aftership, "tracking_update_attempt_fail_local_time.json");
        assert!(local.occurred_at.is_some());
        let legacy = news(&aftership, "tracking_update_legacy_fields.json");
        let place = legacy.location.as_ref().unwrap();
        assert_eq!(
            (place.country.as_deref(), place.postal_code.as_deref()),
            (Some("USA"), Some("07032"))
        );
        assert_eq!(legacy.estimated_delivery, "2026-12-03".parse().ok());
        let easypost = readings("easypost");
        assert!(easypost.iter().any(
            |(_, r)| matches!(r, Reading::Ignored { event_type } if event_type == "batch.created")
        ));
        let delivered = news(&easypost, "tracker_updated_delivered.json");
        assert_eq!(delivered.kind, EventKind::Status(ShipmentStatus::Delivered));
    }

    fn folder(definition: &str) -> tempdir::Folder {
        tempdir::Folder::new(definition)
    }

    /// A throwaway providers folder holding one `third` definition.
    mod tempdir {
        pub struct Folder(pub std::path::PathBuf);

        impl Folder {
            pub fn new(definition: &str) -> Self {
                let root = std::env::temp_dir().join(format!(
                    "shipgate-defined-{}",
                    uuid::Uuid::now_v7().simple()
                ));
                let dir = root.join("third");
                std::fs::create_dir_all(dir.join("samples")).unwrap();
                std::fs::write(dir.join("provider.toml"), definition).unwrap();
                std::fs::write(
                    dir.join("status_map.toml"),
                    "[state]\nmoving = \"status:in_transit\"\n",
                )
                .unwrap();
                std::fs::write(
                    dir.join("samples/one.json"),
                    r#"{"id":"d1","order":"o1","parcel":"p1","state":"moving"}"#,
                )
                .unwrap();
                Self(root)
            }
        }

        impl Drop for Folder {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const THIRD: &str = r#"name = "third"
status = [{ table = "state", pointer = "/state" }]

[auth]
scheme = "token"
header = "x-token"

[delivery_id]
pointer = "/id"

[fields]
order_id = "/order"
fulfillment_id = "/parcel"
"#;

    fn refusal(definition: &str) -> DefinitionError {
        let dir = folder(definition);
        load_all(Some(&dir.0)).unwrap_err()
    }

    #[test]
    fn a_definition_from_a_folder_loads() {
        let dir = folder(THIRD);
        let loaded = load_all(Some(&dir.0)).unwrap();
        assert!(loaded.iter().any(|l| l.definition.name.as_str() == "third"));
    }

    #[test]
    fn bad_definitions_are_refused_naming_file_line_and_key() {
        let missed = refusal(&THIRD.replace("\"/parcel\"", "\"/parcell\""));
        assert!(missed.file.ends_with("third/provider.toml"), "{missed}");
        assert_eq!(missed.line, 13, "{missed}");
        assert!(
            missed.problem.contains("fields.fulfillment_id") && missed.problem.contains("/parcell"),
            "{missed}"
        );
        let scheme = refusal(&THIRD.replace("\"token\"", "\"hmac-md5\""));
        assert_eq!(scheme.line, 5, "{scheme}");
        assert!(scheme.problem.contains("auth.scheme"), "{scheme}");
        let table = refusal(&THIRD.replace("table = \"state\"", "table = \"states\""));
        assert_eq!(table.line, 2, "{table}");
        assert!(table.problem.contains("status[0].table"), "{table}");
        let built_in = refusal(&THIRD.replace("name = \"third\"", "name = \"shopify\""));
        assert_eq!(built_in.line, 1, "{built_in}");
        assert!(built_in.problem.contains("key `name`"), "{built_in}");
    }

    #[test]
    fn a_status_map_word_outside_the_vocabulary_is_refused_with_its_line() {
        let dir = folder(THIRD);
        std::fs::write(
            dir.0.join("third/status_map.toml"),
            "[state]\nmoving = \"status:on_its_way\"\n",
        )
        .unwrap();
        let e = load_all(Some(&dir.0)).unwrap_err();
        assert!(
            e.file.ends_with("third/status_map.toml") && e.line == 2,
            "{e}"
        );
    }

    #[test]
    fn two_definitions_of_one_name_are_refused() {
        let dir = folder(THIRD);
        let copy = dir.0.join("third-again");
        std::fs::create_dir_all(copy.join("samples")).unwrap();
        for file in ["provider.toml", "status_map.toml", "samples/one.json"] {
            std::fs::copy(dir.0.join("third").join(file), copy.join(file)).unwrap();
        }
        let e = load_all(Some(&dir.0)).unwrap_err();
        assert!(e.file.contains("third-again") && e.line == 1, "{e}");
        assert!(e.problem.contains("also defined by"), "{e}");
    }
}
