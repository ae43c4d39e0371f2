#!/usr/bin/env bash
# Tests greenplum-remediation-shim with fake `sudo` and `logger`: the closed set of commands
# runs (as gpadmin, with only allowlisted environment), everything else is refused, and no
# shell syntax in the line is ever evaluated. Prints `N passed, M failed`.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
cat > "$tmp/bin/sudo" <<'FAKE'
#!/bin/sh
printf '%s\n' "$@" > "$SHIM_TEST_OUT"
FAKE
printf '#!/bin/sh\nexit 0\n' > "$tmp/bin/logger"
chmod +x "$tmp/bin/sudo" "$tmp/bin/logger"
export PATH="$tmp/bin:$PATH" SHIM_TEST_OUT="$tmp/out"
passed=0; failed=0

run() { rm -f "$tmp/out" "$tmp/pwned"; SSH_ORIGINAL_COMMAND="$1" sh "$here/greenplum-remediation-shim" >/dev/null 2>&1; }
ok() { if "$@"; then passed=$((passed+1)); else failed=$((failed+1)); echo "FAIL: ${case_name}"; fi; }

allowed() {
  case_name="allowed: $1"
  run "$1"; local code=$?
  ok [ "$code" -eq 0 ]
  ok [ -f "$tmp/out" ]
  ok grep -qx -- "$2" "$tmp/out"
}
refused() {
  case_name="refused: $1"
  run "$1"; local code=$?
  ok [ "$code" -eq 126 ]
  ok [ ! -f "$tmp/out" ]
  ok [ ! -e "$tmp/pwned" ]
}

allowed "env 'PGPORT=5432' 'COORDINATOR_DATA_DIRECTORY=/data/c/gpseg-1' 'gprecoverseg' '-a'" "gprecoverseg"
allowed "env 'PGPORT=5432' 'gprecoverseg' '-ar'" "-ar"
allowed "env 'PGPORT=5433' 'gpactivatestandby' '-a' '-d' '/data/standby'" "/data/standby"
allowed "env 'gpinitstandby' '-n' '-a'" "gpinitstandby"
allowed "env 'PGPORT=5432' 'gprecoverseg' '-a'" "PGPORT=5432"
refused "env 'bash' '-c' 'id'"
refused "env 'LD_PRELOAD=/tmp/x.so' 'gprecoverseg' '-a'"
refused "gprecoverseg -a"
refused "env 'gprecoverseg' '-a' '; touch $tmp/pwned'"
refused "env 'gprecoverseg' '-a' && touch $tmp/pwned"
refused "env 'gprecoverseg' '-a'; touch $tmp/pwned"
refused "env 'gprecoverseg' '-a' \$(touch $tmp/pwned)"
refused "env 'gprecoverseg' '-aF' '-i' 'file'"
refused "env 'gpactivatestandby' '-a' '-d' '/data/standby' '-f'"
refused "env 'rm' '-rf' '/'"
refused ""
case_name="lock check runs test -e, not sudo"
run "env 'test' '-e' '/nonexistent/gprecoverseg.lock'"; code=$?
ok [ "$code" -eq 1 ]
ok [ ! -f "$tmp/out" ]
case_name="lock check refuses other paths"
run "env 'test' '-e' '/etc/shadow'"; code=$?
ok [ "$code" -eq 126 ]

echo "shim: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
