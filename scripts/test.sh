#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs doh-trace's whole test suite, as root:
#   1. parser unit tests and HTTP/2 tests on real h2-crate traffic (cargo test),
#   2. a short fuzz run of every fuzz target (FUZZ_SECONDS each, default 20),
#   3. lint: rustfmt, clippy (userspace and eBPF) and the module graph (cargo xtask lint),
#   4. the privileged end-to-end tests: the real tracer and eBPF programs, real DoH servers
#      (unbound, dnsdist) and real clients (curl, python3) in a private network namespace,
#   5. the kernel matrix: Debian's 6.1 and 6.12 kernels booted under QEMU, each running the
#      tracer and a subset of those tests (cargo xtask vm-test; DOH_TRACE_VM_KERNELS="6.1 6.12").
# The privileged tier may not skip: DOH_TRACE_E2E=require turns any skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: the privileged end-to-end tests need root: run 'sudo scripts/test.sh'" >&2
  exit 2
fi

# Any test that would skip (missing tshark, not root, ...) fails instead.
export DOH_TRACE_E2E=require

scripts/setup.sh
cargo xtask build-ebpf
cargo build --release --locked

echo "== lint (fmt, clippy in two passes, module graph)"
cargo xtask lint

echo "== unit and decoder tests"
cargo test --locked -p doh-trace -p doh-trace-common -p xtask -p loona-hpack

echo "== fuzz smoke (${FUZZ_SECONDS:-20}s per target, from the kept corpora)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

echo "== privileged end-to-end tests"
DOH_TRACE_BIN="$PWD/target/release/doh-trace" \
  cargo test --locked -p doh-trace-tests -- --test-threads=1

# Debian's stock kernels booted under QEMU, the tracer and a subset of the end-to-end tests in
# each (DOH_TRACE_VM_KERNELS picks them; the guest image is cached under target/vm).
echo "== kernel matrix under QEMU (${DOH_TRACE_VM_KERNELS:-6.1 6.12})"
cargo xtask vm-test
