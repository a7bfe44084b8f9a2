"""fail2ban as a layer: bans held by the running server, or by its database when it is stopped.

Unbanning goes through fail2ban itself (`set JAIL unbanip` on its socket), so its state, its
firewall rules and its database agree; fail2ban removes its own rule, set element or route for
that jail, which is why this layer comes first and the engine leaves those to it
(`Finding.clears`, owner `fail2ban:JAIL`). With the server stopped, the address's rows are
deleted from `bips` and `bans` (the rows saved first in a reverter change set, to be inserted
again by undo), so the next start does not ban it again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from unban.address import Network, family_of, is_targeted, overlaps, parse_network
from unban.defaults import DEFAULT_STATE_DIR
from unban.errors import LayerError
from unban.fail2ban import DEFAULT_CONFDIR, LAYER
from unban.fail2ban import database as db
from unban.fail2ban.client import Client, ServerError, ServerNotRunning, client_command
from unban.fail2ban.config import (
    ConfigError,
    JailConfig,
    ServerPaths,
    jail_configs,
    read_tree,
    server_paths,
)
from unban.fail2ban.ignorelist import covering, spelling
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step

if TYPE_CHECKING:
    from unban.reverter import ChangeSet

# Only a change needs the reverter and ignoreip (imported where they are used): a run that
# finds no ban never loads them.


def clears_of(actions: Sequence[str], unban_commands: Sequence[str]) -> tuple[str, ...]:
    """Layers (other than those named f2b-JAIL) whose entry for the address fail2ban's unban
    removes: `route` (action route: `ip route del`), `hosts` (action hostsdeny: its hosts.deny line)."""
    found: list[str] = []
    text = "\n".join(unban_commands)
    if any(a == "route" or a.startswith("route-") for a in actions) or re.search(
        r"\bip\s+route\s+del\b", text
    ):
        found.append("route")
    if any(a.startswith("hostsdeny") for a in actions) or "hosts.deny" in text:
        found.append("hosts")
    return tuple(found)


@dataclass(frozen=True)
class Ban:
    """One address banned in one jail."""

    jail: str
    ip: str
    network: Network
    since: str
    until: str
    actions: tuple[str, ...]
    ignored_by: Optional[str]  # the ignoreip entry that already covers the target, if any
    clears: tuple[str, ...]
    banned_at: Optional[float] = None  # epoch seconds; None: unknown
    expires_at: Optional[float] = None  # None: unknown, or never (`until` says "forever")


def parse_with_time(line: str) -> Optional[tuple[str, str, str]]:
    """`IP \\tSTART + BANTIME = END` (get JAIL banip --with-time) -> (ip, start, end)."""
    match = re.match(r"^(\S+)\s+(.+?) \+ (-?\d+) = (.+)$", line.strip())
    if not match:
        return None
    ip, start, bantime, end = match.groups()
    return ip, start, ("forever" if int(bantime) < 0 else end)


def rule_text(ban: Ban, target: Network) -> str:
    until = ban.until
    if ban.since[:10] == until[:10]:
        until = until[11:]
    actions = ", ".join(ban.actions) or "none"
    noun = "action" if len(ban.actions) == 1 else "actions"
    ignored = (
        f"; already in its ignoreip ({ban.ignored_by})"
        if ban.ignored_by
        else "; not in its ignoreip"
    )
    return f"banned in jail {ban.jail} since {ban.since} until {until}, {noun} {actions}{ignored}"


def to_finding(ban: Ban, target: Network, backend: str) -> Finding:
    return Finding(
        layer=LAYER,
        backend=backend,
        family=family_of(ban.network),
        table="",
        chain=ban.jail,
        line=None,
        handle=None,
        rule=rule_text(ban, target),
        verdict="ban",
        owner=f"fail2ban:{ban.jail}",
        network=str(ban.network),
        targeted=is_targeted(ban.network, target),
        clears=ban.clears,
        banned_at=ban.banned_at,
        expires_at=ban.expires_at,
        permanent=ban.until == "forever",
    )


def build_batches(findings: Sequence[Finding], confdir: str, dbfile: Optional[str]) -> list[Batch]:
    """One batch for the server (socket unbans), one for the database when stopped. Pure."""
    batches: list[Batch] = []
    server = [f for f in findings if f.layer == LAYER and f.backend == "server"]
    stored = [f for f in findings if f.layer == LAYER and f.backend == "database"]
    if server:
        steps = []
        payload = []
        undo = []
        for finding in server:
            ip = _ban_id(finding)
            jail = finding.chain or ""
            steps.append(
                Step(
                    finding=finding,
                    command=client_command(["set", jail, "unbanip", ip], confdir),
                    undo_command=client_command(["set", jail, "banip", ip], confdir),
                )
            )
            payload.append(("unbanip", jail, ip))
            undo.append(("banip", jail, ip))
        batches.append(Batch(LAYER, "server", tuple(steps), tuple(payload), tuple(undo)))
    if stored:
        path = dbfile or ""
        steps = []
        rows: list[tuple[str, str, str, str]] = []
        for finding in stored:
            ip = _ban_id(finding)
            jail = finding.chain or ""
            steps.append(
                Step(
                    finding=finding,
                    command=db.delete_command(path, ip, jail),
                    undo_command=f"unban undo  # restores {path} from the backup taken first",
                )
            )
            rows.append(("delete", path, jail, ip))
        batches.append(
            Batch(LAYER, f"database {path}", tuple(steps), tuple(rows), (("restore", path),))
        )
    return batches


def _ban_id(finding: Finding) -> str:
    network = parse_network(finding.network)
    return spelling(network) if network is not None else finding.network


class Fail2banLayer:
    """fail2ban's bans, through its socket (server running) or its database (stopped)."""

    name = LAYER

    def __init__(
        self,
        confdir: str = DEFAULT_CONFDIR,
        state_dir: str = DEFAULT_STATE_DIR,
        *,
        timeout: float = 5.0,
    ) -> None:
        self.confdir = confdir
        self.state_dir = state_dir
        self.timeout = timeout
        self._paths: Optional[ServerPaths] = None
        self._running: Optional[bool] = None
        self._version = ""
        self._done: dict[Batch, list[tuple[str, str]]] = {}
        self._change_sets: dict[Batch, str] = {}
        # `unban me` passes its change set: the database backup goes there, not in one of ours.
        self.change_set: Optional[ChangeSet] = None
        self._db_rows: dict[Batch, tuple[str, dict[str, Any]]] = {}

    # -- reading

    def present(self) -> bool:
        return os.path.isfile(os.path.join(self.confdir, "fail2ban.conf")) or os.path.isfile(
            os.path.join(self.confdir, "jail.conf")
        )

    def paths(self) -> ServerPaths:
        if self._paths is None:
            self._paths = server_paths(self.confdir)
        return self._paths

    def client(self) -> Client:
        return Client(self.paths().socket, timeout=self.timeout)

    def running(self) -> bool:
        """True when the server answers; False when nothing listens. Other failures raise."""
        if self._running is None:
            try:
                with self.client() as client:
                    self._version = str(client.call(["version"]))
                self._running = True
            except ServerNotRunning:
                self._running = False
        return self._running

    def status(self) -> list[LayerStatus]:
        if not self.present():
            return [LayerStatus(LAYER, False, f"no fail2ban config in {self.confdir}")]
        try:
            if self.running():
                return [
                    LayerStatus(LAYER, True, f"server {self._version} at {self.paths().socket}")
                ]
        except (LayerError, ConfigError) as exc:
            return [LayerStatus(LAYER, False, str(exc))]
        dbfile = self.paths().dbfile
        if dbfile and os.path.isfile(dbfile):
            return [LayerStatus(LAYER, True, f"server stopped; bans read from {dbfile}")]
        return [LayerStatus(LAYER, False, "server stopped and no database to read")]

    def _jail_configs(self) -> dict[str, JailConfig]:
        try:
            return {j.name: j for j in jail_configs(read_tree(self.confdir, "jail"))}
        except ConfigError:
            return {}

    def find(self, target: Network) -> list[Finding]:
        if not self.present():
            return []
        try:
            self.paths()
        except ConfigError:
            return []  # status() says why: fail2ban cannot start with this config either
        if self.running():
            return [to_finding(b, target, "server") for b in self._server_bans(target)]
        return [to_finding(b, target, "database") for b in self._stored_bans(target)]

    def _server_bans(self, target: Network) -> list[Ban]:
        """Bans the server holds. For one address: `banned IP` names the jails, and the times
        come from the database by primary key (measured: 100k bans in a jail, `get JAIL banip
        --with-time` takes 0.55 s; the database lookup well under a millisecond)."""
        bans: list[Ban] = []
        with self.client() as client:
            entries: dict[str, dict[str, tuple[str, str]]] = {}
            if target.num_addresses == 1:
                ip = str(target.network_address)
                reply = client.call(["banned", ip])
                holders = [str(j) for j in (reply[0] if reply else [])]
                stored = self._stored_times(target)
                for jail in holders:
                    found = stored.get((ip, jail)) or _listed_times(client, jail).get(ip)
                    entries[jail] = {ip: found or ("(unknown)", "(unknown)")}
            else:
                for jail in _jail_list(client.call(["status"])):
                    entries[jail] = _listed_times(client, jail)
            for jail, listed in entries.items():
                for ip, (since, until) in listed.items():
                    network = parse_network(ip)
                    if network is None or not overlaps(network, target):
                        continue
                    bans.append(_describe(client, jail, ip, network, since, until))
        return bans

    def _stored_times(self, target: Network) -> dict[tuple[str, str], tuple[str, str]]:
        """(ip, jail) -> (since, until) from the database, read-only; {} when there is none."""
        dbfile = self.paths().dbfile
        if not dbfile or not os.path.isfile(dbfile):
            return {}
        try:
            rows = db.read_rows(dbfile, target)
        except LayerError:
            return {}
        return {
            (row.ip, row.jail): (db.format_time(row.timeofban), db.format_time(row.until))
            for row in rows
        }

    def _stored_bans(self, target: Network) -> list[Ban]:
        dbfile = self.paths().dbfile
        if not dbfile or not os.path.isfile(dbfile):
            return []
        import time

        configs = self._jail_configs()
        bans = []
        for row, network, _targeted in db.select_rows(
            db.read_rows(dbfile, target), target, time.time()
        ):
            config = configs.get(row.jail)
            actions = config.actions if config else ()
            ignored = covering(config.ignoreip, network) if config else None
            bans.append(
                Ban(
                    row.jail,
                    row.ip,
                    network,
                    db.format_time(row.timeofban),
                    db.format_time(row.until),
                    actions,
                    ignored,
                    clears_of(actions, ()),
                    banned_at=float(row.timeofban),
                    expires_at=None if row.until is None else float(row.until),
                )
            )
        return bans

    def listings(self, query: ListQuery) -> list[Listing]:
        if not self.present() or query.table or query.chain:
            return []
        try:
            running = self.running()
        except (LayerError, ConfigError):
            return []
        lines: list[str] = []
        data: dict[str, Any] = {"confdir": self.confdir, "running": running, "jails": []}
        if running:
            with self.client() as client:
                for jail in _jail_list(client.call(["status"])):
                    count = _banned_count(client.call(["status", jail]))
                    actions = [str(a) for a in client.call(["get", jail, "actions"])]
                    lines.append(f"{jail}: {count} banned, actions {', '.join(actions) or 'none'}")
                    data["jails"].append({"jail": jail, "banned": count, "actions": actions})
            title = f"fail2ban server {self._version} ({self.paths().socket})"
        else:
            dbfile = self.paths().dbfile
            if not dbfile or not os.path.isfile(dbfile):
                return []
            import time

            now = time.time()
            counts: dict[str, int] = {}
            for row in db.read_rows(dbfile):
                if row.active(now):
                    counts[row.jail] = counts.get(row.jail, 0) + 1
            for jail, count in sorted(counts.items()):
                lines.append(f"{jail}: {count} banned (restored at the next start)")
                data["jails"].append({"jail": jail, "banned": count, "actions": []})
            title = f"fail2ban (server stopped; database {dbfile})"
        return [Listing(LAYER, title, tuple(lines), data)]

    # -- planning and changing

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        mine = [f for f in findings if f.layer == LAYER]
        if not mine:
            return []
        dbfile = self.paths().dbfile if any(f.backend == "database" for f in mine) else None
        return build_batches(mine, self.confdir, dbfile)

    def apply(self, batch: Batch) -> None:
        if batch.scope == "server":
            self._apply_server(batch)
        else:
            self._apply_database(batch)

    def unbanned(self, batch: Batch) -> list[tuple[str, str]]:
        """(jail, ip) pairs this object's `apply` of a server batch really unbanned."""
        return list(self._done.get(batch, []))

    def revert(self, batch: Batch) -> None:
        """Ban again (server), or put the database back. A server batch this object did not
        apply (`unban undo` in a later process) bans again what its undo_payload names."""
        if batch.scope == "server":
            done = self._done.pop(batch, None)
            if done is None:
                done = [(str(jail), str(ip)) for _op, jail, ip in batch.undo_payload]
            with self.client() as client:
                for jail, ip in reversed(done):
                    client.call(["set", jail, "banip", ip])
            return
        saved = self._db_rows.pop(batch, None)
        if saved is not None:
            path, rows = saved
            self._running = None
            if self.running():
                raise LayerError(
                    LAYER,
                    f"fail2ban-server started meanwhile: the rows were not put back into {path} "
                    "(stop it, then `unban undo`)",
                )
            db.insert_rows(path, rows)
            return
        change_id = self._change_sets.pop(batch, None)
        if change_id is not None:
            from unban.fail2ban.ignoreip import rollback_check
            from unban.reverter import Reverter

            Reverter(self.state_dir).rollback(
                change_id,
                handlers={db.ROWS_KIND: db.undo_rows},
                check=rollback_check(lambda: self.paths().socket),
            )

    def _apply_server(self, batch: Batch) -> None:
        done = self._done.setdefault(batch, [])
        with self.client() as client:
            for _op, jail, ip in batch.payload:
                try:
                    client.call(["set", jail, "unbanip", "--report-absent", ip])
                except ServerError as exc:
                    if "not banned" in str(exc.failure):
                        continue  # expired or unbanned meanwhile: nothing to undo either
                    raise
                done.append((jail, ip))

    def _apply_database(self, batch: Batch) -> None:
        paths = self.paths()
        try:
            with self.client() as client:
                client.call(["ping"])
            raise LayerError(
                LAYER,
                "fail2ban-server started while unban was working; its database is left alone: "
                "run unban again",
            )
        except ServerNotRunning:
            pass
        _refuse_if_alive(paths.pidfile)
        path = str(batch.payload[0][1])
        pairs = [(str(ip), str(jail)) for _op, _path, jail, ip in batch.payload]
        jails = ", ".join(sorted({jail for _ip, jail in pairs}))
        ips = ", ".join(sorted({ip for ip, _jail in pairs}))
        rows = db.saved_rows(path, pairs)
        change_set = self.change_set
        own = change_set is None
        if change_set is None:
            from unban.reverter import Reverter

            change_set = Reverter(self.state_dir).begin(
                f"fail2ban database {path}: unban {ips} in {jails}"
            )
            self._change_sets[batch] = change_set.id
        # Written down (with the rows) before they are deleted; undo inserts them again, so
        # bans fail2ban records later are never lost by putting a whole file back.
        change_set.record_action(
            db.ROWS_KIND, path=path, rows=rows, summary=f"fail2ban database {path}: {ips} ({jails})"
        )
        self._db_rows[batch] = (path, rows)
        try:
            db.delete_rows(path, pairs)
        except LayerError:
            if own:  # one transaction: nothing was deleted
                self._change_sets.pop(batch, None)
                change_set.rollback({db.ROWS_KIND: db.undo_rows})
            raise
        if own:
            change_set.finalize()


def _listed_times(client: Client, jail: str) -> dict[str, tuple[str, str]]:
    times = {}
    for line in client.call(["get", jail, "banip", "--with-time"]):
        parsed = parse_with_time(str(line))
        if parsed:
            times[parsed[0]] = parsed[1:]
    return times


def _describe(client: Client, jail: str, ip: str, network: Network, since: str, until: str) -> Ban:
    """A ban with the jail's actions, what their unban clears, and the live ignoreip."""
    actions = tuple(str(a) for a in client.call(["get", jail, "actions"]))
    unbans = []
    for action in actions:
        try:
            unbans.append(str(client.call(["get", jail, "action", action, "actionunban"])))
        except ServerError:
            pass  # a Python action has no actionunban command
    live_ignore = [str(e) for e in client.call(["get", jail, "ignoreip"])]
    return Ban(
        jail,
        ip,
        network,
        since,
        until,
        actions,
        covering(live_ignore, network),
        clears_of(actions, unbans),
        banned_at=local_epoch(since),
        expires_at=local_epoch(until),
    )


def local_epoch(text: str) -> Optional[float]:
    """`2026-12-01 07:30:21` in this host's time zone (as fail2ban and format_time write it)
    as epoch seconds; None for "forever", "(unknown)" or anything else."""
    import time

    try:
        return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _jail_list(status: Any) -> list[str]:
    for key, value in status or []:
        if key == "Jail list":
            return [j.strip() for j in str(value).split(",") if j.strip()]
    return []


def _banned_count(status: Any) -> int:
    for key, value in status or []:
        if key == "Actions":
            for inner_key, inner_value in value:
                if inner_key == "Currently banned":
                    return int(inner_value)
    return 0


def _refuse_if_alive(pidfile: str) -> None:
    """A live fail2ban-server behind a pidfile (socket gone): never edit its database."""
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip() or "0")
    except (OSError, ValueError):
        return
    if pid <= 0:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return
    if "fail2ban-server" in cmdline:
        raise LayerError(
            LAYER,
            f"fail2ban-server (pid {pid}, {pidfile}) is running but its socket does not answer; "
            "its database is left alone",
        )
