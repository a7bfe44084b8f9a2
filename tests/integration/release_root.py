"""A throwaway root of this machine's Debian release to install the .deb into
(tests/integration/test_deb.py): the package is built for the release's Python, so it installs
on the release it was built on (Debian 12 on the CI host, 13 and 11 in scripts/debian-root).

The root is debootstrapped from Debian's registry with the package's Depends already in it, and
cached in /var/cache/unban-roots/RELEASE-unban-cli when /var/cache/unban-roots exists (else
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
MIRROR = "http://deb.debian.org/debian"
DEPENDS = "python3,iptables,nftables,ipset,iproute2"
DEVICES = ("null", "zero", "random", "urandom", "full", "tty")


def this_release() -> str:
    """This machine's Debian release (bookworm, trixie, ...), as /etc/os-release names it."""
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip('"')
    raise AssertionError("/etc/os-release has no VERSION_CODENAME")


def release_root(scratch: Path) -> Path:
    """The cached root of this release, or a new one (cached when the cache dir exists)."""
    release = this_release()
    home = CACHE if CACHE.is_dir() else scratch
    name = f"{release}-unban-cli"
    root = home / name
    if root.is_dir():
        return root
    partial = home / f".{name}.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={DEPENDS}", release, str(partial),
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
