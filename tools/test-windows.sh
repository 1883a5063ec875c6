#!/usr/bin/env bash
# make test-windows: cross-compiles the tests that run on Windows with
# mingw-w64 and runs them under wine in a fresh, throw-away prefix. Installs
# gcc-mingw-w64-x86-64 and wine (Debian-like systems) when missing. The last
# line says "N passed, N failed" (tests/run.sh adds up each program's line).
set -u
cd "$(dirname "$0")/.."
B=${B:-build}/win
MINGW=${MINGW:-x86_64-w64-mingw32-gcc}
# The tests that build for Windows today (no fork/exec, no TLS).
TESTS=${WSR_WIN_TESTS:-"test_oserrors test_util test_codec test_handshake test_client test_reconnect test_policy test_reentry test_loopback test_reconnect_live test_server test_conformance"}

need=()
command -v "$MINGW" >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || need+=(wine wine64)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || { echo "missing: ${need[*]}" >&2; exit 1; }
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || exit 1
fi

mkdir -p "$B"
exes=() fail_build=0
for t in $TESTS; do
  # -static: winpthreads (test_reconnect_live) and libgcc inside the .exe.
  if "$MINGW" -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -I. "tests/$t.c" -o "$B/$t.exe" \
       -static -pthread -lws2_32 -lbcrypt; then
    exes+=("$B/$t.exe")
  else
    echo "$t: does not build for Windows" >&2; fail_build=$((fail_build + 1))
  fi
done

# A fresh prefix per run (~9 s); a persistent wineserver so each program
# starts in ~20 ms; wineboot once more so wine's helpers do not hold our
# pipes open (otherwise `wine x.exe | ...` never ends).
export WINEPREFIX; WINEPREFIX=$(mktemp -d /tmp/wsr-wine.XXXXXX)
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml,winemenubuilder.exe=d"
trap 'wineserver -k >/dev/null 2>&1; rm -rf "$WINEPREFIX"' EXIT
timeout 120 wineboot -i >/dev/null 2>&1; timeout 60 wineserver -w
wineserver -p
timeout 60 wineboot >/dev/null 2>&1

# tests/run.sh strips \r, applies the timeout and adds up the counts; a
# crash gives exit 5, the exit status is the program's & 0xff.
WSR_TEST_WRAP="wine" WSR_TEST_TIMEOUT=${WSR_TEST_TIMEOUT:-120} tests/run.sh "${exes[@]}" | tee "$B/run.log" | sed '$d'
line=$(tail -n 1 "$B/run.log")
p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
f=$((f + fail_build))
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
