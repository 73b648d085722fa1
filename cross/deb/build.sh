#!/usr/bin/env bash
# Builds Fieldlink's Debian packages with dpkg-deb: fieldlink-agent for amd64, arm64 and armhf,
# fieldlink-cloud for amd64 and arm64 (the lists are in cross/deb/packages/<package>.sh).
#
#   cross/deb/build.sh                              every package for every architecture, release
#   cross/deb/build.sh fieldlink-agent              one package, all its architectures
#   cross/deb/build.sh --arch arm64 fieldlink-agent
#   cross/deb/build.sh --profile dev --arch amd64   debug-profile binaries (tests of the packaging)
#   cross/deb/build.sh --version 0.1.0-2            the Debian version (default: <crate>-1)
#   cross/deb/build.sh --no-build                   package binaries cargo already built
#   cross/deb/build.sh --out DIR                    where the .deb files go (default
#                                                   <target-dir>/deb)
#   cross/deb/build.sh --compression gzip           data compression (default xz, the smallest;
#                                                   gzip packs several times faster, for tests)
#   FIELDLINK_SKIP_INSTALL=1                        never call apt-get or rustup
#
# Each package holds: /usr/bin/<package> (stripped), its systemd unit and sysusers file from
# systemd/, the commented default configuration as a conffile in /etc/fieldlink/ (mode 0640;
# postinst gives it to the service's group), its state directory under /var/lib/fieldlink, a
# DEP-5 copyright file listing every crate compiled in, a changelog, md5sums and the maintainer
# scripts made from cross/deb/templates/. Library dependencies come from the binary's own
# DT_NEEDED entries and glibc symbol versions, so a cross-built binary needs no ARM dpkg database.
#
# Binaries are built with one cargo invocation per package and architecture, as cross/build.sh
# does and for the same reason (feature unification). ARM builds use Debian's cross compilers
# (cross/toolchain.sh). File times are the last commit's (SOURCE_DATE_EPOCH), so a rebuild of
# the same commit gives the same package.

# The deb_* variables come from cross/deb/packages/<package>.sh, sourced per package.
# shellcheck disable=SC2154
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source=cross/toolchain.sh
source cross/toolchain.sh

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; }

# Debian architecture -> Rust target triple (empty: this amd64 host, no --target).
declare -A rust_target=(
  [amd64]=""
  [arm64]=aarch64-unknown-linux-gnu
  [armhf]=armv7-unknown-linux-gnueabihf
)
# Debian architecture -> binutils prefix for strip and objdump.
declare -A binutils=([amd64]="" [arm64]=aarch64-linux-gnu- [armhf]=arm-linux-gnueabihf-)

archs=()
packages=()
profile=release
version=""
build=1
out=""
compression=xz
while [ $# -gt 0 ]; do
  case $1 in
    -a | --arch) archs+=("${2:?--arch needs amd64, arm64 or armhf}"); shift 2 ;;
    --profile) profile=${2:?--profile needs release or dev}; shift 2 ;;
    --version) version=${2:?--version needs a Debian version}; shift 2 ;;
    --no-build) build=0; shift ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --compression) compression=${2:?--compression needs xz, zstd, gzip or none}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) packages+=("$1"); shift ;;
  esac
done
[ ${#packages[@]} -gt 0 ] || packages=(fieldlink-agent fieldlink-cloud)
case $profile in
  release) profile_dir=release ;;
  dev) profile_dir=debug ;;
  *) echo "--profile must be release or dev, not $profile" >&2; exit 2 ;;
esac
case $compression in
  xz | zstd | gzip | none) ;;
  *) echo "--compression must be xz, zstd, gzip or none, not $compression" >&2; exit 2 ;;
esac
for a in "${archs[@]}"; do
  [ -n "${rust_target[$a]+set}" ] || { echo "unsupported architecture $a (amd64, arm64, armhf)" >&2; exit 2; }
done
[ "$(dpkg --print-architecture)" = amd64 ] || { echo "cross/deb/build.sh runs on amd64 hosts" >&2; exit 2; }
if [ -n "$version" ] && ! grep -Eq '^[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$' <<<"$version"; then
  echo "--version $version is not an upstream-revision Debian version (e.g. 0.1.0-2)" >&2
  exit 2
fi

metadata=$(cargo metadata --no-deps --format-version 1 --locked)
target_dir=$(jq -r .target_directory <<<"$metadata")
out=${out:-$target_dir/deb}
mkdir -p "$out"
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
maintainer="Fieldlink developers <packages@fieldlink.example.org>"

# What each (package, architecture) pair needs, decided before anything is built.
jobs=()
for p in "${packages[@]}"; do
  [ -f "cross/deb/packages/$p.sh" ] || { echo "no package description cross/deb/packages/$p.sh" >&2; exit 2; }
  # shellcheck source=/dev/null
  deb_architectures=() && source "cross/deb/packages/$p.sh"
  for a in "${deb_architectures[@]}"; do
    if [ ${#archs[@]} -eq 0 ] || printf '%s\n' "${archs[@]}" | grep -qx "$a"; then
      jobs+=("$p:$a")
    fi
  done
done
[ ${#jobs[@]} -gt 0 ] || { echo "nothing to build: ${packages[*]} for ${archs[*]}" >&2; exit 2; }

command -v dpkg-deb >/dev/null || { echo "dpkg-deb is missing (Debian's dpkg)" >&2; exit 1; }
arm_targets=()
for j in "${jobs[@]}"; do
  t=${rust_target[${j#*:}]}
  [ -z "$t" ] || printf '%s\n' "${arm_targets[@]}" | grep -qx "$t" || arm_targets+=("$t")
done
if [ ${#arm_targets[@]} -gt 0 ]; then
  [ "${FIELDLINK_SKIP_INSTALL:-0}" = 1 ] || fieldlink_ensure_cross_toolchain "${arm_targets[@]}"
  fieldlink_export_cross_env "${arm_targets[@]}"
fi

# "Depends:" for a binary: the packages of the shared libraries it names (DT_NEEDED), libc6 at
# the newest glibc symbol version it uses. An unknown library is an error, not a guess.
depends_of() {
  local bin=$1 prefix=$2 lib libs=() glibc
  mapfile -t libs < <("${prefix}objdump" -p "$bin" | awk '$1 == "NEEDED" { print $2 }')
  glibc=$("${prefix}objdump" -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  [ -n "$glibc" ] || { echo "no glibc symbol versions in $bin" >&2; return 1; }
  local deps=("libc6 (>= $glibc)")
  for lib in "${libs[@]}"; do
    case $lib in
      libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | libutil.so.1 | ld-linux*) ;;
      libgcc_s.so.1) deps+=("libgcc-s1 (>= 4.2)") ;;
      *) echo "$bin needs $lib: add its Debian package to depends_of in $0" >&2; return 1 ;;
    esac
  done
  # systemd-sysusers creates the service's user in postinst.
  deps+=("systemd | systemd-sysusers")
  local IFS=,
  sed 's/,/, /g' <<<"${deps[*]}"
}

# The crates compiled into a package's binary for a target, with their licenses (cargo tree
# reads only the lock file and manifests; no network).
crate_licenses() {
  local p=$1 t=$2 target_args=()
  [ -z "$t" ] || target_args=(--target "$t")
  cargo tree --locked --offline -p "$p" "${target_args[@]}" -e normal,build --prefix none \
    --format '{p}|{l}' 2>/dev/null \
    | sed 's/ (\*)$//; s/ (proc-macro)//' | grep -v '^fieldlink-' | sort -u \
    | awk -F'|' '{ sub(/ \(.*\)$/, "", $1); printf " %s: %s\n", $1, ($2 == "" ? "see the crate" : $2) }'
}

# Writes the DEP-5 copyright file of package $1 (built for Rust target $2) to $3.
write_copyright() {
  local p=$1 t=$2 dest=$3 year
  year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
  {
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: fieldlink"
    echo "Comment: $p is one statically linked Rust program. Besides Fieldlink's own code it"
    echo " contains these crates (name version: license), each under its own license and"
    echo " copyright as stated in its sources:"
    echo " ."
    crate_licenses "$p" "$t" | sed 's/^ \?/ /'
    echo
    echo "Files: *"
    echo "Copyright: $year Fieldlink developers"
    echo "License: Apache-2.0"
    echo
    echo "License: Apache-2.0"
    echo " Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use"
    echo " this file except in compliance with the License. You may obtain a copy of the"
    echo " License at"
    echo " ."
    echo "     http://www.apache.org/licenses/LICENSE-2.0"
    echo " ."
    echo " Unless required by applicable law or agreed to in writing, software distributed"
    echo " under the License is distributed on an \"AS IS\" BASIS, WITHOUT WARRANTIES OR"
    echo " CONDITIONS OF ANY KIND, either express or implied. See the License for the"
    echo " specific language governing permissions and limitations under the License."
    echo " ."
    echo " On Debian systems, the complete text of the Apache License, Version 2.0 can be"
    echo " found in /usr/share/common-licenses/Apache-2.0."
  } >"$dest"
}

# Replaces @KEY@ placeholders in a template with the values of the named shell variables.
fill() {
  local file=$1
  shift
  local script=() kv key val
  for kv in "$@"; do
    key=${kv%%=*}
    val=${kv#*=}
    val=${val//\\/\\\\}
    val=${val//|/\\|}
    val=${val//&/\\&}
    val=${val//$'\n'/\\n}
    script+=(-e "s|@${key}@|${val}|g")
  done
  sed "${script[@]}" "$file"
  if sed "${script[@]}" "$file" | grep -q '@[A-Z_]*@'; then
    echo "template $file: a placeholder is left unfilled" >&2
    return 1
  fi
}

built=()
for j in "${jobs[@]}"; do
  p=${j%:*}
  a=${j#*:}
  t=${rust_target[$a]}
  # shellcheck source=/dev/null
  source "cross/deb/packages/$p.sh"
  deb_conffile_edit=${deb_conffile_edit:-}

  crate_version=$(jq -r --arg p "$p" '.packages[] | select(.name == $p) | .version' <<<"$metadata")
  [ -n "$crate_version" ] || { echo "no crate $p in the workspace" >&2; exit 2; }
  v=${version:-$crate_version-1}

  # release: each package's shipped profile (the agent's is `gateway`); dev: dev for all.
  cargo_profile=$profile
  dir=$profile_dir
  if [ "$profile" = release ]; then
    cargo_profile=$(fieldlink_ship_profile "$p")
    dir=$cargo_profile
  fi
  if [ "$build" = 1 ]; then
    echo "== cargo build --profile $cargo_profile ${t:+--target $t }-p $p"
    target_args=()
    [ -z "$t" ] || target_args=(--target "$t")
    nice -n 10 cargo build --locked --profile "$cargo_profile" --bins -p "$p" "${target_args[@]}"
  fi
  bin="$target_dir/${t:+$t/}$dir/$p"
  [ -x "$bin" ] || { echo "missing $bin (build it, or drop --no-build)" >&2; exit 1; }

  stage=$(mktemp -d -t "fieldlink-deb-$p-$a.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  chmod 0755 "$stage"
  umask 022
  mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/systemd/system" \
    "$stage/usr/lib/sysusers.d" "$stage/etc/fieldlink" "$stage$deb_state_dir" \
    "$stage/usr/share/doc/$p" "$stage/usr/share/lintian/overrides"
  # As dh_strip: no symbols, no .comment/.note sections.
  "${binutils[$a]}strip" --strip-unneeded --remove-section=.comment --remove-section=.note \
    -o "$stage/usr/bin/$p" "$bin"
  chmod 0755 "$stage/usr/bin/$p"
  install -m 0644 "systemd/$p.service" "$stage/usr/lib/systemd/system/$p.service"
  install -m 0644 "systemd/sysusers/$p.conf" "$stage/usr/lib/sysusers.d/$p.conf"
  if [ -n "$deb_conffile_edit" ]; then
    sed -e "$deb_conffile_edit" "$deb_conffile_source" >"$stage$deb_conffile"
  else
    cp "$deb_conffile_source" "$stage$deb_conffile"
  fi
  grep -qxF -- "$deb_conffile_must_hold" "$stage$deb_conffile" \
    || { echo "$deb_conffile made from $deb_conffile_source lacks the line: $deb_conffile_must_hold" >&2; exit 1; }
  chmod 0640 "$stage$deb_conffile"
  chmod 0750 "$stage$deb_state_dir"
  install -m 0644 "cross/deb/lintian-overrides/$p" "$stage/usr/share/lintian/overrides/$p"
  write_copyright "$p" "$t" "$stage/usr/share/doc/$p/copyright"
  fill cross/deb/templates/changelog PACKAGE="$p" VERSION="$v" COMMIT="$commit" \
    MAINTAINER="$maintainer" DATE="$(date -u -R -d "@$SOURCE_DATE_EPOCH")" \
    | gzip -9n >"$stage/usr/share/doc/$p/changelog.Debian.gz"

  for script in postinst prerm postrm; do
    fill "cross/deb/templates/$script" PACKAGE="$p" USER="$deb_user" STATE_DIR="$deb_state_dir" \
      CONFFILE="$deb_conffile" >"$stage/DEBIAN/$script"
    chmod 0755 "$stage/DEBIAN/$script"
  done
  echo "$deb_conffile" >"$stage/DEBIAN/conffiles"
  depends=$(depends_of "$stage/usr/bin/$p" "${binutils[$a]}")
  installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
  # Continuation lines of the long description start with a space; "." marks an empty line.
  description=$(sed 's/^/ /' <<<"$deb_description")
  fill cross/deb/templates/control PACKAGE="$p" VERSION="$v" ARCH="$a" MAINTAINER="$maintainer" \
    INSTALLED_SIZE="$installed_size" DEPENDS="$depends" SECTION="$deb_section" \
    SUMMARY="$deb_summary" DESCRIPTION="$description" >"$stage/DEBIAN/control"
  # md5sums of everything but the conffile (dpkg records conffile hashes in its database).
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort \
    | grep -vxF "${deb_conffile#/}" | xargs md5sum) >"$stage/DEBIAN/md5sums"
  chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
  find "$stage" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +

  deb="$out/${p}_${v}_$a.deb"
  dpkg-deb --root-owner-group "-Z$compression" --build "$stage" "$deb" >/dev/null
  rm -rf "$stage"
  trap - EXIT
  built+=("$deb")
done

echo
printf '%-52s %12s\n' package bytes
for deb in "${built[@]}"; do
  printf '%-52s %12d\n' "$(basename "$deb")" "$(stat -c %s "$deb")"
done
echo "packages: $out"
