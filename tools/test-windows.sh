#!/usr/bin/env bash
# make test-windows: cross-compiles the tests that run on Windows with
# mingw-w64 and runs them under wine in a fresh, throw-away prefix. Installs
# gcc-mingw-w64-x86-64 and wine (Debian-like systems) when missing. The last
# line says "N passed, N failed" (tests/run.sh adds up each program's line).
#
# wss:// (test_tls_win): mbedTLS is cross-built for mingw once and cached in
# $B/mbedtls/{include,lib} (MBEDTLS_WIN=dir uses a build of your own). Its
# sources come from Debian (`apt-get source mbedtls`, through a temporary
# deb-src entry removed at once); the test certificates are made here with
# openssl, fresh each run, in $B/pki.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}/win
MINGW=${MINGW:-x86_64-w64-mingw32-gcc}
# The tests that build for Windows; test_tls_win is the wss:// one
# (tests/test_tls.c needs fork and openssl). test_examples, test_chaos and
# test_wsrcat start the programs built below (tests/wsr_test_proc.h).
TESTS=${WSR_WIN_TESTS:-"test_oserrors test_util test_codec test_handshake test_client test_reconnect test_policy test_reentry test_loopback test_reconnect_live test_server test_conformance test_tls_win test_examples test_chaos test_wsrcat test_interop"}
MBEDTLS_WIN=${MBEDTLS_WIN:-$B/mbedtls}

need=()
command -v "$MINGW" >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v "${MINGW%gcc}g++" >/dev/null 2>&1 || need+=(g++-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || need+=(wine wine64)
case " $TESTS " in *" test_tls_win "*|*" test_wsrcat "*)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  # wine fills the Windows ROOT certificate store from the host's CA bundle.
  [ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
  [ -f "$MBEDTLS_WIN/lib/libmbedtls.a" ] || command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev) ;;
esac
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || { echo "missing: ${need[*]}" >&2; exit 1; }
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || exit 1
fi

mkdir -p "$B"

# mbedTLS for mingw, built once: Debian's source package (2.28 on Debian 12)
# through a deb-src entry that exists only for the download.
build_mbedtls() {
  local src="$B/mbedtls-src" list=/etc/apt/sources.list.d/wsr-mbedtls-src.sources sudo="" codename
  [ -f "$MBEDTLS_WIN/lib/libmbedtls.a" ] && return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] && command -v apt-get >/dev/null 2>&1 || { echo "mbedTLS for mingw: no apt-get; set MBEDTLS_WIN" >&2; return 1; }
  echo "fetching and cross-building mbedTLS for mingw (once, into $MBEDTLS_WIN) ..." >&2
  rm -rf "$src" && mkdir -p "$src" || return 1
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$codename" | $sudo tee "$list" >/dev/null || return 1
  # Only this entry is refreshed; the other lists stay as they are.
  if $sudo apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
       -o APT::Get::List-Cleanup=0 >/dev/null &&
     (cd "$src" && apt-get source -qq mbedtls >/dev/null 2>&1); then :; else
    $sudo rm -f "$list"; echo "mbedTLS for mingw: apt-get source mbedtls failed" >&2; return 1
  fi
  $sudo rm -f "$list"
  local dir; dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'mbedtls-*' | head -n 1)
  [ -n "$dir" ] || return 1
  make -s -j"$(nproc 2>/dev/null || echo 2)" -C "$dir/library" CC="$MINGW" AR="${MINGW%gcc}ar" WINDOWS_BUILD=1 static \
    >"$B/mbedtls-build.log" 2>&1 || { echo "mbedTLS for mingw: build failed (see $B/mbedtls-build.log)" >&2; return 1; }
  mkdir -p "$MBEDTLS_WIN/lib" && cp -r "$dir/include" "$MBEDTLS_WIN/" &&
    cp "$dir/library/libmbedtls.a" "$dir/library/libmbedx509.a" "$dir/library/libmbedcrypto.a" "$MBEDTLS_WIN/lib/" &&
    rm -rf "$src"
}

# The test PKI for test_tls_win (what tests/test_tls_win.c lists) and
# test_wsrcat (its pki_script: also a client certificate, for mutual TLS).
make_pki() {
  local d="$B/pki"
  rm -rf "$d" && mkdir -p "$d/cadir" || return 1
  (cd "$d" && set -e
   printf '[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n[srv]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n[cli]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > ext.cnf
   for k in ca ca2 server client; do openssl ecparam -name prime256v1 -genkey -noout -out $k.key; done
   openssl req -x509 -new -key ca.key -subj '/CN=wsr test CA' -days 3650 -sha256 -config ext.cnf -extensions ca -out ca.crt
   openssl req -x509 -new -key ca2.key -subj '/CN=wsr unrelated CA' -days 3650 -sha256 -config ext.cnf -extensions ca -out ca2.crt
   openssl req -new -key server.key -subj /CN=localhost -out server.csr
   openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 30 -sha256 \
     -extfile ext.cnf -extensions srv -out server.crt 2>/dev/null
   openssl req -new -key client.key -subj '/CN=wsrcat test client' -out client.csr
   openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -set_serial 3 -days 30 -sha256 \
     -extfile ext.cnf -extensions cli -out client.crt 2>/dev/null
   cp ca.crt cadir/ca.crt
   openssl verify -CAfile ca.crt server.crt client.crt >/dev/null) >"$B/pki.log" 2>&1 ||
    { echo "making the test certificates failed (see $B/pki.log)" >&2; return 1; }
}

# The examples and tools, first: test_examples, test_chaos and test_wsrcat
# run them. Each build counts as one check. wsrcat-notls is wsrcat without
# TLS (test_wsrcat checks that it refuses wss:// clearly).
tls=(-DWSR_USE_MBEDTLS -I"$MBEDTLS_WIN/include" -L"$MBEDTLS_WIN/lib" -lmbedtls -lmbedx509 -lmbedcrypto -ladvapi32 -lcrypt32)
build_mbedtls || true
p_build=0 f_build=0
for src in examples/hello.c examples/reconnecting.c examples/long_job.c examples/chat_server.c \
           examples/demo_client.c examples/wss_client.c examples/own_loop.c tools/wsr-echo.c \
           tools/wsrcat.c tools/wsrcat-notls tools/wsr-chaos.c; do
  exe="$B/$(basename "$src" .c).exe" in="$src" extra=()
  case "$src" in examples/wss_client.c|tools/wsrcat.c) extra=("${tls[@]}") ;; tools/wsrcat-notls) in=tools/wsrcat.c ;; esac
  if "$MINGW" -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -I. "$in" -o "$exe" \
       -static -pthread "${extra[@]}" -lws2_32 -lbcrypt && [ "$(head -c 2 "$exe")" = MZ ]; then
    p_build=$((p_build + 1))
  else
    echo "$src: does not build for Windows" >&2; f_build=$((f_build + 1)); rm -f "$exe"
  fi
done

exes=() fail_build=0 pki_made=0
for t in $TESTS; do
  extra=()
  if [ "$t" = test_tls_win ] || [ "$t" = test_wsrcat ]; then
    # mbedTLS 2.28 takes its entropy from CryptGenRandom (advapi32); 3.x from bcrypt.
    if build_mbedtls && { [ $pki_made = 1 ] || { make_pki && pki_made=1; }; }; then
      extra=(-I"$MBEDTLS_WIN/include" -L"$MBEDTLS_WIN/lib" -lmbedtls -lmbedx509 -lmbedcrypto -ladvapi32 -lcrypt32)
    else
      echo "$t: no mbedTLS for mingw or no test certificates" >&2; fail_build=$((fail_build + 1)); continue
    fi
  fi
  # -static: winpthreads (test_reconnect_live) and libgcc inside the .exe.
  if "$MINGW" -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -I. "tests/$t.c" -o "$B/$t.exe" \
       -static -pthread "${extra[@]}" -lws2_32 -lbcrypt; then
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
broker_pid=
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; wineserver -k >/dev/null 2>&1; rm -rf "$WINEPREFIX"' EXIT
timeout 120 wineboot -i >/dev/null 2>&1; timeout 60 wineserver -w
wineserver -p
timeout 60 wineboot >/dev/null 2>&1

# test_tls_win reads its certificates from here (a Windows path: $B may be absolute).
export WSR_TLS_PKI; WSR_TLS_PKI=$(winepath -w "$B/pki" 2>/dev/null | tr -d '\r'); WSR_TLS_PKI=${WSR_TLS_PKI:-$B/pki}
# test_wsrcat's certificates (the same directory), and where the programs are.
export WSRCAT_PKI="$WSR_TLS_PKI" WSR_EXAMPLES_DIR="$B" WSRCAT_BIN="$B/wsrcat" WSRCAT_NOTLS_BIN="$B/wsrcat-notls" \
       WSR_CHAOS_BIN="$B/wsr-chaos"

# test_interop's peers (Node's ws, Python's websockets) are host programs,
# which a process under wine can neither start with pipes nor kill:
# tests/interop/peer_broker.py runs them for it (PROC_HOST in
# tests/wsr_test_proc.h). Started after wine's helpers, so they hold none of
# its pipes; its stdin is a pipe this shell holds (at EOF it would stop), its
# first line is its port. Stopped by its PID on exit (SIGTERM: it kills the
# peers it still runs). Without it test_interop fails, saying so.
case " $TESTS " in *" test_interop "*)
  tools/deps.sh || exit 1            # node, npm ci in tests/interop, python3-websockets (quiet when present)
  coproc BROKER { cd tests/interop && exec /usr/bin/python3 peer_broker.py; }
  broker_pid=$BROKER_PID
  if read -r -t 20 broker_port <&"${BROKER[0]}"; then
    export WSR_PEER_BROKER="127.0.0.1:$broker_port"
  else
    echo "tests/interop/peer_broker.py printed no port" >&2
  fi ;;
esac

# tests/run.sh strips \r, applies the timeout and adds up the counts; a
# crash gives exit 5, the exit status is the program's & 0xff.
WSR_TEST_WRAP="wine" WSR_TEST_TIMEOUT=${WSR_TEST_TIMEOUT:-120} tests/run.sh "${exes[@]}" | tee "$B/run.log" | sed '$d'
line=$(tail -n 1 "$B/run.log")
p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
f=$((f + fail_build))

p=$((p + p_build)) f=$((f + f_build))
# The TLS part of the header as C++ for Windows (make test checks C++ without TLS).
if "${MINGW%gcc}g++" -std=c++11 -Wall -Wextra -Wpedantic -Werror -DWSR_USE_MBEDTLS -I"$MBEDTLS_WIN/include" -I. \
     -c tests/compile_cpp.cpp -o "$B/compile_tls_cpp.o"; then
  p=$((p + 1))
else
  echo "ws_reconnect.h with WSR_USE_MBEDTLS does not build as C++ for Windows" >&2; f=$((f + 1))
fi
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
