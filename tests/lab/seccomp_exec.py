"""Runs a command under a seccomp allow-list as systemd's SystemCallFilter= builds one.

Usage: seccomp_exec.py 'FILTER' -- COMMAND [ARG...]

FILTER is the value of a unit's SystemCallFilter= line (syscall names and @groups); the groups
are expanded as `systemd-analyze syscall-filter` lists them. Every other syscall fails with
EPERM (SystemCallErrorNumber=EPERM). Needs no_new_privs or CAP_SYS_ADMIN (setpriv
--no-new-privs, as NoNewPrivileges=yes).
"""
import errno
import os
import subprocess
import sys

import seccomp


def groups():
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    found, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            found[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            found[current].append(line.strip())
    return found


def expand(name, table, seen):
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    if name not in table:
        sys.exit(f"seccomp_exec: unknown syscall group {name}")
    names = set()
    for member in table[name]:
        names |= expand(member, table, seen)
    return names


def main():
    spec, sep, command = sys.argv[1], sys.argv[2], sys.argv[3:]
    assert sep == "--" and command, __doc__
    table = groups()
    names = set()
    for word in spec.split():
        names |= expand(word, table, set())
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    allowed = 0
    for name in sorted(names):
        try:
            f.add_rule(seccomp.ALLOW, name)
            allowed += 1
        except (RuntimeError, ValueError, OSError):
            pass  # not a syscall of this architecture or this libseccomp
    print(f"seccomp_exec: {allowed} syscalls allowed", file=sys.stderr, flush=True)
    f.load()
    os.execvp(command[0], command)


main()
