"""A real fail2ban-server in a throwaway network namespace, with everything under a temp dir.

    def test_x(fail2ban_factory):
        f2b = fail2ban_factory(jails={"sshd": {"banaction": "nftables-multiport"}})
        f2b.fail("203.0.113.4")            # two failure lines in the log the sshd jail reads
        f2b.wait_banned("sshd", "203.0.113.4")
        f2b.unban("remove", "203.0.113.4")  # the real CLI, inside the namespace

The config dir is a copy of the Debian package's /etc/fail2ban (action.d, filter.d, jail.conf,
paths-*.conf; its jail.d is left out), plus a fail2ban.local pointing the socket, pidfile, log
and database into the temp dir, and a jail.local (`backend = polling`, `maxretry = 2`). The host's
/etc/fail2ban and firewall are never touched; every server started is stopped at teardown.
`Fail2ban` and the helpers live in unban/_sandbox.py (shared with scripts/sandbox); they are
re-exported here. Use it in a test module with
`fail2ban_factory = fail2ban_fixtures.fail2ban_factory` (or import it in a conftest).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Callable, Optional

import pytest

from tests.integration.conftest import Netns
from unban._sandbox import (
    CONF_PARTS,
    DEFAULTS,
    PACKAGE_CONF,
    Fail2ban,
    failure_line,
    render_ini,
)
from unban._sandbox import alive as _alive

__all__ = [
    "CONF_PARTS",
    "DEFAULTS",
    "PACKAGE_CONF",
    "Factory",
    "Fail2ban",
    "_alive",
    "fail2ban_factory",
    "failure_line",
    "render_ini",
]


Factory = Callable[..., Fail2ban]


@pytest.fixture
def fail2ban_factory(netns: Netns, tmp_path: Path) -> Iterator[Factory]:
    """Start fail2ban servers in `netns`: factory(jails=..., default=..., files=..., start=True)."""
    if shutil.which("fail2ban-client") is None or not PACKAGE_CONF.is_dir():
        pytest.fail("fail2ban is not installed (Debian package fail2ban)")
    servers: list[Fail2ban] = []

    def make(
        *,
        jails: Optional[Mapping[str, Mapping[str, str]]] = None,
        default: Optional[Mapping[str, str]] = None,
        files: Optional[Mapping[str, str]] = None,
        jail_local: Optional[str] = None,
        start: bool = True,
    ) -> Fail2ban:
        root = tmp_path / f"f2b{len(servers)}"
        root.mkdir(mode=0o755)
        server = Fail2ban(netns, root)
        servers.append(server)
        server.write_config(
            jails={"sshd": {}} if jails is None else jails,
            default=default,
            files=files,
            jail_local=jail_local,
        )
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
