#!/usr/bin/env bash
#! Installs every prerequisite for building and testing doh-trace on Debian/Ubuntu, idempotently.
#
# Usage: scripts/setup.sh [--build-only]
#   --build-only  skip the packages that only the end-to-end tests need (DoH servers, clients)
#
# What it installs, and why:
#   - llvm-22-dev (+ zlib/zstd dev): bpf-linker links against the system LLVM, which must be
#     the LLVM major version both rustc toolchains use (22).
#   - a nightly with LLVM 22 + rust-src: the eBPF object is built with -Z build-std=core.
#   - bpf-linker 0.13 built with LLVM_PREFIX=/usr/lib/llvm-22.
#   - cargo-fuzz (test suite only): short fuzz runs of every parser.
#   - test peers: unbound, dnsdist (DoH servers, local relays), curl, dig (bind9-dnsutils), kdig
#     (knot-dnsutils: GnuTLS), python3 httpx/h2/dnspython (clients), dnss (a Go DoH proxy:
#     Go crypto/tls), firefox-esr + libnss3-tools (NSS; certutil for the test CA), chromium
#     (static BoringSSL: decrypted with its key log, `--keylog`),
#     openssl (test PKI), iproute2 (network namespaces), bpftool (probe checks), tshark
#     (reads the pcapng output), nghttp2-client (h2load) and bpftrace (the bare-uprobe floor)
#     for `cargo xtask bench`, which also compiles a C TLS loop against libssl-dev.
#   - containers (test suite only): docker.io (Debian's dockerd, containerd and runc; the
#     container test starts its own private dockerd in a network namespace and never the
#     system service, which the policy-rc.d below keeps from starting on install) and podman
#     (run with runc); the test's image is a debootstrap root (debootstrap, below) imported
#     with `docker import` / `podman import`.
#   - the kernel matrix (`cargo xtask vm-test`, test suite only): qemu-system-x86 (boots
#     Debian's stock kernels under emulation), qemu-utils (qemu-img: copy-on-write overlays),
#     debootstrap (the guest's root file system), e2fsprogs (mkfs.ext4 -d), xz-utils + zstd
#     (the kernel modules put into the guest's initrd are decompressed).
set -euo pipefail

LLVM_MAJOR=22
BPF_LINKER_VERSION=0.13
build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

build_pkgs=(build-essential pkg-config "llvm-${LLVM_MAJOR}-dev" zlib1g-dev libzstd-dev libssl-dev ca-certificates)
test_pkgs=(unbound dnsdist curl openssl iproute2 bpftool tshark bind9-dnsutils knot-dnsutils python3 python3-dnspython python3-httpx python3-h2 dnss firefox-esr libnss3-tools chromium nghttp2-client bpftrace
  debootstrap e2fsprogs xz-utils zstd docker.io podman python3-seccomp iptables systemd)
want=("${build_pkgs[@]}")
[ "$build_only" = 1 ] || want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; the default (no) is fine.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  # Debian's unbound and docker.io packages may start system services on install; we never need
  # them running.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "Debian packages already present"
fi

# QEMU for `cargo xtask vm-test`. A qemu-utils newer than the distribution's (e.g. 10.x from
# backports) Breaks the distribution's qemu-system-common, and a plain install would remove it:
# take qemu-system-x86 of the same version when a configured source has it, else install the
# distribution's qemu-system-x86 together with its own qemu-utils, so qemu-img and
# qemu-system-x86_64 both work afterwards.
if [ "$build_only" = 0 ] && ! { command -v qemu-system-x86_64 >/dev/null 2>&1 && command -v qemu-img >/dev/null 2>&1; }; then
  export DEBIAN_FRONTEND=noninteractive
  [ -n "${missing[*]}" ] || $SUDO apt-get update -q
  qemu=(qemu-system-x86 qemu-utils)
  have_utils=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
  if [ -n "$have_utils" ] && dpkg-query -W -f='${Status}' qemu-utils 2>/dev/null | grep -q 'install ok installed'; then
    if apt-cache madison qemu-system-x86 | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$have_utils"; then
      qemu=("qemu-system-x86=$have_utils")
    else
      distro=$(apt-cache policy qemu-system-x86 | sed -n 's/^ *Candidate: //p')
      if [ -n "$distro" ] && dpkg --compare-versions "$have_utils" ne "$distro"; then
        log "qemu-utils $have_utils does not go with qemu-system-x86 $distro: installing both at $distro"
        qemu=(qemu-system-x86 "qemu-utils=$distro")
      fi
    fi
  fi
  log "installing ${qemu[*]}"
  $SUDO apt-get install -y -q --no-install-recommends --allow-downgrades "${qemu[@]}"
fi

if ! command -v rustup >/dev/null 2>&1; then
  log "rustup not found: install Rust from your distribution or rustup first"; exit 1
fi
# The eBPF build needs a nightly whose LLVM major matches bpf-linker's (xtask tries the default
# nightly first, then this pinned one).
PINNED_NIGHTLY=nightly-2026-05-20
llvm_of() { rustc "+$1" -vV 2>/dev/null | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p'; }
nightly=
for t in nightly "$PINNED_NIGHTLY"; do
  if [ "$(llvm_of "$t")" = "$LLVM_MAJOR" ]; then nightly=$t; break; fi
done
if [ -z "$nightly" ]; then
  log "installing $PINNED_NIGHTLY (LLVM $LLVM_MAJOR, matching bpf-linker)"
  rustup toolchain install "$PINNED_NIGHTLY" --profile minimal --component rust-src
  nightly=$PINNED_NIGHTLY
fi
for c in rust-src rustfmt clippy; do
  if ! rustup component list --toolchain "$nightly" --installed | grep -q "^$c"; then
    log "adding $c to $nightly"
    rustup component add "$c" --toolchain "$nightly"
  fi
done
# `cargo xtask lint` runs rustfmt and clippy on the default toolchain too.
for c in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$c"; then
    log "adding $c"
    rustup component add "$c"
  fi
done

if command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version | grep -q "bpf-linker ${BPF_LINKER_VERSION}"; then
  log "bpf-linker present: $(bpf-linker --version)"
else
  log "building bpf-linker ${BPF_LINKER_VERSION} against LLVM ${LLVM_MAJOR} (a few minutes)"
  LLVM_PREFIX="/usr/lib/llvm-${LLVM_MAJOR}" cargo install --locked bpf-linker \
    --version "~${BPF_LINKER_VERSION}" --no-default-features --features "llvm-${LLVM_MAJOR}"
fi
if [ "$build_only" = 0 ] && ! command -v cargo-fuzz >/dev/null 2>&1; then
  log "installing cargo-fuzz (fuzz smoke runs in the test suite)"
  cargo install --locked cargo-fuzz
fi
log "done"
