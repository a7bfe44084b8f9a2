"""`unban doctor ADDRESS`: every reason sshd may refuse ADDRESS, most likely first.

Each check gives a verdict (blocks / may block / clear / not present), its evidence and the
command that fixes it. The checks follow a new connection's way in: fail2ban's bans, the packet
filters (which rule the client's TCP SYN meets first), native nftables and routes, sshd's
ListenAddress/Port, TCP wrappers (hosts.allow / hosts.deny), MaxStartups against the
unauthenticated connections waiting now, PerSourcePenalties, then who may log in (AllowUsers,
DenyUsers, ...), and the log lines about ADDRESS.

The evaluation is pure (everything above `# ---- reading the system`): it takes parsed rulesets,
sshd's effective config, the socket table and log lines, so tests feed it without a system.
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

import datetime
import io
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

from unban import penalties, tcpwrappers
from unban import sshd as sshd_mod
from unban.address import Network, parse_target, show
from unban.checks import (
    SEES_DENIED,
    SEES_RESET,
    Check,
    Diagnosis,
    ordered,
)
from unban.checks.firewall import KEY as KEY_FIREWALL
from unban.checks.firewall import TITLE as TITLE_FIREWALL
from unban.checks.firewall import firewall_check
from unban.checks.layers import LayerResult, fail2ban_check, route_check
from unban.checks.sockets import SS_USERS, Load, listen_check, measure_load, parse_ss
from unban.checks.wrappers import tcpwrappers_check
from unban.errors import InputError, LayerError, UnbanError
from unban.layers import Layer
from unban.path.model import BLOCKS as BLOCKS
from unban.path.model import CLEAR as CLEAR
from unban.path.model import MAY_BLOCK as MAY_BLOCK
from unban.path.model import NOT_PRESENT as NOT_PRESENT
from unban.path.model import IPAddress, Packet
from unban.sshd import SshdConfig, UserAccess, in_exempt_list
from unban.system import run, which
from unban.verdict import route_to


def maxstartups_check(
    config: SshdConfig, load: Load, address: str, hits: Sequence[LogHit], port: int = 22
) -> Check:
    title = "MaxStartups (unauthenticated connections)"
    ms = config.max_startups
    per_source = config.per_source_max_startups
    drops = [h for h in hits if h.kind == "maxstartups"]
    evidence = [
        f"MaxStartups {ms}" + (f", PerSourceMaxStartups {per_source}" if per_source else "")
    ]
    if load.startups is not None:
        evidence.append(f"{load.startups} unauthenticated connection(s) now ({load.source})")
    evidence.extend(f"waiting: {c.peer} -> {c.local}" for c in load.preauth[:10])
    evidence.extend(f"log: {h.line}" for h in drops[-5:])
    data = {"max_startups": str(ms), "per_source": per_source, "load": load}
    sees = SEES_RESET + (
        " (or: Connection closed by remote host; a raw read gets Exceeded MaxStartups, "
        "OpenSSH 10: Not allowed at this time)"
    )
    bigger = f"{ms.start * 2}:{ms.rate}:{max(ms.full * 2, ms.start * 2)}"
    fixes = (
        f"raise it in sshd_config, e.g. `MaxStartups {bigger}`, then `sshd -t && systemctl reload ssh`",
        f"see who holds them: ss -tnp state established '( sport = :{port} )'",
    )
    if per_source and load.from_address is not None and load.from_address >= per_source:
        summary = (
            f"{load.from_address} unauthenticated connection(s) from {address}'s network already: "
            f"PerSourceMaxStartups {per_source} refuses more"
        )
        return Check("maxstartups", title, BLOCKS, summary, tuple(evidence), fixes, sees, data)
    if load.startups is None:
        summary = "the number of unauthenticated connections could not be read"
        if drops:
            summary += f"; sshd dropped {address}'s connections recently"
        return Check("maxstartups", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)
    percent = ms.drop_percent(load.startups)
    if percent >= 100:
        summary = (
            f"{load.startups} unauthenticated connection(s) waiting >= {ms.full}: sshd drops "
            "every new connection"
        )
        return Check("maxstartups", title, BLOCKS, summary, tuple(evidence), fixes, sees, data)
    if percent > 0:
        summary = (
            f"{load.startups} unauthenticated connection(s) waiting: sshd drops {percent}% of new "
            "connections at random (MaxStartups throttling)"
        )
        return Check("maxstartups", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)
    if drops:
        summary = (
            f"below MaxStartups now ({load.startups} waiting, throttling from {ms.start}), but sshd "
            f"dropped connections from {address} recently"
        )
        return Check("maxstartups", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)
    summary = (
        f"{load.startups} unauthenticated connection(s) waiting, throttling starts at {ms.start}"
    )
    return Check("maxstartups", title, CLEAR, summary, tuple(evidence), data=data)


def penalties_check(
    config: SshdConfig,
    address: str,
    hits: Sequence[LogHit],
    version: Optional[tuple[int, int]],
    *,
    now: Optional[datetime.datetime] = None,
    file_times: Optional[Mapping[str, datetime.datetime]] = None,
) -> Check:
    """BLOCKS while a penalty on the address is active by the log (`unban.penalties`).
    `file_times`: the modification time of each log file, the latest its lines without a time
    stamp (`sshd -E`) can have been written."""
    title = "PerSourcePenalties"
    penalty_hits = [h for h in hits if h.kind == "penalty"]
    if config.per_source_penalties is None:
        which = f"OpenSSH {version[0]}.{version[1]}" if version else "this sshd"
        return Check(
            "penalties", title, NOT_PRESENT, f"{which} has no PerSourcePenalties (new in 9.8)"
        )
    value = config.per_source_penalties
    if value == "no":
        return Check("penalties", title, CLEAR, "PerSourcePenalties no")
    if in_exempt_list(config, address):
        return Check(
            "penalties",
            title,
            CLEAR,
            f"{address} is in PerSourcePenaltyExemptList ({config.penalty_exempt})",
        )
    now = now or datetime.datetime.now()
    state = penalties.judge(_penalty_lines(hits, now, file_times or {}), now, config.penalty_max)
    fixes = (
        f"unban me {address}  (adds it to PerSourcePenaltyExemptList, checks with `sshd -t`, "
        "reloads sshd; `unban undo` puts it back)",
        f"or by hand: add {address} to PerSourcePenaltyExemptList in sshd_config, then "
        "`sshd -t && systemctl reload ssh` (a reload also forgets every penalty)",
    )
    evidence = (f"PerSourcePenalties {value}", *(f"log: {h.line}" for h in penalty_hits[-5:]))
    sees = SEES_RESET + " (a raw read gets: Not allowed at this time)"
    data = {"active": state.active, "until": state.until.isoformat() if state.until else None}
    if state.active:
        summary = f"sshd refuses {address} for a penalty: {state.summary}"
        return Check("penalties", title, BLOCKS, summary, evidence, fixes, sees, data)
    if state.active is None:
        return Check("penalties", title, MAY_BLOCK, state.summary, evidence, fixes, sees, data)
    summary = (
        f"no active penalty for {address} in the logs (PerSourcePenalties is on): {state.summary}"
    )
    return Check("penalties", title, CLEAR, summary, evidence, data=data)


def _penalty_lines(
    hits: Sequence[LogHit],
    now: datetime.datetime,
    file_times: Mapping[str, datetime.datetime],
) -> list[penalties.LogLine]:
    lines = []
    for hit in hits:
        if hit.kind not in ("penalty", "admitted", "auth-failure"):
            continue
        stamp = line_time(hit.line, now)
        if stamp is not None:
            lines.append(penalties.LogLine(hit.line, stamp))
        else:
            lines.append(penalties.LogLine(hit.line, file_times.get(hit.source), exact=False))
    return lines


def users_check(access: UserAccess, user: Optional[str]) -> Check:
    title = "AllowUsers / DenyUsers / AllowGroups / DenyGroups"
    if access.allowed is True:
        return Check("users", title, CLEAR, access.reason)
    fix: tuple[str, ...] = ()
    if access.directive:
        what = f"'{access.pattern}' from " if access.pattern else f"{user} to "
        verb = "remove" if access.pattern else "add"
        fix = (
            f"{verb} {what}{access.directive} in sshd_config (or the Match block that sets it), "
            "then `sshd -t && systemctl reload ssh`",
        )
    verdict = BLOCKS if access.allowed is False else MAY_BLOCK
    return Check("users", title, verdict, access.reason, (), fix, SEES_DENIED + " after the banner")


def sshd_error_check(message: str) -> Check:
    fixes = ["sshd -t  (shows what is wrong with the configuration)"]
    if "privilege separation directory" in message:
        # systemd creates /run/sshd only while ssh.service runs: sshd is probably stopped
        fixes = ["systemctl status ssh", "systemctl start ssh"]
    return Check(
        "sshd",
        "sshd's configuration",
        MAY_BLOCK,
        f"sshd's effective configuration could not be read: {message}",
        (),
        tuple(fixes),
    )


# -- logs


@dataclass(frozen=True)
class LogHit:
    kind: str  # maxstartups | tcpwrappers | penalty | denied-user | fail2ban-ban | fail2ban-unban | auth-failure | admitted
    line: str
    source: str


_LOG_PATTERNS = (
    # 8.x-9.x: "past MaxStartups"; 10: "drop connection #1 from [A]:P on [B]:22 Maxstartups"
    ("maxstartups", re.compile(r"maxstartups", re.IGNORECASE)),
    ("tcpwrappers", re.compile(r"refused connect from")),
    ("penalty", re.compile(r"penalty:|srclimit_penalise")),
    ("denied-user", re.compile(r"not allowed because")),
    ("fail2ban-ban", re.compile(r"\]\s+(?:Restore\s+)?Ban\s")),
    ("fail2ban-unban", re.compile(r"\]\s+Unban\s")),
    ("auth-failure", re.compile(r"Failed password|Invalid user|authentication failure")),
    # sshd let a connection in: a penalty logged before it had run out (unban.penalties)
    ("admitted", re.compile(r"Connection from \S+ port|Accepted \S+ for|closed by authenticating")),
)
BLOCKING_LOG_KINDS = ("maxstartups", "tcpwrappers", "penalty", "denied-user", "fail2ban-ban")


def address_pattern(address: str) -> re.Pattern[str]:
    """The address as a whole word in a log line (203.0.113.4 is not 203.0.113.45)."""
    if ":" in address:
        return re.compile(rf"(?<![\w:]){re.escape(address)}(?![\w:])", re.IGNORECASE)
    return re.compile(rf"(?<![\w.]){re.escape(address)}(?!\w|\.\d)")


def scan_log(
    lines: Sequence[str],
    address: str,
    source: str,
    *,
    now: Optional[datetime.datetime] = None,
    max_age: datetime.timedelta = datetime.timedelta(hours=24),
) -> list[LogHit]:
    """Log lines about `address` that tell why it was refused, oldest first. Lines with a
    time stamp (syslog, ISO, fail2ban's) older than `max_age` are left out; lines without one
    (sshd -E) are kept."""
    wanted = address_pattern(address)
    now = now or datetime.datetime.now()
    hits = []
    for line in lines:
        if address not in line and ":" not in address:
            continue
        if not wanted.search(line):
            continue
        stamp = line_time(line, now)
        if stamp is not None and now - stamp > max_age:
            continue
        for kind, pattern in _LOG_PATTERNS:
            if pattern.search(line):
                hits.append(LogHit(kind, line.rstrip(), source))
                break
    return hits


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})")
_SYSLOG = re.compile(r"^([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}:\d{2}:\d{2})")


def line_time(line: str, now: datetime.datetime) -> Optional[datetime.datetime]:
    """The local time a log line starts with, if it starts with one."""
    iso = _ISO.match(line)
    if iso:
        try:
            return datetime.datetime.strptime(f"{iso.group(1)} {iso.group(2)}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    classic = _SYSLOG.match(line)
    if classic:
        try:
            stamp = datetime.datetime.strptime(
                f"{now.year} {classic.group(1)} {classic.group(2)} {classic.group(3)}",
                "%Y %b %d %H:%M:%S",
            )
        except ValueError:
            return None
        if stamp - now > datetime.timedelta(days=1):  # December's lines read in January
            stamp = stamp.replace(year=now.year - 1)
        return stamp
    return None


def logs_check(hits: Sequence[LogHit], sources: Sequence[str], address: str) -> Check:
    title = "logs"
    if not sources:
        return Check(
            "logs", title, NOT_PRESENT, "no journal and no auth.log, secure or fail2ban.log found"
        )
    banned = [h for h in hits if h.kind in ("fail2ban-ban", "fail2ban-unban")]
    blocking = [h for h in hits if h.kind in BLOCKING_LOG_KINDS and h.kind != "fail2ban-ban"]
    if banned and banned[-1].kind == "fail2ban-ban":
        blocking.append(banned[-1])
    failures = [h for h in hits if h.kind == "auth-failure"]
    evidence = [f"{h.line}" for h in hits if h.kind not in ("auth-failure", "admitted")][-12:]
    if failures:
        evidence.append(
            f"{len(failures)} failed login(s) from {address} (what fail2ban counts); last: "
            f"{failures[-1].line}"
        )
    data = {"sources": list(sources), "counts": _counts(hits)}
    read = f"read {', '.join(sources)}"
    if not blocking:
        return Check(
            "logs",
            title,
            CLEAR,
            f"nothing about refusing {address} ({read})",
            tuple(evidence),
            data=data,
        )
    kinds = ", ".join(dict.fromkeys(h.kind for h in blocking))
    return Check(
        "logs",
        title,
        MAY_BLOCK,
        f"{len(blocking)} line(s) about refusing {address} ({kinds}); {read}",
        tuple(evidence),
        data=data,
    )


def _counts(hits: Sequence[LogHit]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for hit in hits:
        counts[hit.kind] = counts.get(hit.kind, 0) + 1
    return counts


# -- the socket table


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
        laddr, destination_known = _local_address(first, address.version, port, prefsrc)
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
    hits, sources = _read_logs(shown, options.logs)
    checks.append(logs_check(hits, sources, shown))

    # the packet filters
    packet = Packet(
        source=address,
        dport=port,
        destination=ipaddress.ip_address(laddr) if laddr and destination_known else None,
        in_interface=interface,
        source_is_local=local,
    )
    results = _layer_results(network)
    checks.append(_path_check(network, packet))
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
        listening = _listening_ports()
        checks.append(
            listen_check(config, address, port, laddr if destination_known else None, listening)
        )
        load = _load(port, address, config.per_source_netblock)
        checks.append(maxstartups_check(config, load, shown, hits, port))
        checks.append(penalties_check(config, shown, hits, version, file_times=_mtimes(sources)))
        checks.append(users_check(_user_access(config, options.user, shown), options.user))
    return Diagnosis(
        address=shown,
        port=port,
        user=options.user,
        server_address=laddr,
        checks=tuple(ordered(checks)),
        notes=tuple(notes),
    )


def _local_address(
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


def _layer_results(network: Network) -> dict[str, LayerResult]:
    """fail2ban and routes, through the engine's own layers."""
    from unban import engine

    layers = {layer.name: layer for layer in engine.default_layers()}
    results: dict[str, LayerResult] = {}
    for name in ("fail2ban", "route"):
        layer = layers.get(name)
        if layer is None:
            results[name] = LayerResult(name, False, f"no {name} layer")
            continue
        results[name] = _layer_result(layer, network)
    return results


def _path_check(network: Network, packet: Packet) -> Check:
    """The path evaluator's verdict for the SYN, through the engine's packet-filter layers;
    the fixes are the commands `unban me` would run for what stops it."""
    from unban import engine, verdict

    layers = [layer for layer in engine.default_layers() if layer.name in verdict.PACKET_LAYERS]
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


def _listening_ports() -> Optional[list[int]]:
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


def _load(port: int, address: IPAddress, netblock: tuple[int, int]) -> Load:
    if which("ss") is None:
        return Load(None, "ss is not installed")
    listeners = run("sshd", ["ss", "-Htlnp", f"( sport = :{port} )"], check=False, timeout=10)
    established = run(
        "sshd",
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        check=False,
        timeout=10,
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


def _user_access(config: SshdConfig, user: Optional[str], address: str) -> UserAccess:
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


_LOG_FILES = ("/var/log/auth.log", "/var/log/secure", "/var/log/fail2ban.log")
_TAIL_BYTES = 8 * 1024 * 1024


def _read_logs(address: str, files: Sequence[str]) -> tuple[list[LogHit], list[str]]:
    """Recent lines about the address: the given files, or the journal (last 24 h) and the
    classic log files (their last 8 MB)."""
    hits: list[LogHit] = []
    sources: list[str] = []
    if not files:
        journal = _journal_lines()
        if journal is not None:
            sources.append("journal (24 h)")
            hits.extend(scan_log(journal, address, "journal"))
        files = tuple(f for f in _LOG_FILES if os.path.isfile(f))
    for path in files:
        lines = _tail(path)
        if lines is None:
            continue
        sources.append(path)
        hits.extend(scan_log(lines, address, path))
    return hits, sources


def _journal_lines() -> Optional[list[str]]:
    if which("journalctl") is None:
        return None
    argv = ["journalctl", "--no-pager", "-q", "-o", "short-iso", "--since=-24h"]
    for ident in ("sshd", "sshd-session", "fail2ban.actions", "fail2ban-server", "fail2ban"):
        argv += ["-t", ident]
    try:
        result = run("logs", argv, check=False, timeout=60)
    except LayerError:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.splitlines()


def _mtimes(paths: Sequence[str]) -> dict[str, datetime.datetime]:
    """Each log file's modification time: the latest its lines can have been written."""
    times = {}
    for path in paths:
        try:
            times[path] = datetime.datetime.fromtimestamp(os.stat(path).st_mtime)
        except OSError:
            continue
    return times


def _tail(path: str) -> Optional[list[str]]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    return data.decode(errors="replace").splitlines()


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
