#!/usr/bin/env bash
# Tests Fieldlink's Debian packages the way an operator uses them, inside a throwaway root so
# this host is never touched:
#
#   1. builds fieldlink-agent and fieldlink-cloud for amd64 with cross/deb/build.sh, twice (the
#      second with the next Debian revision, for the upgrade);
#   2. reads each package: fields, file list with owners and modes, conffiles, md5sums, the unit
#      identical to systemd/'s, and lintian (installed here when missing);
#   3. installs both with `dpkg --root=<tmp> --force-script-chrootless`, so the maintainer
#      scripts run with DPKG_ROOT=<tmp> against the throwaway root's passwd, group and files, and
#      checks what they did: the system users (the agent's in dialout), the state directories
#      owned by them, the configuration readable by the service's group only, nothing enabled;
#      runs the installed programs on the installed configuration (check-config);
#   4. acts as an operator: edits both configurations, enables the units (`systemctl --root`),
#      leaves a journal and a store in the state directories;
#   5. upgrades to the second build, removes, reinstalls and removes again: every edit, the
#      journal, the store and the links survive, with their owners and modes;
#   6. purges the agent, then the cloud: configuration, state and links are gone, and the shared
#      directories go with the last package;
#   7. inspects arm64 and armhf packages of binaries already built (scripts/test-arm.sh leaves
#      debug ones; cross/build.sh the shipped ones): architecture, contents, dependencies, and the
#      program runs under qemu-user. Skipped, and said so, when no ARM binary is there.
#
#   cross/deb/test.sh                     debug-profile binaries (fast; packaging is the same)
#   FIELDLINK_DEB_PROFILE=release         test the release build instead
#   FIELDLINK_DEB_PREBUILT=1              pack the programs already in target/ (scripts/test.sh,
#                                         whose tests have just built them) instead of building
#                                         each on its own
#   FIELDLINK_SKIP_INSTALL=1              never call apt-get
#
# Needs root (dpkg changes owners in the throwaway root). Exits non-zero on any failed check.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=cross/toolchain.sh
source cross/toolchain.sh

profile=${FIELDLINK_DEB_PROFILE:-dev}
[ "$(id -u)" -eq 0 ] || { echo "cross/deb/test.sh needs root (dpkg sets owners in its throwaway root)" >&2; exit 2; }

if [ "${FIELDLINK_SKIP_INSTALL:-0}" != 1 ]; then
  debs=()
  command -v lintian >/dev/null || debs+=(lintian)
  command -v systemd-sysusers >/dev/null || debs+=(systemd)
  command -v jq >/dev/null || debs+=(jq)
  command -v md5sum >/dev/null || debs+=(coreutils)
  command -v file >/dev/null || debs+=(file)
  if [ ${#debs[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${debs[*]}"
    fieldlink_as_root apt-get update -qq
    fieldlink_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}"
  fi
fi

work=$(mktemp -d -t fieldlink-deb-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
step() { printf '\n== %s\n' "$*"; }

metadata=$(cargo metadata --no-deps --format-version 1 --locked)
target_dir=$(jq -r .target_directory <<<"$metadata")
crate_version() { jq -r --arg p "$1" '.packages[] | select(.name == $p) | .version' <<<"$metadata"; }
v1="$(crate_version fieldlink-agent)-1"
v2="$(crate_version fieldlink-agent)-2"
[ "$(crate_version fieldlink-cloud)" = "$(crate_version fieldlink-agent)" ] \
  || { echo "the agent and the cloud have different versions; this test assumes one" >&2; exit 2; }
profile_dir=debug
[ "$profile" = release ] && profile_dir=release

# --- 1. build ---------------------------------------------------------------------------------
step "building the amd64 packages ($profile profile), $v1 and $v2"
start=$(date +%s)
# gzip: packing is the same for any compression, and xz takes minutes for the large debug
# binaries on a 2-core machine (zstd is faster still, but Debian's archive and lintian refuse it).
build_args=(--compression gzip)
[ "${FIELDLINK_DEB_PREBUILT:-0}" = 1 ] && build_args+=(--no-build)
bash cross/deb/build.sh --profile "$profile" --arch amd64 --version "$v1" --out "$work/v1" "${build_args[@]}"
bash cross/deb/build.sh --profile "$profile" --arch amd64 --version "$v2" --out "$work/v2" --no-build --compression gzip
echo "built in $(( $(date +%s) - start )) s"
agent_deb=$work/v1/fieldlink-agent_${v1}_amd64.deb
cloud_deb=$work/v1/fieldlink-cloud_${v1}_amd64.deb
for f in "$agent_deb" "$cloud_deb" "$work/v2/fieldlink-agent_${v2}_amd64.deb" "$work/v2/fieldlink-cloud_${v2}_amd64.deb"; do
  [ -f "$f" ] || { echo "cross/deb/build.sh did not make $f" >&2; exit 1; }
done

# What each package is about: its user, state directory, configuration file, and a line of
# that configuration that the package must have made so.
declare -A user=([fieldlink-agent]=fieldlink-agent [fieldlink-cloud]=fieldlink-cloud)
declare -A state=([fieldlink-agent]=/var/lib/fieldlink/agent [fieldlink-cloud]=/var/lib/fieldlink/cloud)
declare -A conf=([fieldlink-agent]=/etc/fieldlink/agent.toml [fieldlink-cloud]=/etc/fieldlink/cloud.toml)
declare -A conf_line=(
  [fieldlink-agent]='path = "/var/lib/fieldlink/agent/journal.db"'
  [fieldlink-cloud]='sqlite_path = "/var/lib/fieldlink/cloud/fieldlink-cloud.db"'
)
packages=(fieldlink-agent fieldlink-cloud)

# --- 2. the packages as files ------------------------------------------------------------------
# Checks one .deb without installing it: $1 package, $2 file, $3 Debian architecture. Leaves
# the unpacked package in $work/extract-<package>-<architecture>.
inspect_deb() {
  local p=$1 deb=$2 arch=$3 info listing x
  info=$(dpkg-deb -I "$deb")
  listing=$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }')
  [ "$(dpkg-deb -f "$deb" Package)" = "$p" ] || fail "$deb: Package is not $p"
  [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "$deb: Architecture is $(dpkg-deb -f "$deb" Architecture), not $arch"
  dpkg-deb -f "$deb" Depends | grep -Eq '^libc6 \(>= 2\.[0-9]+\)' || fail "$deb: Depends lacks libc6 (>= …): $(dpkg-deb -f "$deb" Depends)"
  dpkg-deb -f "$deb" Depends | grep -q 'systemd | systemd-sysusers' || fail "$deb: Depends lacks systemd | systemd-sysusers"
  [ "$(dpkg-deb -f "$deb" Maintainer)" != "" ] || fail "$deb: no Maintainer"
  for x in postinst prerm postrm conffiles md5sums; do
    grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +[*]? *$x( |$)" <<<"$info" || fail "$deb: no $x in the control archive"
  done
  for x in \
    "-rwxr-xr-x root/root ./usr/bin/$p" \
    "-rw-r--r-- root/root ./usr/lib/systemd/system/$p.service" \
    "-rw-r--r-- root/root ./usr/lib/sysusers.d/$p.conf" \
    "-rw-r----- root/root .${conf[$p]}" \
    "drwxr-x--- root/root .${state[$p]}/" \
    "-rw-r--r-- root/root ./usr/share/doc/$p/copyright" \
    "-rw-r--r-- root/root ./usr/share/doc/$p/changelog.Debian.gz"; do
    grep -qxF -- "$x" <<<"$listing" || fail "$deb: no entry $x"
  done
  # Nothing else under /etc: a file there that is not a conffile would be overwritten on upgrade.
  [ "$(grep -c ' \./etc/.*[^/]$' <<<"$listing")" = 1 ] || fail "$deb: more than one file under /etc"

  local x_dir=$work/extract-$p-$arch
  rm -rf "$x_dir"
  dpkg-deb -R "$deb" "$x_dir"
  [ "$(cat "$x_dir/DEBIAN/conffiles")" = "${conf[$p]}" ] || fail "$deb: conffiles is not exactly ${conf[$p]}"
  (cd "$x_dir" && md5sum --quiet -c DEBIAN/md5sums) || fail "$deb: md5sums do not match the files"
  [ "$(wc -l <"$x_dir/DEBIAN/md5sums")" = "$(cd "$x_dir" && find . -path ./DEBIAN -prune -o -type f -print | grep -vc "^\.${conf[$p]}$")" ] \
    || fail "$deb: md5sums does not list every file but the conffile"
  cmp -s "$x_dir/usr/lib/systemd/system/$p.service" "systemd/$p.service" || fail "$deb: the unit differs from systemd/$p.service"
  cmp -s "$x_dir/usr/lib/sysusers.d/$p.conf" "systemd/sysusers/$p.conf" || fail "$deb: the sysusers file differs from systemd/sysusers/$p.conf"
  grep -qxF -- "${conf_line[$p]}" "$x_dir${conf[$p]}" || fail "$deb: ${conf[$p]} lacks: ${conf_line[$p]}"
  grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$x_dir/usr/share/doc/$p/copyright" \
    || fail "$deb: copyright is not DEP-5"
  grep -q '^ tokio v[0-9.]*: MIT$' "$x_dir/usr/share/doc/$p/copyright" || fail "$deb: copyright does not list the crates compiled in"
  zcat "$x_dir/usr/share/doc/$p/changelog.Debian.gz" | head -n1 | grep -qF "$p ($(dpkg-deb -f "$deb" Version))" \
    || fail "$deb: the changelog's first entry is not this version"
  return 0
}

step "the packages as files"
for p in "${packages[@]}"; do
  before=$failures
  inspect_deb "$p" "$work/v1/${p}_${v1}_amd64.deb" amd64
  [ "$failures" -eq "$before" ] && ok "$p ${v1} amd64: fields, files, modes, conffiles, md5sums, unit, copyright, changelog"
done

step "lintian"
if lintian --fail-on error,warning --display-info "$agent_deb" "$cloud_deb" >"$work/lintian.log" 2>&1; then
  ok "lintian: no error or warning$(grep -c '^I: ' "$work/lintian.log" | sed 's/^0$//; s/^[0-9][0-9]*$/, & info tag(s)/')"
  grep '^I: ' "$work/lintian.log" || true
else
  fail "lintian:"
  cat "$work/lintian.log" >&2
fi

# --- 3. install into a throwaway root ----------------------------------------------------------
mkdir -p "$root/etc" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# A fresh Debian system's accounts: root, and the dialout group the agent's user joins.
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
printf 'root:*::0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:x:0:\ndialout:x:20:\n' >"$root/etc/group"
printf 'root:*::\ndialout:*::\n' >"$root/etc/gshadow"
chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"

# dpkg in the throwaway root. The scripts run on this host with DPKG_ROOT set (no chroot, which
# would need a whole system inside); dependencies (libc6, systemd) are this host's, not the
# empty root's.
dpkg_root() {
  dpkg --root="$root" --force-script-chrootless --force-depends --log="$work/dpkg.log" "$@"
}
status_of() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${db:Status-Abbrev}${Version}' "$1" 2>/dev/null || true; }
uid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$root/etc/passwd"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$root/etc/group"; }
# "<mode> <uid>:<gid>" of a path in the root.
perm() { stat -c '%a %u:%g' "$root$1"; }
expect_perm() {
  local path=$1 want=$2 what=$3 got
  got=$(perm "$path" 2>/dev/null || echo missing)
  [ "$got" = "$want" ] || fail "$what: $path is $got, expected $want"
}

# What must hold while package $1 is installed at version $2.
check_installed() {
  local p=$1 v=$2 u uid gid
  u=${user[$p]}
  [ "$(status_of "$p")" = "ii $v" ] || fail "$p: dpkg status is '$(status_of "$p")', expected 'ii $v'"
  uid=$(uid_of "$u")
  gid=$(gid_of "$u")
  [ -n "$uid" ] && [ -n "$gid" ] || { fail "$p: postinst created no user or group $u"; return; }
  [ "$uid" -lt 1000 ] || fail "$p: $u has uid $uid, not a system user"
  grep -q "^$u:x:$uid:$gid:[^:]*:${state[$p]}:/usr/sbin/nologin$" "$root/etc/passwd" \
    || fail "$p: $u's passwd entry: $(grep "^$u:" "$root/etc/passwd")"
  expect_perm "/usr/bin/$p" "755 0:0" "$p"
  expect_perm "/usr/lib/systemd/system/$p.service" "644 0:0" "$p"
  expect_perm "/usr/lib/sysusers.d/$p.conf" "644 0:0" "$p"
  expect_perm "${state[$p]}" "750 $uid:$gid" "$p: the state directory belongs to the service user"
  expect_perm "${conf[$p]}" "640 0:$gid" "$p: the configuration is root's, readable by the service's group"
  dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Conffiles}\n' "$p" | grep -q "^ ${conf[$p]} [0-9a-f]\{32\}$" \
    || fail "$p: dpkg does not track ${conf[$p]} as a conffile"
  "$root/usr/bin/$p" --version | grep -qF "$(crate_version "$p")" || fail "$p: the installed program does not run or says another version"
}

step "install $v1 into a throwaway root"
dpkg_root -i "$agent_deb" "$cloud_deb"
for p in "${packages[@]}"; do
  before=$failures
  check_installed "$p" "$v1"
  [ "$failures" -eq "$before" ] && ok "$p $v1 installed: user ${user[$p]} (uid $(uid_of "${user[$p]}")), state $(perm "${state[$p]}"), ${conf[$p]} $(perm "${conf[$p]}")"
done
grep -Eq "^dialout:[^:]*:20:(.*,)?fieldlink-agent(,.*)?$" "$root/etc/group" \
  && ok "fieldlink-agent is in dialout" || fail "fieldlink-agent is not in dialout: $(grep '^dialout:' "$root/etc/group")"
grep -Eq "^dialout:.*fieldlink-cloud" "$root/etc/group" && fail "fieldlink-cloud was put in dialout"
if compgen -G "$root/etc/systemd/system/*.wants/fieldlink-*" >/dev/null; then
  fail "a first install enabled a unit: $(ls "$root"/etc/systemd/system/*.wants/)"
else
  ok "nothing enabled by the install (the configuration is an example to edit first)"
fi
# The shipped configurations are valid for the installed programs.
"$root/usr/bin/fieldlink-agent" --config "$root/etc/fieldlink/agent.toml" check-config >"$work/agent-check.log" 2>&1 \
  && ok "fieldlink-agent check-config accepts the shipped agent.toml" \
  || { fail "fieldlink-agent check-config refuses the shipped agent.toml:"; cat "$work/agent-check.log" >&2; }
"$root/usr/bin/fieldlink-cloud" --config "$root/etc/fieldlink/cloud.toml" check-config >"$work/cloud-check.log" 2>&1 \
  && ok "fieldlink-cloud check-config accepts the shipped cloud.toml" \
  || { fail "fieldlink-cloud check-config refuses the shipped cloud.toml:"; cat "$work/cloud-check.log" >&2; }

# --- 4. the operator's changes ------------------------------------------------------------------
step "operator: edit the configurations, enable the units, leave a journal and a store"
sed -i 's/^id = "site-1-gw"$/id = "pump-station-7"/' "$root/etc/fieldlink/agent.toml"
grep -qx 'id = "pump-station-7"' "$root/etc/fieldlink/agent.toml" || fail "the agent.toml edit did not apply (test setup)"
printf '\n# edited by the operator\n' >>"$root/etc/fieldlink/cloud.toml"
for p in "${packages[@]}"; do
  cp -p "$root${conf[$p]}" "$work/$p.conf.edited"
done
systemctl --root="$root" enable fieldlink-agent.service fieldlink-cloud.service 2>&1 | sed 's/^/  /'
for p in "${packages[@]}"; do
  [ -L "$root/etc/systemd/system/multi-user.target.wants/$p.service" ] || fail "systemctl --root enable made no link for $p (test setup)"
done
# A journal and a store as the services would leave them: owned by their users, mode 0600.
head -c 65536 /dev/urandom >"$root/var/lib/fieldlink/agent/journal.db"
head -c 65536 /dev/urandom >"$root/var/lib/fieldlink/cloud/fieldlink-cloud.db"
chown "$(uid_of fieldlink-agent):$(gid_of fieldlink-agent)" "$root/var/lib/fieldlink/agent/journal.db"
chown "$(uid_of fieldlink-cloud):$(gid_of fieldlink-cloud)" "$root/var/lib/fieldlink/cloud/fieldlink-cloud.db"
chmod 0600 "$root/var/lib/fieldlink/agent/journal.db" "$root/var/lib/fieldlink/cloud/fieldlink-cloud.db"
declare -A data=([fieldlink-agent]=/var/lib/fieldlink/agent/journal.db [fieldlink-cloud]=/var/lib/fieldlink/cloud/fieldlink-cloud.db)
for p in "${packages[@]}"; do
  md5sum <"$root${data[$p]}" >"$work/$p.data.md5"
  perm "${data[$p]}" >"$work/$p.data.perm"
done

# What the operator made must still be there, untouched: $1 package, $2 what just happened.
check_kept() {
  local p=$1 when=$2
  cmp -s "$root${conf[$p]}" "$work/$p.conf.edited" || fail "$p: the edited ${conf[$p]} did not survive $when"
  [ "$(perm "${conf[$p]}" 2>/dev/null)" = "$(stat -c '%a %u:%g' "$work/$p.conf.edited")" ] \
    || fail "$p: ${conf[$p]} changed owner or mode at $when: $(perm "${conf[$p]}" 2>/dev/null || echo missing)"
  md5sum <"$root${data[$p]}" 2>/dev/null | cmp -s - "$work/$p.data.md5" || fail "$p: ${data[$p]} did not survive $when"
  [ "$(perm "${data[$p]}" 2>/dev/null)" = "$(cat "$work/$p.data.perm")" ] || fail "$p: ${data[$p]} changed owner or mode at $when"
  [ -L "$root/etc/systemd/system/multi-user.target.wants/$p.service" ] || fail "$p: the enablement link did not survive $when"
  compgen -G "$root/etc/fieldlink/*.dpkg-*" >/dev/null && fail "$p: dpkg left $(ls "$root"/etc/fieldlink/*.dpkg-*) at $when"
  grep -q "^${user[$p]}:" "$root/etc/passwd" || fail "$p: user ${user[$p]} gone at $when"
  return 0
}

# --- 5. upgrade, remove, reinstall ---------------------------------------------------------------
step "upgrade to $v2"
dpkg_root -i "$work/v2/fieldlink-agent_${v2}_amd64.deb" "$work/v2/fieldlink-cloud_${v2}_amd64.deb"
for p in "${packages[@]}"; do
  before=$failures
  check_installed "$p" "$v2"
  check_kept "$p" "the upgrade"
  [ "$failures" -eq "$before" ] && ok "$p upgraded to $v2: configuration edit, ${data[$p]}, owners, modes and links kept"
done

step "remove (configuration and state stay)"
dpkg_root -r fieldlink-agent fieldlink-cloud
for p in "${packages[@]}"; do
  before=$failures
  [ "$(status_of "$p")" = "rc $v2" ] || fail "$p: after remove dpkg says '$(status_of "$p")', expected 'rc $v2'"
  [ ! -e "$root/usr/bin/$p" ] || fail "$p: /usr/bin/$p still there after remove"
  [ ! -e "$root/usr/lib/systemd/system/$p.service" ] || fail "$p: the unit still there after remove"
  check_kept "$p" "remove"
  expect_perm "${state[$p]}" "750 $(uid_of "${user[$p]}"):$(gid_of "${user[$p]}")" "$p after remove"
  [ "$failures" -eq "$before" ] && ok "$p removed: program and unit gone; configuration, ${data[$p]} and user kept"
done

step "install again over the kept configuration, then remove"
dpkg_root -i "$work/v2/fieldlink-agent_${v2}_amd64.deb" "$work/v2/fieldlink-cloud_${v2}_amd64.deb"
for p in "${packages[@]}"; do
  before=$failures
  check_installed "$p" "$v2"
  check_kept "$p" "a reinstall"
  [ "$failures" -eq "$before" ] && ok "$p reinstalled: the kept configuration and state are used as they are"
done
dpkg_root -r fieldlink-agent fieldlink-cloud

# --- 6. purge ------------------------------------------------------------------------------------
step "purge fieldlink-agent, then fieldlink-cloud"
dpkg_root -P fieldlink-agent
before=$failures
[ -z "$(status_of fieldlink-agent)" ] || fail "fieldlink-agent: dpkg still knows it after purge: $(status_of fieldlink-agent)"
[ ! -e "$root/etc/fieldlink/agent.toml" ] || fail "purge left /etc/fieldlink/agent.toml"
[ ! -e "$root/var/lib/fieldlink/agent" ] || fail "purge left /var/lib/fieldlink/agent: $(ls -A "$root/var/lib/fieldlink/agent")"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/fieldlink-agent.service" ] || fail "purge left the agent's enablement link"
check_kept fieldlink-cloud "the agent's purge"
[ "$failures" -eq "$before" ] && ok "fieldlink-agent purged: configuration, journal and link gone; the cloud's untouched"

dpkg_root -P fieldlink-cloud
before=$failures
[ -z "$(status_of fieldlink-cloud)" ] || fail "fieldlink-cloud: dpkg still knows it after purge"
for gone in /etc/fieldlink /var/lib/fieldlink /etc/systemd/system/multi-user.target.wants/fieldlink-cloud.service; do
  [ ! -e "$root$gone" ] || fail "purging the last package left $gone"
done
[ "$failures" -eq "$before" ] && ok "fieldlink-cloud purged: /etc/fieldlink and /var/lib/fieldlink gone with the last package"

# --- 7. ARM packages ------------------------------------------------------------------------------
step "arm64 and armhf packages"
declare -A arm_triple=([arm64]=aarch64-unknown-linux-gnu [armhf]=armv7-unknown-linux-gnueabihf)
declare -A arm_gnu=([arm64]=aarch64-linux-gnu [armhf]=arm-linux-gnueabihf)
declare -A arm_file=([arm64]="ARM aarch64" [armhf]="ARM, EABI5")
declare -A arm_qemu=([arm64]=qemu-aarch64 [armhf]=qemu-arm)
arm_checked=0
for arch in arm64 armhf; do
  for p in "${packages[@]}"; do
    # shellcheck source=/dev/null
    deb_architectures=() && source "cross/deb/packages/$p.sh"
    printf '%s\n' "${deb_architectures[@]}" | grep -qx "$arch" || continue
    dir=$profile_dir
    [ "$profile" = release ] && dir=$(fieldlink_ship_profile "$p")
    bin="$target_dir/${arm_triple[$arch]}/$dir/$p"
    if [ ! -x "$bin" ]; then
      echo "skipped: $p $arch, no $bin (scripts/test-arm.sh or cross/build.sh builds it)"
      continue
    fi
    before=$failures
    FIELDLINK_SKIP_INSTALL=1 bash cross/deb/build.sh --profile "$profile" --arch "$arch" --version "$v1" \
      --out "$work/arm" --no-build --compression gzip "$p" >/dev/null
    deb="$work/arm/${p}_${v1}_$arch.deb"
    inspect_deb "$p" "$deb" "$arch"
    x_dir=$work/extract-$p-$arch
    file -b "$x_dir/usr/bin/$p" | grep -qF "${arm_file[$arch]}" || fail "$deb: /usr/bin/$p is $(file -b "$x_dir/usr/bin/$p")"
    if command -v "${arm_qemu[$arch]}" >/dev/null; then
      "${arm_qemu[$arch]}" -L "/usr/${arm_gnu[$arch]}" "$x_dir/usr/bin/$p" --version | grep -qF "$(crate_version "$p")" \
        || fail "$deb: /usr/bin/$p does not run under ${arm_qemu[$arch]}"
    fi
    arm_checked=$((arm_checked + 1))
    [ "$failures" -eq "$before" ] && ok "$p $arch: $(dpkg-deb -f "$deb" Architecture), $(file -b "$x_dir/usr/bin/$p" | cut -d, -f1-2), Depends: $(dpkg-deb -f "$deb" Depends); runs under ${arm_qemu[$arch]}"
  done
done
echo "ARM packages inspected: $arm_checked"

echo
if [ "$failures" -gt 0 ]; then
  echo "$failures package check(s) failed" >&2
  exit 1
fi
echo "package checks passed"
