#!/usr/bin/env bash
# make demo: the main job of ws_reconnect.h in ten seconds. An echo server
# on a free port; a client sending a numbered message every 100 ms; the
# server killed (SIGKILL, a crash) and restarted, then stopped (SIGTERM: it
# says goodbye with close 1012) and restarted again. The client prints its
# timeline and ends with "sent N, echoed N, lost L". Every process started
# here is stopped by its PID, whatever happens.
set -u
B=${1:-build}
out=$(mktemp)
srv="" cli=""
cleanup() {
  [ -n "$cli" ] && kill "$cli" 2>/dev/null
  [ -n "$srv" ] && kill "$srv" 2>/dev/null
  wait 2>/dev/null
  rm -f "$out"
}
trap cleanup EXIT

# Starts wsr-echo on port $1 (0: any free port) and sets srv and port.
start_server() {
  : >"$out"
  "$B/tools/wsr-echo" -q -p "$1" >"$out" 2>&1 &
  srv=$!
  port=""
  for _ in $(seq 1 50); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  echo "demo: the echo server did not start"; cat "$out"; exit 1
}
say() { printf '          ---- %s\n' "$*"; }

start_server 0
say "echo server (pid $srv) listening on 127.0.0.1:$port"
"$B/examples/demo_client" "ws://127.0.0.1:$port/demo" 100 100 &
cli=$!

sleep 2.5
say "killing the server with SIGKILL (a crash: no close frame)"
kill -9 "$srv"; wait "$srv" 2>/dev/null; srv=""
sleep 1.2
start_server "$port"
say "server restarted (pid $srv)"
sleep 2.5
say "stopping the server with SIGTERM (it closes with 1012 service restart)"
kill -TERM "$srv"; wait "$srv" 2>/dev/null; srv=""
sleep 1
start_server "$port"
say "server restarted (pid $srv)"

wait "$cli"; rc=$?; cli=""
exit "$rc"
