#!/bin/bash
# doh-trace `cargo xtask vm-test` guest init (xtask/src/vm/vm-test.sh, installed as
# /vm-test.sh in the guest image): mounts the kernel file systems, brings loopback up, runs
# the tracer's load/clean-exit check and the planned end-to-end tests from the payload disk
# (/dev/vdb), prints one `VMTEST <kernel> <test> ok|FAILED <seconds>s` line per test on the
# console, and powers the VM off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
export DOH_TRACE_E2E=require DOH_TRACE_BIN=/payload/doh-trace RUST_BACKTRACE=1

off() { sync; echo o > /proc/sysrq-trigger; sleep 30; }
trap off EXIT

mount -t proc proc /proc
mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
hostname vmtest
[ -s /etc/hosts ] || printf '127.0.0.1 localhost\n::1 localhost\n' > /etc/hosts
# Kernel messages stay off the console lines the host parses.
echo 1 > /proc/sys/kernel/printk

K=unknown
for arg in $(cat /proc/cmdline); do
  case "$arg" in vmtest.kernel=*) K=${arg#vmtest.kernel=} ;; esac
done
echo "VMTEST-BEGIN $K $(uname -r)"

mkdir -p /payload
if ! mount -o ro /dev/vdb /payload; then
  echo "VMTEST $K payload FAILED 0s"
  exit 1
fi
# The test binaries look for tests/lab below the workspace they were built in.
WS=$(cat /payload/workspace)
mkdir -p "$WS/tests" "$WS/target/release"
ln -sfn /payload/lab "$WS/tests/lab"
ln -sfn /payload/doh-trace "$WS/target/release/doh-trace"

# Prints a command's output indented on the console.
show() { sed 's/^/  | /' "$1" | tail -n "${2:-80}"; }

# Our programs still loaded (bpftool shows at most 15 characters of a name).
leftovers() {
  bpftool prog show 2>/dev/null | sed -n 's/^[0-9]*: [a-z_]*  name \([^ ]*\) .*/\1/p' |
    grep -Fx -f /payload/programs
}

result() { echo "VMTEST $K $1 $2 $(( $(date +%s) - $3 ))s"; }

# load + clean-exit: the tracer loads every program on this kernel (or says what it turned
# off), gets ready, and leaves nothing loaded after SIGINT.
t=$(date +%s)
/payload/doh-trace --json > /tmp/load.out 2> /tmp/load.err &
tracer=$!
ready=0
for _ in $(seq 1 480); do
  if grep -q '^ready' /tmp/load.err; then ready=1; break; fi
  kill -0 "$tracer" 2>/dev/null || break
  sleep 0.5
done
show /tmp/load.err 40
if [ "$ready" = 1 ]; then result load ok "$t"; else result load FAILED "$t"; fi
t=$(date +%s)
kill -INT "$tracer" 2>/dev/null
wait "$tracer"
rc=$?
left=$(leftovers)
if [ "$ready" = 1 ] && [ "$rc" = 0 ] && [ -z "$left" ]; then
  result clean-exit ok "$t"
else
  echo "  | exit status $rc; still loaded: ${left:-none}"
  show /tmp/load.err 10
  result clean-exit FAILED "$t"
fi

# The planned end-to-end tests, one process each, as cargo would run them.
cd "$WS/tests" || exit 1
while read -r label target test; do
  t=$(date +%s)
  if timeout -k 10 600 "/payload/tests/$target" --exact "$test" --test-threads=1 \
      > /tmp/test.out 2>&1 && grep -q 'test result: ok. 1 passed' /tmp/test.out; then
    result "$label" ok "$t"
  else
    show /tmp/test.out 80
    result "$label" FAILED "$t"
  fi
done < /payload/plan

left=$(leftovers)
if [ -n "$left" ]; then echo "  | still loaded after the tests: $left"; fi
echo "VMTEST-END $K"
