"""What a find reads first, started before the layers are imported (`system.read_ahead`): the
rule dumps, whose cost grows with the rules, and the small reads every find makes (sshd's
configuration, the routes, the route to the client, whether sshd is linked with libwrap),
while Python imports the rest. Kept apart from the layers so the commands can start them
first; tests/unit/test_readahead.py checks that the layers run exactly these argvs."""

from __future__ import annotations

import os
from typing import Optional

from unban.address import Network
from unban.system import read_ahead, which

RULE_DUMPS = (
    ("iptables-legacy-save",),
    ("ip6tables-legacy-save",),
    ("iptables-nft-save",),
    ("ip6tables-nft-save",),
    ("nft", "-j", "-t", "list", "chains"),
    ("nft", "-j", "-t", "list", "sets"),
)
ROUTE_TYPES = ("unreachable", "blackhole", "prohibit")  # unban.layers.routes.TYPES
SESSION_BINARY = "/usr/lib/openssh/sshd-session"  # unban.sshd.SESSION_BINARY
TCP_WRAPPERS = ("/etc/hosts.allow", "/etc/hosts.deny")


def system_reads(
    target: Network, sshd_config: Optional[str] = None, *, penalties: bool = True
) -> list[tuple[str, ...]]:
    """The reads of a find for `target` other than the rule dumps, as the layers and the path
    evaluator make them: the blocking routes of its family; for one address the route to it
    and sshd's configuration for a connection from it; sshd's global configuration (both with
    -f `sshd_config` when given; the global one only the sshd penalty layer reads: not without
    `penalties`); `ldd` of the binary that serves connections
    where hosts.allow or hosts.deny exists. A read no layer then asks for costs only its run."""
    family = "-4" if target.version == 4 else "-6"
    reads: list[tuple[str, ...]] = [
        ("ip", "-d", "-j", family, "route", "show", "table", "all", "type", kind)
        for kind in ROUTE_TYPES
    ]
    sshd = which("sshd")
    if target.num_addresses == 1:
        address = str(target.network_address)
        reads.append(("ip", "-j", "route", "get", address))
        if sshd is not None:
            config = ("-f", sshd_config) if sshd_config else ()
            reads.append((sshd, "-T", *config, "-C", f"addr={address},host={address}"))
    if sshd is not None:
        if penalties:
            reads.append(("sshd", "-T", *(("-f", sshd_config) if sshd_config else ())))
        if any(os.path.exists(path) for path in TCP_WRAPPERS):
            served_by = SESSION_BINARY if os.path.isfile(SESSION_BINARY) else sshd
            reads.append(("ldd", served_by))
    return reads


def start_reads(
    target: Network, sshd_config: Optional[str] = None, *, penalties: bool = True
) -> None:
    """Only where nothing changes the system before the first find: a read-only command, or a
    changing one once it holds the command lock and has recovered (cli.base.changing).
    `penalties=False`: the run leaves out the sshd penalty layer (`me --no-sshd`)."""
    from unban.nftgen import note_before_dumps

    note_before_dumps()  # nftables' generation before the dumps: unban.layers.xtables
    read_ahead([*RULE_DUMPS, *system_reads(target, sshd_config, penalties=penalties)])
