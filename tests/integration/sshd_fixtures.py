"""A client and a server namespace joined by a veth pair, and real sshd servers in the server.

    link = sshd_fixtures.link  # in the test module, so pytest finds the fixtures
    sshd_factory = sshd_fixtures.sshd_factory

    def test_x(link, sshd_factory):
        server = sshd_factory(config="MaxStartups 1:100:1", hosts_deny="sshd: 203.0.113.4\\n")
        link.probe(SERVER4)                      # `unban probe` in the client namespace
        server.doctor(CLIENT4)                   # `unban doctor --json` where sshd runs

Layout: the server namespace is conftest's `netns` fixture (so fail2ban_factory, which also uses
`netns`, runs its fail2ban-server beside sshd) with 203.0.113.1/24 and 2001:db8::1/64; the client
namespace has 203.0.113.4/24 and 2001:db8::4/64 (IPv6 with `nodad`, usable at once).

Mount namespace: each server gets a holder process started with
`ip netns exec SERVER unshare -m --propagation private sleep infinity`. Bind mounts
(`hosts_deny=`, `hosts_allow=`: temp files over /etc/hosts.deny and /etc/hosts.allow) are made
in the holder's mount namespace with `nsenter -t HOLDER -m`, and sshd and the unban CLI are
started there too (`nsenter -t HOLDER -m -n`): sshd and doctor see the same /etc, and the host's
/etc is never touched. sshd gets its own config, a temporary ed25519 host key, a pidfile and a
log file (`-E`), listens on port 22 of the server addresses, and is killed at teardown, then the
holder. /run/sshd (sshd's privilege separation directory) is created if missing.

`Link`, `Sshd` and the addresses live in unban/_sandbox.py (shared with scripts/sandbox); they
are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration.conftest import Netns
from unban._sandbox import (
    CLIENT4,
    CLIENT6,
    REPO,
    SERVER4,
    SERVER6,
    SSHD,
    Link,
    Sshd,
    as_user,
)
from unban._sandbox import HOLD_SCRIPT as _HOLD
from unban.sshd import version as sshd_version

__all__ = [
    "CLIENT4",
    "CLIENT6",
    "MAXSTARTUPS_LOGGED",
    "MAXSTARTUPS_SAID",
    "OPENSSH",
    "PENALTIES",
    "REPO",
    "SERVER4",
    "SERVER6",
    "SSHD",
    "Link",
    "Sshd",
    "SshdFactory",
    "_HOLD",
    "as_user",
    "link",
    "sshd_factory",
]


def _openssh() -> tuple[int, int]:
    """This machine's OpenSSH (major, minor); (0, 0) without sshd."""
    if not Path(SSHD).exists():
        return (0, 0)
    return sshd_version(SSHD) or (0, 0)


# What each release's sshd says (OpenSSH 9.8 reworked its refusals and added penalties).
OPENSSH = _openssh()
PENALTIES = OPENSSH >= (9, 8)
MAXSTARTUPS_LOGGED = "Maxstartups" if PENALTIES else "past MaxStartups"  # in sshd's log
MAXSTARTUPS_SAID = (
    "Not allowed at this time" if PENALTIES else "Exceeded MaxStartups"
)  # to the client


def _create_client() -> Netns:
    return Netns.create("unban-c")


@pytest.fixture
def link(netns: Netns) -> Iterator[Link]:
    pair = Link.create(netns)
    try:
        yield pair
    finally:
        pair.delete()


SshdFactory = Callable[..., Sshd]


@pytest.fixture
def sshd_factory(link: Link, tmp_path: Path) -> Iterator[SshdFactory]:
    """Start real sshd servers in the server namespace; every one is stopped at teardown."""
    if not Path(SSHD).exists():
        pytest.fail("openssh-server is not installed (Debian package openssh-server)")
    servers: list[Sshd] = []

    def make(config: str = "", **kwargs: Any) -> Sshd:
        root = tmp_path / f"sshd{len(servers)}"
        root.mkdir(mode=0o755)
        server = Sshd(link, root)
        servers.append(server)
        server.start(config, **kwargs)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
