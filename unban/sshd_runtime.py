"""What the running sshd is doing now, read from the system: the ports it listens on, its
unauthenticated connections (`ss` and the processes' titles), the address a client reaches it
on, and whether a user may log in from an address."""

from __future__ import annotations

from functools import partial
from typing import Optional

from unban import sshd as sshd_mod
from unban import tcpwrappers
from unban.checks.sockets import SS_USERS, Load, measure_load, parse_ss
from unban.path.model import IPAddress
from unban.sshd import SshdConfig, UserAccess
from unban.system import both, run, which


def local_address(
    config: SshdConfig, version: int, port: int, prefsrc: Optional[str]
) -> tuple[Optional[str], bool]:
    """The server address the client connects to, and whether that is certain: it is when sshd
    listens on exactly one specific address of that family and port."""
    specific = {
        e.host for e in config.listen if e.version == version and e.port == port and not e.wildcard
    }
    wildcard = any(e.wildcard for e in config.listen if e.version == version and e.port == port)
    if len(specific) == 1 and not wildcard:
        return next(iter(specific)), True
    return prefsrc, False


def listening_ports() -> Optional[list[int]]:
    if which("ss") is None:
        return None
    result = run("sshd", ["ss", "-Htln"], check=False, timeout=10)
    if result.returncode != 0:
        return None
    ports = []
    for line in result.stdout.splitlines():
        fields = line.split()
        local = next((f for f in fields if ":" in f), None)
        if local and local.rsplit(":", 1)[-1].isdigit():
            ports.append(int(local.rsplit(":", 1)[-1]))
    return ports


def startup_load(port: int, address: IPAddress, netblock: tuple[int, int]) -> Load:
    if which("ss") is None:
        return Load(None, "ss is not installed")
    listeners, established = both(  # at once: each lists every socket of the host
        partial(run, "sshd", ["ss", "-Htlnp", f"( sport = :{port} )"], check=False, timeout=10),
        partial(
            run,
            "sshd",
            ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
            check=False,
            timeout=10,
        ),
    )
    if established.returncode != 0:
        return Load(None, f"ss failed: {' '.join(established.stderr.split())}")
    listener_pids = {int(pid) for _n, pid in SS_USERS.findall(listeners.stdout)}
    listener_titles = [_title(pid) for pid in sorted(listener_pids)]
    return measure_load(
        [t for t in listener_titles if t],
        parse_ss(established.stdout),
        _title,
        address,
        netblock,
    )


def _title(pid: int) -> str:
    """A process's title (sshd rewrites its argv: `sshd: [accepted]`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def user_access(config: SshdConfig, user: Optional[str], address: str) -> UserAccess:
    if user is None:
        return sshd_mod.check_user(config, None, address)
    groups = sshd_mod.user_groups(user)
    hostname = None
    if config.use_dns:
        name = tcpwrappers.resolve_client_name(address)
        hostname = name if name not in (None, "unknown", "paranoid") else None
    return sshd_mod.check_user(
        config, user, address, hostname=hostname, groups=groups, exists=groups is not None
    )
