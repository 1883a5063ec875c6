#!/usr/bin/env bash
# make demo: start the echo server on a free port, run the numbered-message
# client against it, and stop the server by its PID whatever happens.
set -u
B=${1:-build}
out=$(mktemp)
"$B/tools/wsr-echo" -q -p 0 >"$out" 2>&1 &
srv=$!
trap 'kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; rm -f "$out"' EXIT
port=""
for _ in $(seq 1 50); do
  port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ]; then echo "demo: the echo server did not start"; cat "$out"; exit 1; fi
echo "echo server (pid $srv) listening on 127.0.0.1:$port"
"$B/examples/demo_client" "ws://127.0.0.1:$port/demo" 30 100
