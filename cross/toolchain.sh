# shellcheck shell=bash
# Shared by cross/build.sh and scripts/test-arm.sh (sourced, not run): the ARM targets we ship
# for, the Debian packages that cross-compile and emulate them, and the environment the cc crate
# needs to build C code (bundled SQLite, ring, aws-lc) for them.
#
# Why Debian's cross compilers and not `cross`/Docker: Docker does not run on our machines, and
# Debian's gcc-*-linux-gnu* with its libc6-dev-*-cross links against the same glibc (2.36,
# bookworm) that Raspberry Pi OS bookworm ships.
#
# Callers set `set -euo pipefail` themselves.

# Rust target triple -> Debian GNU triple (the compiler prefix and the sysroot under /usr).
declare -gA FIELDLINK_GNU_TRIPLE=(
  [aarch64-unknown-linux-gnu]=aarch64-linux-gnu
  [armv7-unknown-linux-gnueabihf]=arm-linux-gnueabihf
)
# Rust target triple -> qemu-user emulator.
declare -gA FIELDLINK_QEMU=(
  [aarch64-unknown-linux-gnu]=qemu-aarch64
  [armv7-unknown-linux-gnueabihf]=qemu-arm
)
# Every target we ship gateway builds for (arm64 for Pi 3/4/5 on a 64-bit OS, armhf for 32-bit).
FIELDLINK_ARM_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

fieldlink_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

fieldlink_deb_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs what cross-building for the given Rust targets needs: the rustup std for each target,
# Debian's cross gcc and libc for each, qemu-user to run the results, jq to read cargo metadata.
# Does nothing (and needs no network) when everything is already there.
fieldlink_ensure_cross_toolchain() {
  local target gnu debs=() rust_targets=()
  for target in "$@"; do
    gnu=${FIELDLINK_GNU_TRIPLE[$target]:?"unsupported target $target"}
    fieldlink_deb_installed "gcc-$gnu" || debs+=("gcc-$gnu")
    case $gnu in
      aarch64-linux-gnu)   fieldlink_deb_installed libc6-dev-arm64-cross || debs+=(libc6-dev-arm64-cross) ;;
      arm-linux-gnueabihf) fieldlink_deb_installed libc6-dev-armhf-cross || debs+=(libc6-dev-armhf-cross) ;;
    esac
    rustup target list --installed | grep -qx "$target" || rust_targets+=("$target")
  done
  fieldlink_deb_installed qemu-user || debs+=(qemu-user)
  command -v jq >/dev/null || debs+=(jq)

  if [ ${#debs[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${debs[*]}"
    fieldlink_as_root apt-get update -qq
    fieldlink_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}"
  fi
  if [ ${#rust_targets[@]} -gt 0 ]; then
    echo "== installing Rust targets: ${rust_targets[*]}"
    rustup target add "${rust_targets[@]}"
  fi
}

# Exports the linker and the C toolchain for each target. The linker and runner are also in
# .cargo/config.toml; exporting them here keeps the scripts working from a checkout whose
# config was overridden (CARGO_HOME config, CI images). Only target-specific variables are set,
# so a native build in the same shell is unaffected.
fieldlink_export_cross_env() {
  local target gnu upper lower
  for target in "$@"; do
    gnu=${FIELDLINK_GNU_TRIPLE[$target]:?"unsupported target $target"}
    upper=$(tr 'a-z-' 'A-Z_' <<<"$target")
    lower=${target//-/_}
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CARGO_TARGET_${upper}_RUNNER=${FIELDLINK_QEMU[$target]} -L /usr/$gnu"
    export "CC_${lower}=$gnu-gcc"
    export "AR_${lower}=$gnu-ar"
  done
}

# The workspace's binary packages, read from cargo metadata, so new programs (the agent, the
# cloud) are picked up as soon as they have a main.rs.
fieldlink_bin_packages() {
  cargo metadata --no-deps --format-version 1 --locked \
    | jq -r '.packages[] | select(any(.targets[]; .kind | index("bin"))) | .name' \
    | sort
}

# The cargo profile a package's shipped binaries are built with: the agent's is `gateway` (every
# crate optimized for size, for a Raspberry Pi's memory), the cloud's `release` (full speed). A
# custom profile's output directory has its name; release's is `release`.
fieldlink_ship_profile() {
  case $1 in
    fieldlink-agent) echo gateway ;;
    *) echo release ;;
  esac
}
