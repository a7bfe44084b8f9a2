"""sshd's own admission, as checks: MaxStartups, PerSourcePenalties, who may log in, and an
sshd whose configuration could not be read. Pure: they take sshd's effective config, the load
and the log lines."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Optional

from unban.checks import SEES_DENIED, SEES_RESET, Check
from unban.checks.sockets import Load
from unban.path.model import BLOCKS, CLEAR, MAY_BLOCK, NOT_PRESENT
from unban.sshd import SshdConfig, UserAccess, in_exempt_list

if TYPE_CHECKING:  # the log's clock and the penalty judge are imported by penalties_check:
    # `unban me` asks only maxstartups_check and users_check, and reads no log
    from unban import penalties
    from unban.logs import LogHit


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
    data = {"max_startups": str(ms), "per_source": per_source, "load": _load_data(load)}
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
    from unban import penalties

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
    from unban import penalties
    from unban.logs import line_time

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


def _load_data(load: Load) -> dict[str, object]:
    """The load as plain values, for --json."""
    return {
        "startups": load.startups,
        "source": load.source,
        "from_address": load.from_address,
        "total": load.total,
        "preauth": [{"local": c.local, "peer": c.peer, "pids": list(c.pids)} for c in load.preauth],
    }
