#!/usr/bin/env bash
# Runs the gateway crates' test suites as ARM code, so that what ships to Raspberry Pis is tested
# as such (goal D1): built for aarch64-unknown-linux-gnu and run under qemu-user through the
# runner in .cargo/config.toml, plus a build-only check for armv7-unknown-linux-gnueabihf (32-bit
# catches: usize width, 64-bit atomics, C code built with the arm compiler).
#
# Tests that need real peers (socat pty pairs, pymodbus, Mosquitto) work unchanged: qemu-user
# runs the ARM test binary as an ordinary host process, so the x86 programs it starts run
# natively and talk to it over TCP or a pty.
#
# A few tests cannot run under qemu-user; they are listed in QEMU_EXCLUDED (whole targets) and
# QEMU_SKIPPED_TESTS below with the reason, printed on every run; they still run natively in
# scripts/test.sh.
#
#   scripts/test-arm.sh                 install what is missing, test aarch64, build armv7
#   FIELDLINK_SKIP_INSTALL=1            never call apt-get, rustup or pip
#   FIELDLINK_ARM_PACKAGES="a b"        test other packages than the default ones
#   FIELDLINK_ARM_TIMEOUT=1800          seconds the whole run may take before it is stopped
#
# Uses CARGO_TARGET_DIR when set; sharing the native run's target directory lets both ARM
# targets reuse the host-side build scripts and proc-macros.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cross/toolchain.sh
source cross/toolchain.sh

test_target=aarch64-unknown-linux-gnu
build_target=armv7-unknown-linux-gnueabihf
read -r -a packages <<<"${FIELDLINK_ARM_PACKAGES:-fieldlink-protocol fieldlink-plumbing fieldlink-buffer fieldlink-drivers fieldlink-agent}"
deadline=$(( $(date +%s) + ${FIELDLINK_ARM_TIMEOUT:-1800} ))

# Why some tests cannot run under qemu-user (checked with qemu-user 7.2, Debian 12's; the
# newest Debian qemu, 10.0, lacks termios2 as well). They all still run natively in
# scripts/test.sh.
serial_reason="opens a serial port with serialport-rs, which sets the line with the termios2 ioctls (TCGETS2/TCSETS2); qemu-user does not translate them and returns ENOSYS, so the port never opens"
# package:test-target -> reason, for whole test targets.
exec_reason="the x86 kernel cannot exec an ARM binary (no binfmt_misc registration here) and qemu-user does not follow execve; runnable once the test starts its child through \$FIELDLINK_TEST_RUNNER (set below)"
declare -A QEMU_EXCLUDED=(
  [fieldlink-buffer:crash]="re-executes its own ARM test binary (std::env::current_exe) as the child it SIGKILLs; $exec_reason. (qemu-user runs posix_spawn's vfork as a plain fork, so spawn() even reports success and the child silently never starts.)"
  [fieldlink-agent:config]="starts the ARM fieldlink-agent binary (CARGO_BIN_EXE_fieldlink-agent); $exec_reason"
  [fieldlink-agent:delivery]="starts the ARM fieldlink-agent binary (CARGO_BIN_EXE_fieldlink-agent); $exec_reason"
  [fieldlink-agent:values]="starts the ARM fieldlink-agent binary (CARGO_BIN_EXE_fieldlink-agent); $exec_reason; its RTU test also opens a serial port (see below)"
  [fieldlink-drivers:modbus_rtu]="$serial_reason"
  [fieldlink-drivers:serial_line]="$serial_reason"
)
# test name -> reason, for single tests in targets that otherwise run (matched exactly).
declare -A QEMU_SKIPPED_TESTS=(
  [pymodbus_rtu_all_types_all_orders_two_units_on_one_bus]="$serial_reason"
  [a_serial_bus_reports_a_missing_port_a_silent_unit_and_a_port_gone]="$serial_reason"
)

step() { printf '\n== %s\n' "$*"; }

# Runs a command, stopped (TERM, then KILL) if it would outlast the whole run's deadline.
within_deadline() {
  local left=$(( deadline - $(date +%s) ))
  if [ "$left" -le 0 ]; then
    echo "ARM tests ran out of time (FIELDLINK_ARM_TIMEOUT=${FIELDLINK_ARM_TIMEOUT:-1800} s)" >&2
    return 124
  fi
  timeout --kill-after=30s "$left" "$@"
}

if [ "${FIELDLINK_SKIP_INSTALL:-0}" != 1 ]; then
  fieldlink_ensure_cross_toolchain "$test_target" "$build_target"
  # The drivers' tests drive real peers; scripts/test.sh installs them too when it calls us.
  command -v socat >/dev/null || fieldlink_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat
  if ! python3 scripts/check_requirements.py scripts/requirements-test.txt 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r scripts/requirements-test.txt
  fi
fi
fieldlink_export_cross_env "$test_target" "$build_target"
# Line tables are enough for readable backtraces under qemu; full debug info roughly doubles
# what the ARM linkers write and read. Set here only, so native builds keep their profile.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
# How a test must start an ARM executable (its own binary, CARGO_BIN_EXE_*) so that it runs:
# prefix the command with these words. Unset in native runs, where the child is started as is.
export FIELDLINK_TEST_RUNNER="${FIELDLINK_QEMU[$test_target]} -L /usr/${FIELDLINK_GNU_TRIPLE[$test_target]}"

# Whether the test file at $1, or a module file it declares (`mod support;` beside it), names a
# CARGO_BIN_EXE_* program without $FIELDLINK_TEST_RUNNER: such a test would exec an ARM binary
# and fail (exit 127), each after its own wait. Found by reading the sources, so tests added
# later are judged the same way without editing the list above.
starts_own_binary() {
  local src=$1 dir m files=()
  dir=$(dirname "$src")
  files=("$src")
  for m in $(sed -n 's/^[[:space:]]*\(pub \)\{0,1\}mod \([a-z_0-9]*\);.*/\2/p' "$src"); do
    [ -f "$dir/$m.rs" ] && files+=("$dir/$m.rs")
    [ -f "$dir/$m/mod.rs" ] && files+=("$dir/$m/mod.rs")
  done
  grep -q 'CARGO_BIN_EXE_' "${files[@]}" && ! grep -q 'FIELDLINK_TEST_RUNNER' "${files[@]}"
}

# Test targets per package from cargo metadata, minus the excluded ones; one cargo invocation
# for all packages keeps feature unification (and so the build) identical to a plain run.
metadata=$(cargo metadata --no-deps --format-version 1 --locked)
pkg_args=()
target_args=(--lib --bins --examples)
excluded_report=()
for p in "${packages[@]}"; do
  pkg_args+=(-p "$p")
  jq -e --arg p "$p" 'any(.packages[]; .name == $p)' <<<"$metadata" >/dev/null \
    || { echo "no package $p in the workspace" >&2; exit 2; }
  while IFS=$'\t' read -r t src; do
    [ -n "$t" ] || continue
    if [ -n "${QEMU_EXCLUDED[$p:$t]:-}" ]; then
      excluded_report+=("$p, tests/$t.rs: ${QEMU_EXCLUDED[$p:$t]}")
    elif starts_own_binary "$src"; then
      excluded_report+=("$p, tests/$t.rs: starts a CARGO_BIN_EXE_* program of its package directly; $exec_reason")
    else
      target_args+=(--test "$t")
    fi
  done < <(jq -r --arg p "$p" '.packages[] | select(.name == $p) | .targets[] | select(.kind | index("test")) | [.name, .src_path] | @tsv' <<<"$metadata")
done

skip_args=()
for name in "${!QEMU_SKIPPED_TESTS[@]}"; do
  skip_args+=(--skip "$name")
  excluded_report+=("test $name: ${QEMU_SKIPPED_TESTS[$name]}")
done
[ ${#skip_args[@]} -eq 0 ] || skip_args+=(--exact)

# Every phase runs even when an earlier one failed, so one run shows every problem; the exit
# status says whether any failed.
failed=()
phase() {
  local name=$1
  shift
  step "$name"
  local t0
  t0=$(date +%s)
  if within_deadline "$@"; then
    timings+=("$(printf '%-52s %5d s' "$name" $(( $(date +%s) - t0 )))")
  else
    timings+=("$(printf '%-52s %5d s  FAILED' "$name" $(( $(date +%s) - t0 )))")
    failed+=("$name")
  fi
}
timings=()
start=$(date +%s)

phase "build tests for $test_target" \
  nice -n 10 cargo test --locked --no-run --target "$test_target" "${pkg_args[@]}" "${target_args[@]}"
phase "run tests for $test_target under ${FIELDLINK_QEMU[$test_target]}" \
  cargo test --locked --no-fail-fast --target "$test_target" "${pkg_args[@]}" "${target_args[@]}" -- "${skip_args[@]}"
phase "build and run doctests for $test_target" \
  nice -n 10 cargo test --locked --no-fail-fast --doc --target "$test_target" "${pkg_args[@]}"
phase "build-only check for $build_target (libraries and programs)" \
  nice -n 10 cargo build --locked --target "$build_target" "${pkg_args[@]}" --lib --bins

step "ARM summary"
printf '%s\n' "${timings[@]}"
echo "total $(( $(date +%s) - start )) s"
if [ ${#excluded_report[@]} -gt 0 ]; then
  echo "not run under qemu-user (they run natively in scripts/test.sh):"
  printf '  - %s\n' "${excluded_report[@]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
