//! The `prom_parse` fuzz target on stable: its committed corpus and any crash artifacts of
//! `engine/fuzz/` replayed through the same function cargo-fuzz runs
//! (`tui::prom::fuzz_parse`), and random pages, so that `cargo test` catches a regression
//! without nightly.

use std::fs;
use std::path::Path;

use proptest::prelude::*;

#[path = "../../engine/fuzz/replay.rs"]
mod replay;
use tui::prom::fuzz_parse;

const TARGET: &str = "prom_parse";

#[test]
fn corpus_and_artifacts_replay() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/fuzz");
    for path in replay::committed_inputs(&fuzz, TARGET) {
        let data = fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| fuzz_parse(&data));
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
            "[a-z_:]{1,12}(\\{([a-z_]{1,6}=\"[^\"\\\\\n]{0,6}\",?){0,3}\\})? [-+0-9.eInfNa]{1,8}( [0-9-]{1,5})?",
            "# (TYPE|HELP) [a-z_]{1,8} [a-z ]{0,12}",
            "[ -~]{0,30}",
        ],
        0..12,
    )) {
        fuzz_parse(lines.join("\n").as_bytes());
    }
}
