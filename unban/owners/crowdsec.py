"""CrowdSec as an owner: its decisions on an address, deleted through cscli and put back.

A CrowdSec ban is a *decision* in its local API's database; the firewall bouncer polls the API
(every `update_frequency`, 10 s by default) and keeps one kernel element per ban decision (nft
sets in tables crowdsec/crowdsec6, or ipsets crowdsec-blacklists/crowdsec6-blacklists: owner
"crowdsec" in the kernel layers). Deleting only the element lasts until the bouncer restarts;
deleting the decision (`cscli decisions delete --id N`) makes the bouncer remove the element at
its next poll, so a decision finding `lifts_own` and the engine leaves the element to it
(`unban me` waits for the bouncer, bounded by `settle_seconds`, and lifts what is still left).

Undo adds each decision again with `cscli decisions add`: its scope, value, type, reason and the
duration it had left (new ids, origin cscli; a decision whose time ran out is not added).

When the local API does not answer (CrowdSec stopped), the decisions are read from its sqlite
database, read-only; they cannot be deleted then (`plan` declines them: the run ends "still
refused"), and the kernel element is lifted by its layer, which lasts until the bouncer's next
start.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from unban.address import Network, parse_network, show
from unban.errors import LayerError
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step
from unban.procfs import read_text, running
from unban.system import run, which

LAYER = "crowdsec"
CONFIG = "/etc/crowdsec/config.yaml"
BOUNCER_CONFIG = "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"
LAPI_CREDENTIALS = "/etc/crowdsec/local_api_credentials.yaml"
DEFAULT_DB = "/var/lib/crowdsec/data/crowdsec.db"
DEFAULT_POLL = 10.0  # seconds: the bouncer's default update_frequency
DOWN = ("connection refused", "dial tcp", "no such host", "could not get jwt token")


@dataclass(frozen=True)
class Decision:
    id: int
    scope: str  # Ip | Range
    value: str
    type: str  # ban | captcha | ...
    scenario: str
    seconds_left: int
    origin: str = ""


# ---------------------------------------------------------------- pure parts


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> int:
    """A Go duration ("3h59m57.06s", "-1m") in whole seconds."""
    sign = -1 if text.startswith("-") else 1
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    return sign * int(seconds)


def go_duration(seconds: int) -> str:
    """Whole seconds as cscli's --duration takes them: "3h59m57s"."""
    hours, rest = divmod(max(seconds, 1), 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + f"{secs}s"


def decisions_from_json(text: str) -> list[Decision]:
    """`cscli decisions list -o json`: alerts, each with its decisions (null when none)."""
    alerts = json.loads(text or "null") or []
    out = []
    for alert in alerts:
        for decision in alert.get("decisions") or []:
            out.append(
                Decision(
                    id=int(decision["id"]),
                    scope=str(decision.get("scope", "Ip")),
                    value=str(decision.get("value", "")),
                    type=str(decision.get("type", "ban")),
                    scenario=str(decision.get("scenario", "")),
                    seconds_left=parse_duration(str(decision.get("duration", "0s"))),
                    origin=str(decision.get("origin", "")),
                )
            )
    return out


def add_argv(decision: Decision) -> list[str]:
    """The `cscli decisions add` that makes `decision` again, for the time it had left."""
    where = (
        ["--range", decision.value]
        if decision.scope.lower() == "range"
        else ["--ip", decision.value]
    )
    argv = ["cscli", "decisions", "add", *where, "--duration", go_duration(decision.seconds_left)]
    argv += ["--type", decision.type]
    if decision.scenario:
        argv += ["--reason", decision.scenario]
    return argv


def yaml_scalar(text: str, key: str) -> Optional[str]:
    """The value of a top-level `key: value` line of a simple YAML file (None if absent)."""
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            value = line.split(":", 1)[1].split(" #", 1)[0].strip().strip("\"'")
            return value
    return None


def nested_scalar(text: str, section: str, key: str) -> Optional[str]:
    """`key` under top-level `section:` (any depth, first match) of a simple YAML file."""
    inside = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.rstrip().rstrip(":") == section
            continue
        if inside and line.strip().startswith(f"{key}:"):
            return line.split(":", 1)[1].split(" #", 1)[0].strip().strip("\"'")
    return None


def _shell(argv: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


def agent_pid(proc: str = "/proc") -> Optional[int]:
    """The pid of a crowdsec agent running in our namespaces (argv[0] crowdsec), or None."""
    found = running("crowdsec", proc)
    return found[0] if found is not None else None


# ---------------------------------------------------------------- the owner


class CrowdsecOwner:
    """The owner layer "crowdsec": the local API's decisions on the address."""

    name = LAYER

    def __init__(
        self, config: str = CONFIG, bouncer_config: str = BOUNCER_CONFIG, *, proc: str = "/proc"
    ) -> None:
        self.config = config
        self.bouncer_config = bouncer_config
        self.proc = proc
        self.api_down = ""  # why the local API did not answer at the last find
        self._seen: dict[int, Decision] = {}  # the decisions the last find read, by id

    def present(self) -> bool:
        return which("cscli") is not None and os.path.isfile(self.config)

    def status(self) -> list[LayerStatus]:
        if not self.present():
            return [LayerStatus(LAYER, False, "CrowdSec is not installed (no cscli or config)")]
        if self.api_down:
            return [LayerStatus(LAYER, True, f"its local API does not answer: {self.api_down}")]
        return [LayerStatus(LAYER, True, "")]

    def listings(self, query: ListQuery) -> list[Listing]:
        return []

    def _cscli(self, *args: str, check: bool = True) -> Any:
        return run(LAYER, ["cscli", "-c", self.config, *args], check=check, timeout=60)

    def _api_is_local_and_down(self) -> bool:
        """The local API is this host's (a loopback URL) and no agent runs here: nothing would
        answer (and asking would send packets through the firewall being read)."""
        credentials = nested_scalar(read_text(self.config) or "", "api", "credentials_path")
        url = yaml_scalar(read_text(credentials or LAPI_CREDENTIALS) or "", "url") or ""
        local = any(host in url for host in ("//127.", "//localhost", "//[::1]"))
        return local and agent_pid(self.proc) is None

    def decisions(self, target: Network) -> tuple[list[Decision], bool]:
        """The decisions on `target`, and whether the local API answered."""
        if self._api_is_local_and_down():
            self.api_down = "no crowdsec agent runs here"
            return self._from_database(target), False
        where = ["-i", show(target)] if target.num_addresses == 1 else ["-r", show(target)]
        proc = self._cscli("decisions", "list", *where, "-o", "json", check=False)
        if proc.returncode == 0:
            self.api_down = ""
            return decisions_from_json(proc.stdout), True
        message = (proc.stderr + proc.stdout).strip()
        if not any(word in message.lower() for word in DOWN):
            raise LayerError(LAYER, f"cscli decisions list failed: {message.splitlines()[-1:]}")
        self.api_down = message.splitlines()[-1] if message else "no answer"
        return self._from_database(target), False

    def _from_database(self, target: Network) -> list[Decision]:
        """The active decisions on `target` in CrowdSec's sqlite database, read-only."""
        text = read_text(self.config) or ""
        path = nested_scalar(text, "db_config", "db_path") or DEFAULT_DB
        if not os.path.isfile(path):
            return []
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
            try:
                rows = db.execute(
                    "SELECT id, scope, value, type, scenario, until, origin FROM decisions"
                ).fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise LayerError(LAYER, f"cannot read {path}: {exc}") from None
        now = time.time()
        out = []
        for row in rows:
            until = _epoch(str(row[5]))
            network = parse_network(str(row[2]))
            if until is None or until <= now or network is None:
                continue
            if network.version != target.version or not target.subnet_of(network):  # type: ignore[arg-type]
                continue
            out.append(
                Decision(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4] or ""),
                         int(until - now), str(row[6] or ""))
            )  # fmt: skip
        return out

    def find(self, target: Network) -> list[Finding]:
        if not self.present():
            return []
        found, live = self.decisions(target)
        now = time.time()
        out = []
        for decision in found:
            self._seen[decision.id] = decision
            network = parse_network(decision.value)
            if network is None:
                continue
            where = "" if live else " (read from its database: the local API does not answer)"
            out.append(
                Finding(
                    layer=LAYER,
                    backend="lapi" if live else "database",
                    family=f"ipv{network.version}",
                    table="decisions",
                    chain=None,
                    line=None,
                    handle=decision.id,
                    rule=(
                        f"{decision.type} {decision.scope} {decision.value} for "
                        f"{go_duration(decision.seconds_left)} ({decision.scenario}){where}"
                    ),
                    verdict=decision.type,
                    owner="crowdsec",
                    network=show(network),
                    targeted=network.num_addresses == 1 or network == target,
                    source=f"cscli decision {decision.id}",
                    lifts_own=live,
                    expires_at=now + decision.seconds_left,
                )
            )
        return out

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        """One batch deleting the decisions; those read from the database are declined."""
        live = [f for f in findings if f.backend == "lapi" and f.handle in self._seen]
        if not live:
            return []
        steps = []
        payload = []
        for finding in live:
            decision = self._seen[finding.handle or 0]
            steps.append(
                Step(
                    finding,
                    _shell(["cscli", "decisions", "delete", "--id", str(decision.id)]),
                    _shell(add_argv(decision)),
                )
            )
            payload.append(
                (decision.id, decision.scope, decision.value, decision.type, decision.scenario,
                 int(time.time()) + decision.seconds_left)
            )  # fmt: skip
        return [Batch(LAYER, "decisions", tuple(steps), tuple(payload), tuple(payload))]

    def apply(self, batch: Batch) -> None:
        for decision_id, *_rest in batch.payload:
            proc = self._cscli("decisions", "delete", "--id", str(decision_id), check=False)
            if proc.returncode != 0:
                raise LayerError(
                    LAYER,
                    f"cscli decisions delete --id {decision_id} failed: {proc.stderr.strip()}",
                )

    def revert(self, batch: Batch) -> None:
        """Add each deleted decision again with the time it had left; one still there (a run
        cut short before its delete: the journal cannot tell by the finding, whose text has
        the time left in it) is not added twice."""
        now = int(time.time())
        still: set[int] = set()
        for value in {str(item[2]) for item in batch.undo_payload}:
            network = parse_network(value)
            if network is not None and self.present():
                still.update(decision.id for decision in self.decisions(network)[0])
        for decision_id, scope, value, kind, scenario, until in batch.undo_payload:
            left = int(until) - now
            if left <= 0 or int(decision_id) in still:
                continue  # it would have ended by now, or it was never deleted
            decision = Decision(0, str(scope), str(value), str(kind), str(scenario), left)
            self._cscli(*add_argv(decision)[1:])

    def settle_seconds(self) -> float:
        """How long the bouncer may take to follow a deleted decision: its poll interval
        (update_frequency, from its config and .local override) plus a margin."""
        poll = DEFAULT_POLL
        for path in (self.bouncer_config, f"{self.bouncer_config}.local"):
            value = yaml_scalar(read_text(path) or "", "update_frequency")
            if value:
                poll = max(parse_duration(value), 1)
        return min(poll + 3.0, 60.0)


def _epoch(text: str) -> Optional[float]:
    """sqlite's "2026-12-01 11:18:38.123+00:00" (what CrowdSec's ent stores) as epoch seconds."""
    from datetime import datetime, timezone

    cleaned = text.strip().replace("T", " ")
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
    cleaned = cleaned.replace("Z", "+00:00")
    for pattern in (
        "%Y-%m-%d %H:%M:%S.%f%z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S.%f",
        "%Y-%m-%d %H:%M:%S",
    ):
        try:
            parsed = datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return None
