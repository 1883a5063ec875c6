#!/usr/bin/env bash
# make fuzz: builds every fuzz target with libFuzzer (clang, with ASan and
# UBSan) and runs each for FUZZ_SECONDS (default 60), one after the other,
# on a copy of its seed corpus. New inputs stay in the copy; crashes are
# written next to it and listed at the end.
#
#   tests/fuzz/run.sh [target...]        default: every tests/fuzz/fuzz_*.c
#   FUZZ_SECONDS=600   how long each target runs
#   FUZZ_OUT=dir       where builds, corpus copies and crashes go (build/fuzz)
#   FUZZ_CFLAGS=...    extra compiler flags
#   FUZZ_ARGS=...      extra libFuzzer flags (-max_len=... , -dict=...)
#
# Exit status 1 if any target crashed. Only one fuzzer runs at a time.
set -u
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
out=${FUZZ_OUT:-build/fuzz}
clang=${CLANG:-clang}
mkdir -p "$out"
if [ $# -gt 0 ]; then targets=("$@"); else
  targets=(); for f in tests/fuzz/fuzz_*.c; do t=${f##*/}; targets+=("${t%.c}"); done
fi
crashed=()
for t in "${targets[@]}"; do
  t=${t%.c}; t=${t##*/}
  echo "== $t: building"
  # shellcheck disable=SC2086
  if ! $clang -std=c99 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
       -Wall -Wextra -Wpedantic -I. ${FUZZ_CFLAGS:-} "tests/fuzz/$t.c" -o "$out/$t" -pthread; then
    crashed+=("$t (build failed)"); continue
  fi
  work="$out/corpus-$t" art="$out/crashes-$t/"
  rm -rf "$art"; mkdir -p "$work" "$art"
  cp -n "tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null
  echo "== $t: fuzzing for ${seconds}s ($(ls "$work" | wc -l) inputs in $work)"
  # Inputs up to 128 KiB: frames over the 64 KiB limits need room.
  # shellcheck disable=SC2086
  "$out/$t" -max_total_time="$seconds" -max_len=131072 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$art" ${FUZZ_ARGS:-} "$work" 2>&1 |
    tee "$out/$t.log" | grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)|^stat::(number_of_executed_units|average_exec_per_sec)|ERROR|invariant|runtime error|Test unit written'
  if ls "$art" | grep -q .; then crashed+=("$t: $(ls "$art" | tr '\n' ' ')"); fi
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "crashes (reproduce: $out/TARGET FILE; minimise: add -minimize_crash=1 -runs=10000):"
  printf '  %s\n' "${crashed[@]}"
  exit 1
fi
echo "no crashes"
