"""What the process holds: file descriptors, sockets, TCP connections (Linux /proc)."""

from __future__ import annotations

import os


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def socket_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            continue
    return n


def established_to(port: int) -> int:
    """Client-side TCP connections of this machine to 127.0.0.1:port that are ESTABLISHED."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            remote, state = cols[2], cols[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
