#!/usr/bin/env bash
# Installs what `make test` and `make demo` need when it is missing, on
# Debian-like systems: C and C++ compilers and clang; for the interop tests
# (tests/test_interop.c) Node.js with npm and the `ws` package pinned in
# tests/interop/package-lock.json (installed there with `npm ci`), and
# Debian's python3-websockets for /usr/bin/python3; for TLS, libmbedtls-dev
# and openssl. Does nothing and prints
# nothing when all is present, so it is cheap to run before every test run.
set -eu
cd "$(dirname "$0")/.."
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The interop peers always run under /usr/bin/python3 (never a python3 found
# first on PATH, such as pyenv's), so that is the one that must import it.
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || need+=(python3-websockets)
# TLS: mbedTLS to build wss:// support, openssl to make the test certificates.
[ -f /usr/include/mbedtls/ssl.h ] || need+=(libmbedtls-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The Windows build is compiled (not run) by make test: mingw-w64, C and C++.
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v x86_64-w64-mingw32-g++ >/dev/null 2>&1 || need+=(g++-mingw-w64-x86-64)

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${need[*]} (install them with your package manager)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Node peers' packages, exactly as locked. A copy of the lock file kept
# in node_modules/ says the install is current; without it (never installed,
# interrupted, or the lock changed since) `npm ci` installs afresh.
interop=tests/interop
stamp=$interop/node_modules/.wsr-installed-lock.json
if ! cmp -s "$interop/package-lock.json" "$stamp" 2>/dev/null; then
  echo "installing the interop peers' npm packages (npm ci in $interop) ..." >&2
  (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$interop/package-lock.json" "$stamp"
fi
