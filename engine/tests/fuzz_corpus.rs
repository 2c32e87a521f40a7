//! The `metrics_merge` fuzz target on stable: its committed corpus and any crash artifacts of
//! `engine/fuzz/` replayed through the same function cargo-fuzz runs
//! (`engine::metrics::Merger::fuzz_pages`), and random pages, so that `cargo test` catches a
//! regression without nightly.

use std::fs;
use std::path::Path;

use engine::metrics::Merger;
use proptest::prelude::*;

#[path = "../fuzz/replay.rs"]
mod replay;

const TARGET: &str = "metrics_merge";

#[test]
fn corpus_and_artifacts_replay() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for path in replay::committed_inputs(&fuzz, TARGET) {
        let data = fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| Merger::fuzz_pages(&data));
        assert!(outcome.is_ok(), "{TARGET} fails on {}", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn random_pages_hold(lines in prop::collection::vec(
        prop_oneof![
            "[a-c_]{1,6}(\\{[a-z]=\"[a-c ]{0,3}\"\\})? [-+0-9.eInfNa]{1,6}",
            "# (TYPE|HELP) [a-c_]{1,6} [a-z ]{0,8}",
            "\0",
            "[ -~]{0,20}",
        ],
        0..16,
    )) {
        Merger::fuzz_pages(lines.join("\n").as_bytes());
    }
}
