#!/usr/bin/env bash
# Builds Fieldlink's shipped binaries for Raspberry Pi gateways from an x86 Debian machine:
# arm64 (aarch64-unknown-linux-gnu, Pi 3/4/5 on a 64-bit OS) and armhf
# (armv7-unknown-linux-gnueabihf, 32-bit OS), with Debian's cross compilers, no Docker.
#
# It installs what is missing (rustup targets; Debian's gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf, libc6-dev-arm64-cross, libc6-dev-armhf-cross, qemu-user, jq), builds,
# then copies each binary stripped into <target-dir>/dist/<target>/ and reports its size, its
# architecture and the newest glibc symbol version it needs (the oldest Pi OS it runs on).
#
#   cross/build.sh                          every binary package of the workspace, both targets
#   cross/build.sh fieldlink-agent          only these packages
#   cross/build.sh --target aarch64-unknown-linux-gnu fieldlink-agent
#   FIELDLINK_SKIP_INSTALL=1 cross/build.sh  never call apt-get or rustup
#
# The binary packages are read from `cargo metadata`, so fieldlink-agent and fieldlink-cloud are
# built as soon as they have a main.rs. Honours CARGO_TARGET_DIR. Builds run under `nice` because
# the build machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cross/toolchain.sh
source cross/toolchain.sh

usage() { sed -n '2,18s/^# \{0,1\}//p' "$0"; }

targets=()
packages=()
while [ $# -gt 0 ]; do
  case $1 in
    -t|--target) targets+=("${2:?--target needs a triple}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) packages+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${FIELDLINK_ARM_TARGETS[@]}")
for t in "${targets[@]}"; do
  [ -n "${FIELDLINK_GNU_TRIPLE[$t]:-}" ] || { echo "unsupported target $t (supported: ${FIELDLINK_ARM_TARGETS[*]})" >&2; exit 2; }
done

if [ "${FIELDLINK_SKIP_INSTALL:-0}" != 1 ]; then
  fieldlink_ensure_cross_toolchain "${targets[@]}"
fi
fieldlink_export_cross_env "${targets[@]}"

if [ ${#packages[@]} -eq 0 ]; then
  mapfile -t packages < <(fieldlink_bin_packages)
  [ ${#packages[@]} -gt 0 ] || { echo "the workspace has no binary package yet" >&2; exit 1; }
fi
metadata=$(cargo metadata --no-deps --format-version 1 --locked)
target_dir=$(jq -r .target_directory <<<"$metadata")

# The binaries the chosen packages produce (a package's bin may be named unlike the package).
pkg_json=$(printf '%s\n' "${packages[@]}" | jq -R . | jq -s .)
mapfile -t bins < <(jq -r --argjson want "$pkg_json" \
  '.packages[] | select(.name as $n | $want | index($n)) | .targets[] | select(.kind | index("bin")) | .name' \
  <<<"$metadata")
[ ${#bins[@]} -gt 0 ] || { echo "packages ${packages[*]} have no binary target" >&2; exit 1; }

# One cargo invocation per package: cargo unifies dependency features across the packages of one
# build, so building the agent together with the cloud would give the agent the cloud's features
# (aws-lc-rs through rumqttc's default rustls provider, for one). Built alone, each binary is what
# its package (cargo-deb builds one package) will ship.
for t in "${targets[@]}"; do
  for p in "${packages[@]}"; do
    prof=$(fieldlink_ship_profile "$p")
    echo "== cargo build --profile $prof --target $t -p $p"
    start=$(date +%s)
    nice -n 10 cargo build --profile "$prof" --locked --bins --target "$t" -p "$p"
    echo "   took $(( $(date +%s) - start )) s"
  done
done

echo
printf '%-32s %-18s %12s %9s  %-12s %s\n' target binary bytes MiB 'glibc>=' arch
for t in "${targets[@]}"; do
  gnu=${FIELDLINK_GNU_TRIPLE[$t]}
  dist="$target_dir/dist/$t"
  mkdir -p "$dist"
  for b in "${bins[@]}"; do
    # Every binary is named like its package.
    built="$target_dir/$t/$(fieldlink_ship_profile "$b")/$b"
    [ -f "$built" ] || { echo "missing $built" >&2; exit 1; }
    # The release profile already strips; stripping again with the target's binutils makes the
    # reported size independent of that setting.
    "$gnu-strip" -o "$dist/$b" "$built"
    bytes=$(stat -c %s "$dist/$b")
    glibc=$("$gnu-objdump" -T "$dist/$b" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1 || true)
    arch=$(file -b "$dist/$b" | cut -d, -f2 | sed 's/^ //')
    printf '%-32s %-18s %12d %9s  %-12s %s\n' "$t" "$b" "$bytes" \
      "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')" "${glibc#GLIBC_}" "$arch"
    if [ "$t" = aarch64-unknown-linux-gnu ] && [ "$b" = fieldlink-agent ]; then
      # Goal D2: stripped arm64 agent ≤ 8 MB.
      if [ "$bytes" -le 8000000 ]; then verdict="met"; else verdict="NOT met"; fi
      echo "   goal D2 (stripped arm64 agent <= 8 MB): $verdict"
    fi
  done
done
echo
echo "stripped binaries: $target_dir/dist/<target>/"
