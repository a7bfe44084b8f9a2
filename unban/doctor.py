"""`unban doctor ADDRESS`: every reason sshd may refuse ADDRESS, most likely first.

Each check gives a verdict (blocks / may block / clear / not present), its evidence and the
command that fixes it. The checks follow a new connection's way in: fail2ban's bans, the packet
filters (which rule the client's TCP SYN meets first), native nftables and routes, sshd's
ListenAddress/Port, TCP wrappers (hosts.allow / hosts.deny), MaxStartups against the
unauthenticated connections waiting now, PerSourcePenalties, then who may log in (AllowUsers,
DenyUsers, ...), and the log lines about ADDRESS.

The checks themselves are pure (`unban.checks`): they take the path evaluator's verdict,
sshd's effective config, the socket table and log lines, so tests feed them without a system.
This module reads the system (`unban.sshd_runtime`, `unban.logs`, the engine's layers) and
hands each check what it needs.
What it cannot evaluate (a `-m limit` match, a host name it did not look up) makes a check
"may block"; it never guesses.

Unauthenticated connections ("startups"): sshd's listener keeps the count in its process title
(`sshd: ... [listener] 3 of 10-100 startups`, OpenSSH 8.2+), which is exactly the number
MaxStartups is compared with; that is read first. Without it, they are counted from the kernel's
socket table (`ss -tnp state established` on sshd's port): a connection is unauthenticated while
every sshd process holding it is still a pre-authentication one (title `[accepted]`, `[net]` or
`[preauth]`); once a user has logged in its processes are `[priv]` and `user@tty`.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

from unban import sshd as sshd_mod
from unban import sshd_runtime, tcpwrappers
from unban.address import Network, parse_target, show
from unban.checks import Check, Diagnosis, ordered
from unban.checks.firewall import KEY as KEY_FIREWALL
from unban.checks.firewall import TITLE as TITLE_FIREWALL
from unban.checks.firewall import firewall_check
from unban.checks.layers import LayerResult, fail2ban_check, route_check
from unban.checks.logs import logs_check
from unban.checks.sockets import listen_check
from unban.checks.sshd import maxstartups_check, penalties_check, sshd_error_check, users_check
from unban.checks.wrappers import tcpwrappers_check
from unban.errors import InputError, LayerError, UnbanError
from unban.layers import Layer
from unban.logs import mtimes, read_logs
from unban.path.model import BLOCKS, CLEAR, MAY_BLOCK, NOT_PRESENT, Packet
from unban.settings import Settings
from unban.verdict import route_to


@dataclass(frozen=True)
class Options:
    """What `unban doctor` was asked."""

    user: Optional[str] = None
    port: Optional[int] = None
    sshd_config: Optional[str] = None
    logs: tuple[str, ...] = ()  # read these instead of the journal and /var/log files
    allow_file: str = "/etc/hosts.allow"
    deny_file: str = "/etc/hosts.deny"
    daemon: str = "sshd"  # the name sshd gives libwrap (its argv[0] base name)
    settings: Settings = Settings()  # fail2ban's config dir for its layer (--fail2ban-conf)


def diagnose(address_text: str, options: Options) -> Diagnosis:
    """Run every check for one client address. Needs root (sshd -T, the firewall)."""

    network = parse_target(address_text)
    if network.num_addresses != 1:
        raise InputError(f"'{address_text}': doctor checks one address, not a network")
    address = network.network_address
    shown = show(network)
    notes: list[str] = []
    checks: list[Check] = []

    route = route_to(shown)
    if route.error:
        notes.append(
            f"this host has no route to {shown}, so the interface and server address its"
            " packets use are not known: rules matching them are reported as may block"
        )
    prefsrc, interface, local = route.source, route.interface, route.local

    # sshd: binary, version, libwrap, effective config (twice: the port and local address
    # decide which Match blocks apply)
    config = None
    version = None
    libwrap: Optional[bool] = None
    port = options.port or 22
    laddr: Optional[str] = None
    destination_known = False
    try:
        binary = sshd_mod.sshd_binary()
        version = sshd_mod.version(binary)
        libwrap = sshd_mod.uses_libwrap(binary)  # of sshd-session, where Debian has one
        first = sshd_mod.read_config(
            shown, user=options.user, config_file=options.sshd_config, sshd=binary
        )
        if sshd_mod.session_binary(binary, first) != sshd_mod.session_binary(binary):
            libwrap = sshd_mod.uses_libwrap(binary, first)  # the one -T names serves them
        port = options.port or (first.ports[0] if first.ports else 22)
        laddr, destination_known = sshd_runtime.local_address(first, address.version, port, prefsrc)
        config = sshd_mod.read_config(
            shown,
            user=options.user,
            laddr=laddr,
            lport=port,
            config_file=options.sshd_config,
            sshd=binary,
        )
    except LayerError as exc:
        checks.append(sshd_error_check(str(exc).split(": ", 1)[-1]))

    # logs first: several checks use them
    hits, sources = read_logs(shown, options.logs)
    checks.append(logs_check(hits, sources, shown))

    # the packet filters
    packet = Packet(
        source=address,
        dport=port,
        destination=ipaddress.ip_address(laddr) if laddr and destination_known else None,
        in_interface=interface,
        source_is_local=local,
    )
    from unban import engine

    layers = engine.default_layers(options.settings)
    results = _layer_results(network, layers)
    checks.append(_path_check(network, packet, layers))
    checks.append(fail2ban_check(results["fail2ban"], shown))
    checks.append(route_check(results["route"], shown))

    # TCP wrappers
    allow, deny = tcpwrappers.read_tables(options.allow_file, options.deny_file)
    request = tcpwrappers.Request(
        client=tcpwrappers.Endpoint(shown, None),
        daemon=options.daemon,
        server=tcpwrappers.Endpoint(laddr if destination_known else None, None),
    )
    read_file = tcpwrappers.read_pattern_file
    decision = tcpwrappers.evaluate(allow, deny, request, read_file=read_file)
    if decision.allowed is None and tcpwrappers.depends_on_name(decision):
        name = tcpwrappers.resolve_client_name(shown)
        if name is not None:
            notes.append(f"host name of {shown} as libwrap would see it: {name}")
            request = replace(request, client=tcpwrappers.Endpoint(shown, name))
            decision = tcpwrappers.evaluate(allow, deny, request, read_file=read_file)
    checks.append(
        tcpwrappers_check(
            decision,
            shown,
            libwrap=libwrap,
            allow_path=options.allow_file,
            deny_path=options.deny_file,
            allow_empty=not allow.entries,
            daemon=options.daemon,
        )
    )

    if config is not None:
        listening = sshd_runtime.listening_ports()
        checks.append(
            listen_check(config, address, port, laddr if destination_known else None, listening)
        )
        load = sshd_runtime.startup_load(port, address, config.per_source_netblock)
        checks.append(maxstartups_check(config, load, shown, hits, port))
        checks.append(penalties_check(config, shown, hits, version, file_times=mtimes(sources)))
        checks.append(
            users_check(sshd_runtime.user_access(config, options.user, shown), options.user)
        )
    return Diagnosis(
        address=shown,
        port=port,
        user=options.user,
        server_address=laddr,
        checks=tuple(ordered(checks)),
        notes=tuple(notes),
    )


def _layer_results(network: Network, all_layers: Sequence[Layer]) -> dict[str, LayerResult]:
    """fail2ban and routes, through the engine's own layers."""
    layers = {layer.name: layer for layer in all_layers}
    results: dict[str, LayerResult] = {}
    for name in ("fail2ban", "route"):
        layer = layers.get(name)
        if layer is None:
            results[name] = LayerResult(name, False, f"no {name} layer")
            continue
        results[name] = _layer_result(layer, network)
    return results


def _path_check(network: Network, packet: Packet, all_layers: Sequence[Layer]) -> Check:
    """The path evaluator's verdict for the SYN, through the engine's packet-filter layers;
    the fixes are the commands `unban me` would run for what stops it."""
    from unban import engine, verdict

    layers = [layer for layer in all_layers if layer.name in verdict.PACKET_LAYERS]
    try:
        report, reaches = engine.judged(network, layers, [packet])
    except (UnbanError, OSError) as exc:
        return Check(KEY_FIREWALL, TITLE_FIREWALL, MAY_BLOCK, f"could not be read: {exc}")
    shown = show(network)
    on_path = [f for f in report.findings if f.on_path]
    fixes: list[str] = []
    if on_path:
        broad = any(not f.targeted for f in on_path)
        fixes.append(f"unban me {shown}{' --broad' if broad else ''}")
    for layer in layers:
        mine = [f for f in on_path if f.layer == layer.name]
        try:
            fixes.extend(step.command for batch in layer.plan(mine) for step in batch.steps)
        except (UnbanError, OSError):  # no command then; the stop still shows
            continue
    return firewall_check(reaches, shown, fixes)


def _layer_result(layer: Layer, network: Network) -> LayerResult:
    """One layer's status, findings and removal commands. A layer that fails is reported as
    "could not be read" (may block); the other checks still run."""
    try:
        statuses = list(layer.status())
        present = any(s.present for s in statuses)
        detail = "; ".join(s.detail for s in statuses if s.detail)
        if not present:
            return LayerResult(layer.name, False, detail)
        findings = tuple(layer.find(network))
    except Exception as exc:  # noqa: BLE001 - a diagnosis goes on past a broken layer
        message = str(exc) if isinstance(exc, (UnbanError, OSError)) else repr(exc)
        return LayerResult(layer.name, True, "", error=message)
    fixes: list[str] = []
    try:
        for batch in layer.plan(list(findings)):
            fixes.extend(step.command for step in batch.steps)
    except Exception:  # noqa: BLE001 - no fix commands then; the findings still show
        pass
    return LayerResult(layer.name, True, detail, findings, tuple(dict.fromkeys(fixes)))


# ---------------------------------------------------------------- presentation (pure)


def render(diagnosis: Diagnosis) -> Any:
    """A rich Tree: the most likely cause first, each check with evidence and fix."""
    from rich.text import Text
    from rich.tree import Tree

    styles = {BLOCKS: "bold red", MAY_BLOCK: "yellow", CLEAR: "green", NOT_PRESENT: "dim"}
    head = Text(f"unban doctor {diagnosis.address}, port {diagnosis.port}")
    if diagnosis.user:
        head.append(f", user {diagnosis.user}")
    cause = diagnosis.cause
    if cause is None:
        head.append(": nothing found that refuses it", style="green")
    else:
        # The verdict ends the first line; the cause gets a line of its own (no mid-sentence wrap).
        word = "blocked" if cause.verdict == BLOCKS else "may be blocked"
        head.append(f": {word}", style=styles[cause.verdict])
        head.append(f"\nmost likely cause: {cause.title}", style=styles[cause.verdict])
    tree = Tree(head)
    for check in diagnosis.checks:
        label = Text()
        label.append(f"[{check.verdict}]", style=styles[check.verdict])
        label.append(f" {check.title}: ", style="bold")
        label.append(check.summary)
        branch = tree.add(label)
        if check.verdict in (CLEAR, NOT_PRESENT):
            continue
        for line in check.evidence:
            branch.add(Text(line, style="dim"))
        if check.client_sees:
            branch.add(Text(f"client sees: {check.client_sees}"))
        for fix in check.fix:
            branch.add(Text(f"fix: {fix}", style="cyan"))
    for note in diagnosis.notes:
        tree.add(Text(f"note: {note}", style="dim"))
    return tree


def text_lines(diagnosis: Diagnosis) -> list[str]:
    """The same report as plain lines (for logs and tests)."""
    from rich.console import Console

    out = io.StringIO()
    Console(width=200, color_system=None, file=out).print(render(diagnosis))
    return out.getvalue().splitlines()
