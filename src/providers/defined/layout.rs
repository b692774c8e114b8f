//! Where a providers folder keeps its definitions and samples. Read by
//! the gateway for `providers.dir`, and included by build.rs for the
//! shipped folders, so both find the same files.

use std::path::{Path, PathBuf};

/// The folders of `dir` that hold a `provider.toml`, sorted.
pub fn definition_folders(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut folders: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("provider.toml").is_file())
        .collect();
    folders.sort();
    Ok(folders)
}

/// The `*.json` files of `folder`'s `samples/`, sorted; none when it has
/// no such folder.
pub fn sample_files(folder: &Path) -> Vec<PathBuf> {
    let mut samples: Vec<_> = std::fs::read_dir(folder.join("samples"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    samples.sort();
    samples
}
