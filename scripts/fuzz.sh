#!/usr/bin/env bash
# Runs every cargo-fuzz target of engine/fuzz for SECONDS each (default 20), starting from the
# committed seeds (engine/fuzz/corpus/<target>/seed-*); what libFuzzer finds new goes to a
# temporary directory, so the tree stays clean. A crash is written to
# engine/fuzz/artifacts/<target>/, which `cargo test` then replays too (fuzz_corpus.rs).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain; installs cargo-fuzz when missing (about 2.5 minutes, needs the
# network). Exits 0 when every target ran clean, 1 when one failed, 2 when it could not run
# (no nightly, or cargo-fuzz could not be installed).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_EACH=${1:-20}
shift || true
FUZZ_DIR=engine/fuzz

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain (rustup toolchain install nightly); skipped" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    if ! cargo +nightly install cargo-fuzz --locked; then
        echo "fuzz: cargo-fuzz could not be installed; skipped" >&2
        exit 2
    fi
fi

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo +nightly fuzz list --fuzz-dir "$FUZZ_DIR")
fi
cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR" || exit 1

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/$t"
    log="$WORK/$t.log"
    # -timeout: one input running 10 s is a hang; -rss_limit_mb: memory growth is a failure.
    cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" "$t" "$WORK/$t" "$FUZZ_DIR/corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz %-14s ok: %s runs in %ss\n' "$t" "${runs:-?}" "$SECONDS_EACH"
    else
        printf 'fuzz %-14s FAILED (exit %s); the end of its log:\n' "$t" "$rc"
        tail -40 "$log"
        failed+=("$t")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]} (inputs in $FUZZ_DIR/artifacts/)" >&2
    exit 1
fi
