//! The committed inputs of a fuzz target, for the stable replay tests of proto, engine and tui
//! (each includes this file with `#[path]`): its corpus (which must not be empty), then its
//! regressions and any crash artifacts, each directory sorted.

use std::fs;
use std::path::{Path, PathBuf};

/// The files of `dir`, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Every committed input of `target` under `fuzz_dir` (engine/fuzz).
pub fn committed_inputs(fuzz_dir: &Path, target: &str) -> Vec<PathBuf> {
    let mut inputs = files(&fuzz_dir.join("corpus").join(target));
    assert!(!inputs.is_empty(), "no corpus for {target}");
    inputs.extend(files(&fuzz_dir.join("regressions").join(target)));
    inputs.extend(files(&fuzz_dir.join("artifacts").join(target)));
    inputs
}
