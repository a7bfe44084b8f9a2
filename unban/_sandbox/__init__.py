"""Throwaway network namespaces with a real sshd and a real fail2ban-server.

Shared by scripts/sandbox (try unban without touching the host) and the integration tests'
fixtures (tests/integration/conftest.py, fail2ban_fixtures.py, sshd_fixtures.py), which keep
their public names by re-exporting these. Needs root; not part of unban's command line.

Modules: netns (Netns, MountNs, Link), sshd (Sshd), fail2ban (Fail2ban), demo (scripts/sandbox).

- `Netns`: a named network namespace (`ip netns add`); `run` executes inside it.
- `MountNs`: the same network namespace seen from a private mount namespace (a holder process
  started with `unshare -m`); `run` enters both with `nsenter`.
- `Link`: the server namespace and a client namespace joined by a veth pair: server
  203.0.113.1/24 and 2001:db8::1/64, client 203.0.113.4/24 and 2001:db8::4/64 (`nodad`).
- `Sshd`: a real sshd in the server namespace, in its own mount namespace, with its own config,
  host key, pidfile and log. With `isolate=True`, /etc is an overlay there (writes land in a
  temp dir) and /run is a private tmpfs when the host has no /run/sshd; otherwise /run/sshd is
  created on the host if missing, as the integration fixtures always did.
- `Fail2ban`: a fail2ban-server whose config dir is a copy of the package's /etc/fail2ban plus a
  fail2ban.local/jail.local pointing everything (socket, pidfile, log, database) into a temp dir.

Nothing here changes the host's /etc, firewall or services: rules made in a namespace stay there,
and every process started is stopped by `stop`/`close`.
"""

from unban._sandbox.demo import Sandbox, demo
from unban._sandbox.fail2ban import (
    CONF_PARTS,
    DEFAULTS,
    PACKAGE_CONF,
    Fail2ban,
    failure_line,
    render_ini,
)
from unban._sandbox.netns import (
    CLIENT4,
    CLIENT6,
    HOLD_SCRIPT,
    REPO,
    SERVER4,
    SERVER6,
    Link,
    MountNs,
    Netns,
    SandboxError,
    Seen,
    alive,
    as_user,
    json_document,
    kill_members,
)
from unban._sandbox.sshd import SSHD, Sshd

__all__ = [
    "CLIENT4", "CLIENT6", "CONF_PARTS", "DEFAULTS", "HOLD_SCRIPT", "PACKAGE_CONF", "REPO",
    "SERVER4", "SERVER6", "SSHD", "Fail2ban", "Link", "MountNs", "Netns", "Sandbox",
    "SandboxError", "Seen", "Sshd", "alive", "as_user", "demo", "failure_line", "json_document",
    "kill_members", "render_ini",
]  # fmt: skip
