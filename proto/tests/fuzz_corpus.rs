//! The fuzz targets on stable: every committed corpus file and crash artifact of
//! `engine/fuzz/` replayed through the same functions cargo-fuzz runs (`proto::fuzz`), and a
//! short random mutation of the seeds, so that `cargo test` catches a regression without
//! nightly.
//!
//! `RINGFAST_WRITE_SEEDS=1 cargo test -p proto --test fuzz_corpus seeds` rewrites the seed
//! files from `proto::fuzz::seeds()`.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

#[path = "../../engine/fuzz/replay.rs"]
mod replay;
use proto::fuzz::{seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/fuzz")
}

#[test]
fn seeds_are_committed() {
    let write = std::env::var_os("RINGFAST_WRITE_SEEDS").is_some();
    for (target, name, input) in seeds() {
        let path = fuzz_dir()
            .join("corpus")
            .join(target)
            .join(format!("seed-{name}"));
        if write {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &input).unwrap();
        }
        let on_disk = fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (RINGFAST_WRITE_SEEDS=1 writes it)", path.display())
        });
        assert_eq!(on_disk, input, "{} differs from seeds()", path.display());
    }
}

#[test]
fn corpus_and_artifacts_replay() {
    let mut count = 0;
    let mut failed = Vec::new();
    for (target, run) in TARGETS {
        for path in replay::committed_inputs(&fuzz_dir(), target) {
            let data = fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(format!("{target} fails on {}", path.display()));
            }
            count += 1;
        }
    }
    eprintln!("replayed {count} inputs");
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A seed with a few bytes changed, inserted or cut.
fn mutated() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let seeds = seeds();
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<u16>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let (target, _, mut data) = seeds[i].clone();
            for (at, byte, op) in edits {
                let at = usize::from(at) % (data.len() + 1);
                match op {
                    0 if at < data.len() => data[at] = byte,
                    1 => data.insert(at, byte),
                    2 if at < data.len() => {
                        data.remove(at);
                    }
                    _ => data.truncate(at.max(4)),
                }
            }
            let t = TARGETS
                .iter()
                .position(|(name, _)| *name == target)
                .unwrap();
            (t, data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn mutated_seeds_hold((target, data) in mutated()) {
        (TARGETS[target].1)(&data);
    }
}
