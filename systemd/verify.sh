#!/usr/bin/env bash
# Checks Fieldlink's systemd units and sysusers files without installing anything on this host
# and without a running systemd (CI containers have none):
#
#   1. `systemd-analyze verify` on both units, inside a throwaway root that holds the host's
#      stock units (so dependencies such as network.target resolve), stand-ins for
#      /usr/bin/fieldlink-agent and /usr/bin/fieldlink-cloud (not built yet, or built for ARM)
#      and the host's own /bin/kill. Any message at all fails: verify exits 0 on unknown keys
#      and bad values, so its exit code alone would let real unit errors through. A deliberately
#      broken copy must be rejected first, which proves the check can fail here.
#   2. The properties the product relies on (Type=notify, the watchdog, the ExecStart lines, …)
#      are present, so an edit that drops one is caught even though it is still a valid unit.
#   3. `systemd-analyze security --offline` exposure stays at or below the level recorded when
#      the units were written (agent 1.5, cloud 1.1 on systemd 252).
#   4. `systemd-sysusers` creates the users in a copy of this host's passwd/group files, with the
#      agent in dialout.
#
#   systemd/verify.sh        run the checks
#   systemd/verify.sh -v     also print the full security report of each unit
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)

verbose=0
[ "${1:-}" = -v ] && verbose=1

# Exposure ceilings on systemd-analyze's 0-100 threshold scale (10 × the displayed level).
declare -A max_exposure=([fieldlink-agent.service]=15 [fieldlink-cloud.service]=11)
units=(fieldlink-agent.service fieldlink-cloud.service)

if ! command -v systemd-analyze >/dev/null || ! command -v systemd-sysusers >/dev/null; then
  echo "== installing systemd (for systemd-analyze and systemd-sysusers)"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd
fi

root=$(mktemp -d -t fieldlink-units.XXXXXX)
trap 'rm -rf "$root"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# --- the throwaway root -------------------------------------------------------------------
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
for bin in fieldlink-agent fieldlink-cloud; do
  printf '#!/bin/sh\n# stand-in for the real %s, for systemd-analyze verify\nexit 0\n' "$bin" >"$root/usr/bin/$bin"
  chmod 0755 "$root/usr/bin/$bin"
done
cp "$(readlink -f /bin/kill)" "$root/usr/bin/kill"

# Runs verify on units installed in $root; prints every message it gives.
verify_in_root() {
  systemd-analyze verify --root="$root" --man=no "$@" 2>&1
}

# --- 1. verify, after proving that a broken unit is caught ----------------------------------
sed -e 's/^ProtectHome=yes$/ProtectHome=sometimes/' -e 's/^Restart=always$/Restart=always\nRestartSecs=5s/' \
  "$here/fieldlink-agent.service" >"$root/etc/systemd/system/fieldlink-selftest.service"
rm -f "$root/usr/bin/fieldlink-selftest"
sed -i "s#^ExecStart=/usr/bin/[^ ]*#ExecStart=/usr/bin/fieldlink-selftest#" "$root/etc/systemd/system/fieldlink-selftest.service"
selftest=$(verify_in_root fieldlink-selftest.service || true)
for expected in "sometimes" "RestartSecs" "fieldlink-selftest is not executable"; do
  grep -q "$expected" <<<"$selftest" \
    || fail "verify missed a deliberate error ($expected) in a broken copy; this check cannot be trusted here"
done
rm "$root/etc/systemd/system/fieldlink-selftest.service"

for unit in "${units[@]}"; do
  cp "$here/$unit" "$root/etc/systemd/system/$unit"
done
if out=$(verify_in_root "${units[@]}") && [ -z "$out" ]; then
  echo "ok: systemd-analyze verify ${units[*]}"
else
  fail "systemd-analyze verify ${units[*]}:"
  printf '%s\n' "$out" >&2
fi

# --- 2. the properties the programs and the packaging rely on -------------------------------
require() {
  local unit=$1 line
  shift
  for line in "$@"; do
    grep -qxF -- "$line" "$here/$unit" || fail "$unit lacks the line: $line"
  done
}
common=(
  "Type=notify" "Restart=always" "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=yes"
  "PrivateTmp=yes" "DevicePolicy=closed" "ConfigurationDirectory=fieldlink" "CapabilityBoundingSet="
)
require fieldlink-agent.service "${common[@]}" \
  "ExecStart=/usr/bin/fieldlink-agent run --config /etc/fieldlink/agent.toml" \
  "ExecReload=/bin/kill -HUP \$MAINPID" "StateDirectory=fieldlink/agent" "User=fieldlink-agent" \
  "SupplementaryGroups=dialout" "DeviceAllow=char-ttyS rw" "DeviceAllow=char-ttyUSB rw" \
  "DeviceAllow=char-ttyACM rw"
require fieldlink-cloud.service "${common[@]}" \
  "ExecStart=/usr/bin/fieldlink-cloud serve --config /etc/fieldlink/cloud.toml" \
  "StateDirectory=fieldlink/cloud" "User=fieldlink-cloud"
for unit in "${units[@]}"; do
  grep -qE '^WatchdogSec=[1-9]' "$here/$unit" || fail "$unit has no WatchdogSec="
done
grep -qE '^MemoryMax=' "$here/fieldlink-agent.service" || fail "fieldlink-agent.service has no MemoryMax="
grep -qE '^CPUQuota=' "$here/fieldlink-agent.service" || fail "fieldlink-agent.service has no CPUQuota="
[ "$failures" -eq 0 ] && echo "ok: required directives present"

# --- 3. security exposure -------------------------------------------------------------------
for unit in "${units[@]}"; do
  report=$(systemd-analyze security --offline=true --root="$root" --no-pager \
    --threshold="${max_exposure[$unit]}" "$unit" 2>&1) && status=0 || status=$?
  [ "$verbose" -eq 1 ] && printf '%s\n' "$report"
  level=$(grep -o 'Overall exposure level for [^:]*: [0-9.]* [A-Z]*' <<<"$report" || true)
  if [ "$status" -eq 0 ] && [ -n "$level" ]; then
    echo "ok: ${level#Overall }"
  else
    fail "systemd-analyze security $unit: ${level:-no result} (ceiling $((max_exposure[$unit] / 10)).$((max_exposure[$unit] % 10)))"
    printf '%s\n' "$report" | grep -v '^✓' >&2
  fi
done

# --- 4. sysusers -----------------------------------------------------------------------------
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d"
cp /etc/passwd /etc/group "$root/etc/"
cp "$here"/sysusers/fieldlink-*.conf "$root/usr/lib/sysusers.d/"
if out=$(systemd-sysusers --root="$root" fieldlink-agent.conf fieldlink-cloud.conf 2>&1); then
  for user in fieldlink-agent fieldlink-cloud; do
    grep -q "^$user:x:[0-9]*:[0-9]*:[^:]*:/var/lib/fieldlink/${user#fieldlink-}:/usr/sbin/nologin$" "$root/etc/passwd" \
      || fail "sysusers did not create system user $user as expected"
  done
  grep -Eq '^dialout:[^:]*:[0-9]+:(.*,)?fieldlink-agent(,.*)?$' "$root/etc/group" \
    || fail "sysusers did not put fieldlink-agent into dialout"
  [ "$failures" -eq 0 ] && echo "ok: systemd-sysusers creates fieldlink-agent (in dialout) and fieldlink-cloud"
else
  fail "systemd-sysusers: $out"
fi

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
