#!/usr/bin/env bash
# Runs each test program given on the command line, shows its output, and adds
# up the "N passed, N failed" line each one prints last. A program that
# crashes, hangs (killed after $WSR_TEST_TIMEOUT seconds) or prints no summary
# counts as one failure. The last line of output is the grand total.
set -u
limit=${WSR_TEST_TIMEOUT:-300}
total_pass=0 total_fail=0
for prog in "$@"; do
  out=$(mktemp)
  # shellcheck disable=SC2086
  timeout -k 5 "$limit" ${WSR_TEST_WRAP:-} "$prog" >"$out" 2>&1
  rc=$?
  summary=$(tr -d '\r' <"$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -n "$summary" ]; then
    p=${summary%% passed*}; f=${summary#*, }; f=${f%% failed}
  else
    p=0 f=0
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crash, timeout or exit code without counted failure
  tr -d '\r' <"$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed$'
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "$prog: timed out after ${limit}s"; fi
  printf '%-28s %6d passed, %d failed%s\n' "${prog#*/}" "$p" "$f" \
    "$([ "$rc" -ne 0 ] && echo " (exit $rc)")"
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  rm -f "$out"
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
