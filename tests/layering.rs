//! The crate's dependency arrows run one way: each top-level module of
//! `src/` may name (`crate::x`) only modules of a lower layer, so none
//! imports one that imports it back. The one exception is the HTTP
//! handlers' `crate::app::AppState`, as a web app's routes name its
//! startup's state. Read from the source text, so the check needs no tool
//! beyond the test suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may use modules of lower layers
/// only; modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["canonical"],
    &["domain"],
    &["config"],
    &["providers", "storage", "telemetry", "http"],
    &["fulfillment"],
    &["ingest", "ops", "cli"],
    &["app"],
];

/// What a handler may name in the layer above it.
const APPLICATION_STATE: &str = "crate::app::AppState";

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(path: &Path, into: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("a readable source folder")
            .map(|e| e.expect("a readable folder entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, into);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        into.push(path.to_owned());
    }
}

/// Each top-level module's `crate::x` references in code (comments and
/// doc links left out), with one place each was found.
fn references() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("a readable entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if matches!(stem, "lib" | "main" | "bin") {
            continue;
        }
        let module = stem.to_owned();
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        let uses = found.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for (at, _) in code.match_indices("crate::") {
                    let rest = &code[at..];
                    if rest.starts_with(APPLICATION_STATE) {
                        continue;
                    }
                    let name: String = rest["crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        let place = format!("{}:{}", file.display(), n + 1);
                        uses.entry(name).or_insert(place);
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_top_level_module_has_a_layer() {
    let modules: BTreeSet<String> = references().into_keys().collect();
    let unplaced: Vec<&String> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer in tests/layering.rs: {unplaced:?}"
    );
}

#[test]
fn every_module_uses_only_lower_layers() {
    let mut upward = Vec::new();
    for (module, uses) in references() {
        let Some(own) = layer_of(&module) else {
            continue;
        };
        for (used, place) in uses {
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                _ => upward.push(format!("{module} uses crate::{used} at {place}")),
            }
        }
    }
    assert!(
        upward.is_empty(),
        "arrows that do not run down the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_check_sees_an_arrow_that_runs_up() {
    // storage really uses config, a lower layer; were the layers read
    // backwards, that arrow would be refused.
    let uses = references();
    assert!(uses["storage"].contains_key("config"), "{uses:?}");
    assert!(layer_of("config") < layer_of("storage"));
}
