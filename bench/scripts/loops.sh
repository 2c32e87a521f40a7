#!/usr/bin/env bash
# Side by side, in one run: server CPU per request of the FastCGI floor, ringfast --io tokio-uring,
# ringfast --io ring (the default) and ringfast --io epoll (the same native loop on epoll), for FastCGI keep-alive, a new connection per request and
# 16 x 8 multiplexed ids over TCP and Unix sockets, SCGI (a connection per request) and AJP13
# (keep-alive), and the cost of metrics. Every server is pinned to CPU 0 and ringfast-load to
# CPU 1; CPU per request is the server's utime+stime (/proc/PID/stat) over a 5 s window divided
# by the requests answered in it.
#
#   cargo build --release -p engine -p loadgen && bash bench/scripts/loops.sh
#
# A quicker, lighter check than ringfast-bench (docs/bench/README.md), for one machine at a
# quiet moment; run it twice and compare the rounds before quoting a figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
FLOOR=$TARGET/bench/fcgi_floor
mkdir -p "$TARGET/bench"
[ -x "$FLOOR" ] || gcc -O2 -o "$FLOOR" bench/floor/fcgi_floor.c
D=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Starts a server pinned to CPU 0 and prints its pid (the caller records it: this runs in a
# command substitution, whose variables do not reach the script).
start() { taskset -c 0 "$@" >/dev/null 2>&1 & echo $!; }

PF=$(port); PT=$(port); PR=$(port); PM=$(port); ST=$(port); SR=$(port); AT=$(port); AR=$(port)
PE=$(port); SE=$(port); AE=$(port)
F=$(start "$FLOOR" 127.0.0.1:$PF)
FU=$(start "$FLOOR" unix:$D/floor.sock)
common=(--workers 1 --app hello)
T=$(start $BIN/ringfast --io tokio-uring "${common[@]}" --metrics off --fastcgi 127.0.0.1:$PT \
    --fastcgi unix:$D/tu.sock)
TS=$(start $BIN/ringfast --io tokio-uring "${common[@]}" --metrics off --scgi 127.0.0.1:$ST \
    --scgi unix:$D/tu-scgi.sock --ajp 127.0.0.1:$AT)
R=$(start $BIN/ringfast --io ring "${common[@]}" --metrics off --fastcgi 127.0.0.1:$PR \
    --fastcgi unix:$D/ring.sock --scgi 127.0.0.1:$SR --scgi unix:$D/ring-scgi.sock \
    --ajp 127.0.0.1:$AR)
E=$(start $BIN/ringfast --io epoll "${common[@]}" --metrics off --fastcgi 127.0.0.1:$PE \
    --fastcgi unix:$D/epoll.sock --scgi 127.0.0.1:$SE --scgi unix:$D/epoll-scgi.sock \
    --ajp 127.0.0.1:$AE)
RM=$(start $BIN/ringfast --io ring "${common[@]}" --metrics 127.0.0.1:$(port) \
    --fastcgi 127.0.0.1:$PM)
pids+=("$F" "$FU" "$T" "$TS" "$R" "$E" "$RM")
sleep 1

# measure LABEL PID TARGET [ringfast-load options]
measure() {
    local label=$1 pid=$2 target=$3
    shift 3
    local conns=(-c 64)
    [[ " $* " == *" -c "* ]] && conns=()
    taskset -c 1 $BIN/ringfast-load "$target" "${conns[@]}" "$@" -d 1 --warmup 0 --quiet \
        --json /dev/null >/dev/null 2>&1 || true
    local c0 c1 out
    c0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(taskset -c 1 $BIN/ringfast-load "$target" "${conns[@]}" "$@" -d 5 --warmup 0 --quiet \
        --json - 2>/dev/null)
    c1=$(awk '{print $14+$15}' /proc/$pid/stat)
    python3 - "$label" "$c0" "$c1" "$(getconf CLK_TCK)" "$out" <<'PY'
import json, sys
label, c0, c1, tick, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
d = json.loads(out)
n = max(d["requests"], 1)
print(f"{label:44s} {d['rps']:9.0f} req/s  {(c1 - c0) / tick * 1e6 / n:7.2f} us/req  errors {sum(d['errors'].values())}")
PY
}

for mode in "" "--no-keepalive" "-c 16 --mux 8"; do
    measure "floor fcgi tcp $mode" $F fcgi://127.0.0.1:$PF/hello $mode
    measure "tokio-uring fcgi tcp $mode" $T fcgi://127.0.0.1:$PT/hello $mode
    measure "ring fcgi tcp $mode" $R fcgi://127.0.0.1:$PR/hello $mode
    measure "epoll fcgi tcp $mode" $E fcgi://127.0.0.1:$PE/hello $mode
    [ "$mode" = "-c 16 --mux 8" ] && continue
    measure "floor fcgi unix $mode" $FU fcgi+unix:$D/floor.sock:/hello $mode
    measure "tokio-uring fcgi unix $mode" $T fcgi+unix:$D/tu.sock:/hello $mode
    measure "ring fcgi unix $mode" $R fcgi+unix:$D/ring.sock:/hello $mode
    measure "epoll fcgi unix $mode" $E fcgi+unix:$D/epoll.sock:/hello $mode
done
measure "tokio-uring scgi tcp" $TS scgi://127.0.0.1:$ST/hello
measure "ring scgi tcp" $R scgi://127.0.0.1:$SR/hello
measure "epoll scgi tcp" $E scgi://127.0.0.1:$SE/hello
measure "tokio-uring scgi unix" $TS scgi+unix:$D/tu-scgi.sock:/hello
measure "ring scgi unix" $R scgi+unix:$D/ring-scgi.sock:/hello
measure "epoll scgi unix" $E scgi+unix:$D/epoll-scgi.sock:/hello
measure "tokio-uring ajp tcp" $TS ajp://127.0.0.1:$AT/hello
measure "ring ajp tcp" $R ajp://127.0.0.1:$AR/hello
measure "epoll ajp tcp" $E ajp://127.0.0.1:$AE/hello
measure "ring fcgi tcp, metrics off" $R fcgi://127.0.0.1:$PR/hello
measure "ring fcgi tcp, metrics on" $RM fcgi://127.0.0.1:$PM/hello
