"""A throwaway Debian 12 root to install the .deb into (tests/integration/test_deb.py).

The root is debootstrapped from Debian's registry with the package's Depends already in it, and
cached in /var/cache/unban-roots/bookworm-unban-cli when /var/cache/unban-roots exists (else
made in the test's temp dir). It is never written: each test sees it through an overlay whose
changes go to the test's temp dir, inside private mount, network and PID namespaces (chroot'ed;
nothing here needs nsenter), so the host's dpkg, /etc and firewall are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path("/var/cache/unban-roots")
NAME = "bookworm-unban-cli"
MIRROR = "http://deb.debian.org/debian"
DEPENDS = "python3,iptables,nftables,ipset,iproute2"
DEVICES = ("null", "zero", "random", "urandom", "full", "tty")


def bookworm_root(scratch: Path) -> Path:
    """The cached root, or a new one (cached when the cache dir exists)."""
    home = CACHE if CACHE.is_dir() else scratch
    root = home / NAME
    if root.is_dir():
        return root
    partial = home / f".{NAME}.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={DEPENDS}", "bookworm", str(partial),
         MIRROR],
        check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    partial.rename(root)
    return root


class Overlay:
    """`root` seen through an overlay: what runs inside changes only `scratch`."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root = root
        self.upper = scratch / "upper"
        self.work = scratch / "work"
        self.merged = scratch / "merged"
        self.inbox = scratch / "inbox"  # bound to /mnt inside: files the test hands in
        for path in (self.upper, self.work, self.merged, self.inbox):
            path.mkdir(parents=True, exist_ok=True)

    def run(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`script` (sh) as root inside the root; fresh /proc, /dev, /tmp and /run each time."""
        m = self.merged
        devices = " ".join(DEVICES)
        outer = f"""set -e
mount -t overlay overlay -o lowerdir={self.root},upperdir={self.upper},workdir={self.work} {m}
mount -t proc proc {m}/proc
mount -t tmpfs -o mode=0755 tmpfs {m}/dev
for name in {devices}; do touch {m}/dev/$name; mount --bind /dev/$name {m}/dev/$name; done
mount -t tmpfs tmpfs {m}/tmp
mount -t tmpfs -o mode=0755 tmpfs {m}/run
mount --bind {self.inbox} {m}/mnt
ip link set lo up
exec chroot {m} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root /bin/sh -c "$1"
"""
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--net", "--pid", "--fork",
             "/bin/sh", "-c", outer, "sh", script],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
