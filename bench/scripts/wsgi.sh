#!/usr/bin/env bash
# Side by side, in one run: server CPU per request of the WSGI hello app (the app of
# ringfast-bench's WSGI rows) under ringfast --wsgi and under uWSGI 2 (python3 plugin), over
# FastCGI: TCP and Unix sockets, keep-conn and a new connection per request. One process, one
# Python thread (THREADS=N to change), one ringfast worker; every server pinned to CPU 0 and
# ringfast-load (64 connections, 5 s) to CPU 1. CPU per request is the utime+stime of the
# server's processes (the uWSGI master included) over the window divided by the requests answered.
#
#   PYO3_PYTHON=/usr/bin/python3 cargo build --release -p engine -p loadgen --features engine/wsgi
#   bash bench/scripts/wsgi.sh            # ROUNDS=2 (default), THREADS=1, RINGFAST_ARGS="..."
#
# uWSGI's FastCGI socket ignores FCGI_KEEP_CONN and closes after every answer, so it only has
# connection-per-request rows (as in ringfast-bench). Quote a figure only when the rounds agree.
# RINGFAST=path runs another ringfast binary (e.g. a copy of the one before a change).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-1}
read -r -a EXTRA <<<"${RINGFAST_ARGS:-}"
D=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; sleep 0.3; rm -rf "$D"; }
trap cleanup EXIT
cat >"$D/app.py" <<'PY'
def application(environ, start_response):
    body = b"Hello, World!"
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]
PY
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { taskset -c 0 "$@" >>"$D/server.log" 2>&1 & echo $!; }

PR=$(port); PU=$(port)
R=$(start "${RINGFAST:-$BIN/ringfast}" --wsgi app:application --chdir "$D" --processes 1 --threads "$THREADS" \
    --workers 1 --metrics off --log-level warn --socket-mode 0666 \
    --fastcgi 127.0.0.1:$PR --fastcgi unix:$D/rf.sock "${EXTRA[@]}")
U=$(start uwsgi --plugin python3 --master --die-on-term --need-app --disable-logging \
    --chmod-socket=666 --processes 1 --threads "$THREADS" --wsgi-file "$D/app.py" \
    --fastcgi-socket 127.0.0.1:$PU)
UU=$(start uwsgi --plugin python3 --master --die-on-term --need-app --disable-logging \
    --chmod-socket=666 --processes 1 --threads "$THREADS" --wsgi-file "$D/app.py" \
    --fastcgi-socket "$D/uw.sock")
pids+=("$R" "$U" "$UU")
sleep 2

# CPU ticks of PID and its descendants.
ticks() {
    local all=("$1") p
    for p in $(pgrep -P "$1" || true); do all+=("$p"); done
    local sum=0 t
    for p in "${all[@]}"; do
        t=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo $sum
}

# measure LABEL PID TARGET [ringfast-load options]
measure() {
    local label=$1 pid=$2 target=$3
    shift 3
    taskset -c 1 "$BIN/ringfast-load" "$target" -c 64 "$@" -d 1 --warmup 0 --quiet \
        --json /dev/null >/dev/null 2>&1 || true
    local c0 c1 out
    c0=$(ticks "$pid")
    out=$(taskset -c 1 "$BIN/ringfast-load" "$target" -c 64 "$@" -d 5 --warmup 0 --quiet \
        --json - 2>/dev/null)
    c1=$(ticks "$pid")
    python3 - "$label" "$c0" "$c1" "$(getconf CLK_TCK)" "$out" <<'PY'
import json, sys
label, c0, c1, tick, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
d = json.loads(out)
n = max(d["requests"], 1)
print(f"{label:40s} {d['rps']:9.0f} req/s  {(c1 - c0) / tick * 1e6 / n:7.2f} us/req  errors {sum(d['errors'].values())}")
PY
}

for round in $(seq "$ROUNDS"); do
    echo "# round $round"
    for mode in "" "--no-keepalive"; do
        measure "ringfast-wsgi fcgi tcp $mode" "$R" "fcgi://127.0.0.1:$PR/" $mode
        measure "ringfast-wsgi fcgi unix $mode" "$R" "fcgi+unix:$D/rf.sock:/" $mode
    done
    measure "uwsgi fcgi tcp --no-keepalive" "$U" "fcgi://127.0.0.1:$PU/" --no-keepalive
    measure "uwsgi fcgi unix --no-keepalive" "$UU" "fcgi+unix:$D/uw.sock:/" --no-keepalive
done
