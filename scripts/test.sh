#!/usr/bin/env bash
# The one test command: installs what the tests need (Debian 12, as root), then runs every check.
#
#   bash scripts/test.sh
#
# Steps: system packages (only the missing ones), [python venv: reserved], cargo fmt --check,
# cargo clippy -D warnings, cargo build, cargo test, fuzzing (scripts/fuzz.sh, when nightly). Prints a summary; exits non-zero if any step
# failed. The end-to-end tests start their own nginx/lighttpd/apache2/haproxy instances on
# loopback ports with generated configs; they never use the system services.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

export RUST_BACKTRACE=1
# A rustup toolchain installed for this user but not yet on PATH (fresh shell).
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Debian packages the tests use (front ends, cgi-fcgi, curl, and tools later issues need).
PACKAGES=(nginx lighttpd apache2 haproxy libfcgi-bin curl php-fpm prometheus tmux)
# The `wsgi` feature links the system Python 3 (libpython3.11, python3-dev); its tests use a venv.
PACKAGES+=(python3-dev python3-venv)
# ringfast-bench's contenders and tools (it installs them itself too when missing).
PACKAGES+=(uwsgi uwsgi-plugin-python3 libapache2-mod-wsgi-py3 wrk gcc)

declare -a SUMMARY=()
FAILED=0
START_ALL=$(date +%s)

log() { printf '\n==> %s\n' "$*"; }

# run_step NAME CMD...: runs a step, records its result and duration, keeps going on failure.
run_step() {
    local name=$1
    shift
    log "$name: $*"
    local t0 rc
    t0=$(date +%s)
    set +e
    "$@"
    rc=$?
    set -e
    local dt=$(($(date +%s) - t0))
    if [ "$rc" -eq 0 ]; then
        SUMMARY+=("PASS  ${name} (${dt}s)")
    else
        SUMMARY+=("FAIL  ${name} (${dt}s, exit ${rc})")
        FAILED=1
    fi
    return 0
}

print_summary() {
    local total=$(($(date +%s) - START_ALL))
    printf '\n==================== summary ====================\n'
    local line
    for line in "${SUMMARY[@]}"; do
        printf '%s\n' "$line"
    done
    printf -- '-------------------------------------------------\n'
    if [ "$FAILED" -eq 0 ]; then
        printf 'ALL PASSED in %ss\n' "$total"
    else
        printf 'FAILED (total %ss): see the output of the failed steps above\n' "$total"
    fi
}

# ---------------------------------------------------------------------------------------------
# System packages
# ---------------------------------------------------------------------------------------------

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg -s "$p" >/dev/null 2>&1; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "all packages present: ${PACKAGES[*]}"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]}; run this script as root (or install them)" >&2
        return 1
    fi
    echo "installing: ${missing[*]}"
    # Keep the packages' own services from starting during installation (the tests start their
    # own instances; a system nginx/apache on port 80 is not needed). Only if no policy exists.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
        "${missing[@]}" || rc=$?
    if [ "$created_policy" -eq 1 ]; then
        rm -f "$policy"
    fi
    return "$rc"
}

# The tests never use the system instances and pick their own free loopback ports, so running
# services cannot collide with them. Report them anyway, as they cost memory and CPU.
report_system_services() {
    local s
    for s in nginx apache2 lighttpd haproxy php8.2-fpm prometheus; do
        if pgrep -x "$s" >/dev/null 2>&1 || pgrep -f "^/usr/s?bin/$s" >/dev/null 2>&1; then
            echo "note: a system $s is running; the tests do not use or disturb it"
        fi
    done
    return 0
}

check_tools() {
    local t rc=0
    for t in /usr/sbin/nginx /usr/sbin/lighttpd /usr/sbin/apache2 /usr/sbin/haproxy \
        /usr/bin/cgi-fcgi /usr/bin/curl; do
        if [ ! -x "$t" ]; then
            echo "missing $t" >&2
            rc=1
        fi
    done
    command -v cargo >/dev/null || {
        echo "cargo is not on PATH (install a Rust toolchain with rustfmt and clippy)" >&2
        rc=1
    }
    return "$rc"
}

run_step "packages" install_packages
report_system_services
run_step "tools present" check_tools

# ---------------------------------------------------------------------------------------------
# Python virtual environment (hook)
# ---------------------------------------------------------------------------------------------
# >>> python venv hook: later issues create a venv here and pip-install what they need, e.g.
#   python3 -m venv "$ROOT/.venv" && "$ROOT/.venv/bin/pip" install -r requirements-test.txt
#   export PATH="$ROOT/.venv/bin:$PATH"
# Add it as: run_step "python venv" setup_venv
# The WSGI tests' venv (Django, Flask: engine/tests/fixtures/requirements.txt), made with the
# Python the `wsgi` build links: PYO3_PYTHON picks it (else PyO3 takes `python3` on PATH).
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3}"
setup_venv() {
    local req="$ROOT/engine/tests/fixtures/requirements.txt" stamp="$ROOT/.venv/.requirements"
    if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
        echo "venv up to date: $ROOT/.venv"
        return 0
    fi
    "$PYO3_PYTHON" -m venv "$ROOT/.venv" && "$ROOT/.venv/bin/pip" install -q -r "$req" &&
        cp "$req" "$stamp"
}
run_step "python venv" setup_venv
# <<< python venv hook

# ---------------------------------------------------------------------------------------------
# Rust
# ---------------------------------------------------------------------------------------------

# Smoke test of the benchmark harness: every contender once, short runs, on the debug binaries,
# written to a temporary directory (never over docs/bench); the numbers are not judged.
bench_quick() {
    local out rc=0
    out=$(mktemp -d)
    target/debug/ringfast-bench --quick --bin-dir target/debug --out "$out" || rc=$?
    rm -rf "$out"
    return "$rc"
}

# The Python package: maturin (in its own virtualenv, installed once) builds the abi3 wheel into
# python/target/wheels (cargo rebuilds only what changed); a fresh virtualenv gets the wheel and
# engine/tests/fixtures/requirements.txt; python/tests/test_e2e.py runs with its python.
python_wheel() {
    local tools="$ROOT/python/target/maturin-venv" wheels="$ROOT/python/target/wheels"
    local venv="$ROOT/python/target/test-venv"
    if [ ! -x "$tools/bin/maturin" ]; then
        "$PYO3_PYTHON" -m venv "$tools" && "$tools/bin/pip" install -q "maturin>=1.5,<2" || return 1
    fi
    rm -rf "$wheels"
    "$tools/bin/maturin" build --release --quiet -o "$wheels" -i "$PYO3_PYTHON" || return 1
    rm -rf "$venv"
    "$PYO3_PYTHON" -m venv "$venv" &&
        "$venv/bin/pip" install -q "$wheels"/ringfast-*.whl \
            -r "$ROOT/engine/tests/fixtures/requirements.txt" || return 1
    "$venv/bin/python" -m unittest discover -s "$ROOT/python/tests" -v
}

# The cargo-fuzz targets (engine/fuzz; docs/architecture.md, "Fuzzing"), RINGFAST_FUZZ_SECONDS
# (20) each, when a nightly toolchain is there; scripts/fuzz.sh installs cargo-fuzz if missing.
# Without nightly or cargo-fuzz the step is a SKIP: `cargo test` replayed their corpus anyway.
run_fuzz() {
    local secs=${RINGFAST_FUZZ_SECONDS:-20} t0 rc=0
    log "fuzz: scripts/fuzz.sh $secs"
    t0=$(date +%s)
    scripts/fuzz.sh "$secs" || rc=$?
    local dt=$(($(date +%s) - t0))
    case "$rc" in
    0) SUMMARY+=("PASS  fuzz, ${secs}s per target (${dt}s)") ;;
    2) SUMMARY+=("SKIP  fuzz (no nightly, or cargo-fuzz not installable; ${dt}s)") ;;
    *)
        SUMMARY+=("FAIL  fuzz (${dt}s, exit ${rc}; inputs in engine/fuzz/artifacts/)")
        FAILED=1
        ;;
    esac
    return 0
}

if [ "$FAILED" -eq 0 ]; then
    run_step "cargo fmt --check" cargo fmt --all -- --check
    run_step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
    run_step "cargo build" cargo build --workspace --all-targets
    # --no-fail-fast: run every test binary even if one fails, so one run shows every failure.
    run_step "cargo test" cargo test --workspace --no-fail-fast
    # The protocol suites again on the tokio-uring loop (`--io tokio-uring`, still selectable,
    # and the fallback where a native ring cannot be set up); the run above is on the ring.
    run_step "cargo test (--io tokio-uring)" env RINGFAST_IO=tokio-uring cargo test -p engine \
        --no-fail-fast --test fcgi_protocol --test fcgi_resources --test prefork --test e2e_nginx \
        --test e2e_haproxy --test metrics_endpoint --test alloc_per_request --test scgi_ajp_wire \
        --test e2e_scgi --test e2e_ajp
    # And on the native loop over epoll (`--io epoll`, where `--io ring` falls back when no ring
    # can be set up).
    run_step "cargo test (--io epoll)" env RINGFAST_IO=epoll cargo test -p engine \
        --no-fail-fast --test fcgi_protocol --test fcgi_resources --test prefork --test e2e_nginx \
        --test e2e_haproxy --test metrics_endpoint --test alloc_per_request --test scgi_ajp_wire \
        --test e2e_scgi --test e2e_ajp --test reload_keepalive --test max_conns
    # The Python WSGI host (feature `wsgi`): its clippy, unit and end-to-end tests.
    run_step "cargo clippy (wsgi)" cargo clippy -p engine --all-targets --features wsgi -- -D warnings
    run_step "cargo test (wsgi)" cargo test -p engine --features wsgi --no-fail-fast --lib \
        --test wsgi_django --test wsgi_compliance --test wsgi_flask --test wsgi_reload
    # The Python package (pyproject.toml, python/): the wheel, built with maturin, installed in
    # a fresh virtualenv with Django, and the old Django guide's command lines behind nginx.
    run_step "cargo clippy (python/)" env PYO3_BUILD_EXTENSION_MODULE=1 cargo clippy \
        --manifest-path python/Cargo.toml --all-targets -- -D warnings
    run_step "python wheel (pip install, runfcgi, behind nginx)" python_wheel
    run_step "ringfast-bench --quick" bench_quick
    run_fuzz
else
    SUMMARY+=("SKIP  cargo steps (set-up failed)")
fi

print_summary
cd "$ROOT"
exit "$FAILED"
