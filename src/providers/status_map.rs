//! Status maps: each provider's words onto the canonical vocabulary, as
//! data (`providers/<provider>/status_map.toml`). The built-in maps are
//! compiled into the binary; `status_maps.dir` may replace them. Every map
//! is checked at start-up: a value outside the vocabulary stops the server
//! with the file and line at fault.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::canonical::{AutomationEvent, EventKind, Provider, ShipmentStatus};

/// A status map that cannot be used, with where the problem is.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct StatusMapError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

/// What one provider word means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    Status(ShipmentStatus),
    Event(AutomationEvent),
    /// Carries no tracking news, only carrier and tracking details.
    Details,
}

impl Mapping {
    fn parse(value: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("'{value}' {why}");
        match value.split_once(':') {
            Some(("status", word)) => word
                .parse()
                .map(Self::Status)
                .map_err(|_| bad("names no status of the vocabulary")),
            Some(("event", word)) => word
                .parse()
                .map(Self::Event)
                .map_err(|_| bad("names no event of the vocabulary")),
            None if value == "details" => Ok(Self::Details),
            _ => Err(bad(
                "is not \"status:<word>\", \"event:<word>\" or \"details\"",
            )),
        }
    }

    /// The event kind an observation of this word has.
    pub fn kind(self) -> EventKind {
        match self {
            Self::Status(s) => EventKind::Status(s),
            Self::Event(e) => EventKind::Event(e),
            Self::Details => EventKind::Details,
        }
    }
}

/// One provider's map: tables of words (a provider may have several
/// vocabularies, like Shopify's event and fulfillment statuses).
#[derive(Debug, Clone)]
pub struct StatusMap {
    tables: HashMap<String, HashMap<String, Mapping>>,
}

impl StatusMap {
    /// Parses a map file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, StatusMapError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let raw: BTreeMap<String, BTreeMap<String, toml::Spanned<String>>> =
            toml::from_str(text).map_err(|e| StatusMapError {
                file: file.to_owned(),
                line: e.span().map_or(1, |s| line_of(s.start)),
                problem: e.message().to_owned(),
            })?;
        let mut tables = HashMap::new();
        for (table, words) in raw {
            let mut mapped = HashMap::new();
            for (word, value) in words {
                let mapping =
                    Mapping::parse(value.get_ref()).map_err(|problem| StatusMapError {
                        file: file.to_owned(),
                        line: line_of(value.span().start),
                        problem: format!("[{table}] {word}: {problem}"),
                    })?;
                mapped.insert(word.to_ascii_lowercase(), mapping);
            }
            tables.insert(table, mapped);
        }
        Ok(Self { tables })
    }

    /// What `word` from `table` means; `None` when the map does not know it.
    pub fn lookup(&self, table: &str, word: &str) -> Option<Mapping> {
        self.tables
            .get(table)?
            .get(word.trim().to_ascii_lowercase().as_str())
            .copied()
    }

    /// The event kind for `word`: unknown words are `Unmapped`.
    pub fn kind(&self, table: &str, word: &str) -> EventKind {
        self.lookup(table, word)
            .map_or(EventKind::Unmapped, Mapping::kind)
    }

    /// Whether the map has a table of this name.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// Whether the map has a table of this name (adapters rely on theirs).
    fn require(self, file: &str, table: &str) -> Result<Self, StatusMapError> {
        if self.tables.contains_key(table) {
            Ok(self)
        } else {
            Err(StatusMapError {
                file: file.to_owned(),
                line: 1,
                problem: format!("the table [{table}] is missing"),
            })
        }
    }
}

/// The maps of all providers.
#[derive(Debug, Clone)]
pub struct StatusMaps {
    pub shopify: StatusMap,
    pub carriyo: StatusMap,
    pub redo: StatusMap,
}

const BUILT_IN: [(Provider, &str); 3] = [
    (
        Provider::Shopify,
        include_str!("../../providers/shopify/status_map.toml"),
    ),
    (
        Provider::Carriyo,
        include_str!("../../providers/carriyo/status_map.toml"),
    ),
    (
        Provider::Redo,
        include_str!("../../providers/redo/status_map.toml"),
    ),
];

/// The tables each provider's adapter reads.
fn required_tables(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Shopify => &["fulfillment_event", "fulfillment"],
        Provider::Carriyo | Provider::Redo => &["shipment"],
        // A definition names its tables; they are checked when it loads.
        Provider::Defined(_) => &[],
    }
}

impl StatusMaps {
    /// The built-in maps, or those in `dir` (`<provider>/status_map.toml`;
    /// a provider without a file there keeps its built-in map).
    pub fn load(dir: Option<&Path>) -> Result<Self, StatusMapError> {
        let mut maps = Vec::new();
        for (provider, built_in) in BUILT_IN {
            let relative = format!("providers/{provider}/status_map.toml");
            let overriding = dir.map(|d| d.join(provider.as_str()).join("status_map.toml"));
            let (file, text) = match overriding.filter(|p| p.exists()) {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| StatusMapError {
                        file: path.display().to_string(),
                        line: 1,
                        problem: format!("cannot read: {e}"),
                    })?;
                    (path.display().to_string(), text)
                }
                None => (relative, built_in.to_owned()),
            };
            let mut map = StatusMap::parse(&file, &text)?;
            for table in required_tables(provider) {
                map = map.require(&file, table)?;
            }
            maps.push(map);
        }
        let [shopify, carriyo, redo] =
            <[StatusMap; 3]>::try_from(maps).map_err(|_| StatusMapError {
                file: String::new(),
                line: 0,
                problem: "internal".into(),
            })?;
        Ok(Self {
            shopify,
            carriyo,
            redo,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_maps_load() {
        let maps = StatusMaps::load(None).unwrap();
        assert_eq!(
            maps.shopify.kind("fulfillment_event", "label_printed"),
            EventKind::Status(ShipmentStatus::PreTransit)
        );
        assert_eq!(
            maps.carriyo.kind("shipment", "SUSPENDED"),
            EventKind::Event(AutomationEvent::Delayed)
        );
        assert_eq!(
            maps.shopify.kind("fulfillment", "success"),
            EventKind::Details
        );
        assert_eq!(
            maps.redo.kind("shipment", "warp_speed"),
            EventKind::Unmapped
        );
    }

    #[test]
    fn a_word_outside_the_vocabulary_names_file_and_line() {
        let text = "[shipment]\nbooked = \"status:pre_transit\"\nlost = \"status:vanished\"\n";
        let err = StatusMap::parse("custom/carriyo.toml", text).unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("custom/carriyo.toml", 3));
        assert!(err.problem.contains("vanished"), "{err}");
    }

    #[test]
    fn malformed_values_and_toml_are_refused_with_a_line() {
        let err = StatusMap::parse("m.toml", "[t]\na = \"in_transit\"\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = StatusMap::parse("m.toml", "[t]\n\na = \n").unwrap_err();
        assert_eq!(err.line, 3);
    }

    #[test]
    fn a_directory_overrides_one_provider_and_keeps_the_others() {
        let dir = std::env::temp_dir().join(format!("shipgate-maps-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("carriyo")).unwrap();
        std::fs::write(
            dir.join("carriyo/status_map.toml"),
            "[shipment]\nteleported = \"status:delivered\"\n",
        )
        .unwrap();
        let maps = StatusMaps::load(Some(&dir)).unwrap();
        assert_eq!(
            maps.carriyo.kind("shipment", "teleported"),
            EventKind::Status(ShipmentStatus::Delivered)
        );
        assert_eq!(
            maps.carriyo.kind("shipment", "in_transit"),
            EventKind::Unmapped
        );
        assert_eq!(
            maps.redo.kind("shipment", "delivered"),
            EventKind::Status(ShipmentStatus::Delivered)
        );
        std::fs::write(dir.join("carriyo/status_map.toml"), "[other]\n").unwrap();
        let err = StatusMaps::load(Some(&dir)).unwrap_err();
        assert!(err.to_string().contains("[shipment] is missing"), "{err}");
    }
}
