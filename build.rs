//! Compiles the definitions under `providers/*/provider.toml` into the
//! binary (with their status maps and samples), so the shipped senders
//! work wherever the binary runs, as the built-in status maps do. Adding
//! a folder there ships a sender with no Rust code.

use std::fmt::Write;
use std::path::Path;

#[path = "src/providers/defined/layout.rs"]
mod layout;

fn main() {
    println!("cargo:rerun-if-changed=providers");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    let dirs = layout::definition_folders(&root).expect("providers/ is readable");
    let mut out = String::from("&[\n");
    for dir in dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 folder name");
        let samples = layout::sample_files(&dir);
        let file = |p: &Path| format!("include_str!({:?})", p.display().to_string());
        let _ = writeln!(
            out,
            "    Shipped {{ folder: {name:?}, definition: {}, status_map: {}, samples: &[",
            file(&dir.join("provider.toml")),
            file(&dir.join("status_map.toml")),
        );
        for sample in samples {
            let sample_name = sample
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 name");
            let _ = writeln!(out, "        ({sample_name:?}, {}),", file(&sample));
        }
        out.push_str("    ] },\n");
    }
    out.push(']');
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("shipped_providers.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
