#!/usr/bin/env bash
# Side-by-side pairs, alternating rounds, for rows loops.sh measured at a noisy moment: the
# FastCGI floor against ringfast's AJP13 (TCP keep-alive) and FastCGI Unix keep-conn, and
# ringfast with metrics on against --metrics off. Servers pinned to CPU 0, ringfast-load
# (-c 64, 4 s) to CPU 1; server CPU µs per request from /proc/PID/stat.
#
#   cargo build --release -p engine -p loadgen && bash bench/scripts/pairs.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${CARGO_TARGET_DIR:-target}/release
FLOOR=target/bench/fcgi_floor
ROUNDS=${1:-3}
mkdir -p target/bench
[ -x "$FLOOR" ] || gcc -O2 -o "$FLOOR" bench/floor/fcgi_floor.c
D=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { taskset -c 0 "$@" >/dev/null 2>&1 & echo $!; }
PF=$(port) PA=$(port) PM=$(port) PO=$(port)
F=$(start "$FLOOR" 127.0.0.1:$PF)
FU=$(start "$FLOOR" unix:$D/floor.sock)
R=$(start $BIN/ringfast --workers 1 --app hello --metrics off --ajp 127.0.0.1:$PA \
    --fastcgi unix:$D/ring.sock --fastcgi 127.0.0.1:$PO)
RM=$(start $BIN/ringfast --workers 1 --app hello --metrics 127.0.0.1:$(port) --fastcgi 127.0.0.1:$PM)
pids+=("$F" "$FU" "$R" "$RM")
sleep 1
# cpu PID TARGET: server CPU µs per request over one 4 s run.
cpu() {
    local pid=$1 target=$2 c0 c1 n
    c0=$(awk '{print $14+$15}' /proc/$pid/stat)
    n=$(taskset -c 1 $BIN/ringfast-load "$target" -c 64 -d 4 --warmup 0 --quiet --json - \
        2>/dev/null | python3 -c 'import json,sys; print(max(json.load(sys.stdin)["requests"], 1))')
    c1=$(awk '{print $14+$15}' /proc/$pid/stat)
    python3 -c "print(f'{($c1-$c0)/$(getconf CLK_TCK)*1e6/$n:.2f}')"
}
for i in $(seq "$ROUNDS"); do
    echo "round $i: floor tcp $(cpu $F fcgi://127.0.0.1:$PF/hello)" \
        " ring ajp $(cpu $R ajp://127.0.0.1:$PA/hello)" \
        " floor unix $(cpu $FU fcgi+unix:$D/floor.sock:/hello)" \
        " ring unix $(cpu $R fcgi+unix:$D/ring.sock:/hello)" \
        " metrics off $(cpu $R fcgi://127.0.0.1:$PO/hello)" \
        " metrics on $(cpu $RM fcgi://127.0.0.1:$PM/hello)"
done
