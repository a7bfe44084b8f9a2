"""firewalld as an owner: blocks kept in its zones and ipsets, lifted with firewall-cmd.

firewalld owns `table inet firewalld` and rewrites it from its own config at every reload and
start, so the kernel layers never change that table (the nftables layer declines it). What
keeps a block on the address there:

- a source (address or network) of a zone whose target drops or rejects (`drop`: DROP, `block`:
  %%REJECT%%, or any zone set to DROP/REJECT): firewalld sends its packets to that zone;
- a rich rule whose `source address=` covers the address and whose action is drop or reject;
- an entry of a firewalld ipset that such a zone has as source (`ipset:NAME`) or that such a
  rich rule names (`source ipset=NAME`).

Each is read twice, runtime (`firewall-cmd --list-all-zones`, `--info-ipset=NAME`) and
permanent (`--permanent`, or `firewall-offline-cmd` when firewalld is stopped), and is lifted
where it is: `firewall-cmd --zone=Z --remove-source=X` for the runtime and the same with
`--permanent` for the config (no `--reload`: a reload throws away every runtime-only change,
fail2ban's firewallcmd bans among them); `firewall-offline-cmd ...` when firewalld is stopped.
Undo runs the matching `--add-...` commands. firewall-cmd also removes its own kernel entries
(`lifts_own`, owner "firewalld").
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.address import Network, family_of, is_targeted, parse_network, show
from unban.errors import LayerError
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step
from unban.owners.files import read_text
from unban.system import first_line, run, which

LAYER = "firewalld"
CONFIG_DIR = "/etc/firewalld"
SYSTEM_BUS = "/run/dbus/system_bus_socket"
BLOCKING_TARGETS = ("DROP", "REJECT", "%%REJECT%%")
RICH_SOURCE = re.compile(r'\bsource\s+(NOT\s+)?(address|ipset)="([^"]+)"')
QUOTED = re.compile(r'"[^"]*"')
Argv = tuple[str, ...]


# ---------------------------------------------------------------- parsing (pure)


@dataclass(frozen=True)
class Zone:
    name: str
    target: str
    sources: tuple[str, ...]
    rich_rules: tuple[str, ...]


def parse_zones(text: str) -> list[Zone]:
    """`firewall-cmd [--permanent] --list-all-zones` (or firewall-offline-cmd's). Pure."""
    zones = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = block.splitlines()
        if not lines or lines[0].startswith((" ", "\t")):
            continue
        name = lines[0].split()[0]
        fields: dict[str, str] = {}
        rich: list[str] = []
        in_rich = False
        for line in lines[1:]:
            if line.startswith("\t") and in_rich:
                rich.append(line.strip())
                continue
            key, _, value = line.strip().partition(":")
            fields[key] = value.strip()
            in_rich = key == "rich rules"
        zones.append(
            Zone(
                name,
                fields.get("target", ""),
                tuple(fields.get("sources", "").split()),
                tuple(rich),
            )
        )
    return zones


def parse_ipset_entries(text: str) -> tuple[str, ...]:
    """The entries of `firewall-cmd --info-ipset=NAME`. Pure."""
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "entries":
            return tuple(value.split())
    return ()


def rich_action(rule: str) -> str:
    """drop, reject, accept or mark: the rich rule's action ("" if none). Pure."""
    words = QUOTED.sub('""', rule).split()
    for action in ("drop", "reject", "accept", "mark"):
        if action in words:
            return action
    return ""


def rich_source(rule: str) -> Optional[tuple[str, str]]:
    """("address" | "ipset", value) of a rich rule's source, or None (none, or NOT). Pure."""
    match = RICH_SOURCE.search(rule)
    if match is None or match.group(1):
        return None
    return match.group(2), match.group(3)


@dataclass(frozen=True)
class Block:
    """One thing in firewalld's config that keeps a block on (part of) the target."""

    kind: str  # source | rich-rule | ipset-entry
    where: str  # the zone, or the ipset for an ipset entry
    value: str  # the source, the rich rule, the entry
    entry: str  # the address or network in it
    verdict: str

    def args(self, *, add: bool) -> Argv:
        verb = "--add" if add else "--remove"
        if self.kind == "source":
            return (f"--zone={self.where}", f"{verb}-source={self.value}")
        if self.kind == "rich-rule":
            return (f"--zone={self.where}", f"{verb}-rich-rule={self.value}")
        return (f"--ipset={self.where}", f"{verb}-entry={self.value}")

    def text(self) -> str:
        if self.kind == "source":
            return f"zone {self.where} (target {self.verdict}): source {self.value}"
        if self.kind == "rich-rule":
            return f"zone {self.where}: {self.value}"
        return f"ipset {self.where}: entry {self.value}"


def dropping_ipsets(zones: Sequence[Zone]) -> dict[str, str]:
    """ipset name -> how its members are refused, for ipsets a zone or rich rule drops. Pure."""
    names: dict[str, str] = {}
    for zone in zones:
        if zone.target in BLOCKING_TARGETS:
            for source in zone.sources:
                if source.startswith("ipset:"):
                    names.setdefault(source[len("ipset:") :], zone.target)
        for rule in zone.rich_rules:
            named = rich_source(rule)
            action = rich_action(rule)
            if named and named[0] == "ipset" and action in ("drop", "reject"):
                names.setdefault(named[1], action)
    return names


def blocks(
    zones: Sequence[Zone], ipsets: dict[str, tuple[str, ...]], target: Network
) -> list[Block]:
    """Every block on (part of) the target in one view (runtime or permanent). Pure.

    `ipsets`: the entries of each ipset `dropping_ipsets` names."""
    found = []

    def covers(text: str) -> bool:
        network = parse_network(text)
        return (
            network is not None and network.version == target.version and network.overlaps(target)
        )

    for zone in zones:
        if zone.target in BLOCKING_TARGETS:
            for source in zone.sources:
                if covers(source):
                    found.append(Block("source", zone.name, source, source, zone.target))
        for rule in zone.rich_rules:
            named = rich_source(rule)
            action = rich_action(rule)
            if named and named[0] == "address" and action in ("drop", "reject"):
                if covers(named[1]):
                    found.append(Block("rich-rule", zone.name, rule, named[1], action))
    drops = dropping_ipsets(zones)
    for name, entries in ipsets.items():
        for entry in entries:
            if name in drops and covers(entry):
                found.append(Block("ipset-entry", name, entry, entry, drops[name]))
    return found


# ---------------------------------------------------------------- the owner


class FirewalldOwner:
    """firewalld's zones and ipsets, changed with firewall-cmd (firewall-offline-cmd when
    firewalld is stopped)."""

    name = LAYER

    def __init__(
        self,
        config_dir: str = CONFIG_DIR,
        system_bus: str = SYSTEM_BUS,
        *,
        firewall_cmd: str = "firewall-cmd",
        offline_cmd: str = "firewall-offline-cmd",
    ) -> None:
        self.config_dir = config_dir
        self.system_bus = system_bus
        self.firewall_cmd = firewall_cmd
        self.offline_cmd = offline_cmd
        self._seen: dict[Finding, tuple[Block, tuple[Argv, ...]]] = {}

    # -- reading

    def running(self) -> bool:
        """firewalld answers on the system bus (no bus: it cannot be running)."""
        if which(self.firewall_cmd) is None or not os.path.exists(self.system_bus):
            return False
        done = run(LAYER, [self.firewall_cmd, "--state"], check=False, timeout=30)
        return done.returncode == 0 and done.stdout.strip() == "running"

    def configured(self) -> bool:
        """Some zone or ipset file of the permanent config has a source, rule or entry (the
        zones firewalld ships have none): without one nothing there can block."""
        for kind in ("zones", "ipsets"):
            for path in glob.glob(os.path.join(self.config_dir, kind, "*.xml")):
                text = read_text(path) or ""
                if "<source" in text or "<rule" in text or "<entry" in text:
                    return True
        return False

    def status(self) -> list[LayerStatus]:
        if which(self.firewall_cmd) is None and which(self.offline_cmd) is None:
            return [LayerStatus(LAYER, False, "firewalld is not installed")]
        detail = f"running firewalld's runtime and permanent config, else {self.config_dir}"
        return [LayerStatus(LAYER, True, detail)]

    def listings(self, query: ListQuery) -> list[Listing]:
        return []

    def _views(self) -> list[tuple[str, Argv]]:
        """(place, the command prefix that reads and changes it)."""
        if self.running():
            return [
                ("runtime", (self.firewall_cmd,)),
                ("permanent", (self.firewall_cmd, "--permanent")),
            ]
        if which(self.offline_cmd) is not None and self.configured():
            return [("permanent", (self.offline_cmd,))]
        return []

    def _read(self, prefix: Argv, target: Network) -> list[Block]:
        zones = parse_zones(self._output([*prefix, "--list-all-zones"]))
        ipsets = {
            name: parse_ipset_entries(self._output([*prefix, f"--info-ipset={name}"]))
            for name in dropping_ipsets(zones)
        }
        return blocks(zones, ipsets, target)

    def find(self, target: Network) -> list[Finding]:
        if which(self.firewall_cmd) is None and which(self.offline_cmd) is None:
            return []
        places: dict[Block, list[tuple[str, Argv]]] = {}
        for place, prefix in self._views():
            for block in self._read(prefix, target):
                places.setdefault(block, []).append((place, prefix))
        findings = []
        for block, where in places.items():
            network = parse_network(block.entry)
            assert network is not None  # blocks() only keeps parsable entries
            names = " and ".join(place for place, _prefix in where)
            finding = Finding(
                layer=LAYER,
                backend="firewall-cmd" if where[0][1][0] == self.firewall_cmd else "offline",
                family=family_of(network),
                table="firewalld",
                chain=block.where if block.kind != "ipset-entry" else None,
                line=None,
                handle=None,
                rule=block.text(),
                verdict=block.verdict.lower(),
                owner="firewalld",
                network=show(network),
                targeted=is_targeted(network, target),
                set_name=block.where if block.kind == "ipset-entry" else None,
                element=block.entry if block.kind == "ipset-entry" else None,
                source=f"firewalld {block.text()} ({names})",
                lifts_own=True,
            )
            self._seen[finding] = (block, tuple(prefix for _place, prefix in where))
            findings.append(finding)
        return findings

    # -- planning and changing

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        steps = []
        payload: list[tuple[Argv, Argv]] = []
        for finding in findings:
            seen = self._seen.get(finding)
            if seen is None:
                continue
            block, prefixes = seen
            pairs = [
                ((*prefix, *block.args(add=False)), (*prefix, *block.args(add=True)))
                for prefix in prefixes
            ]
            steps.append(
                Step(
                    finding,
                    " && ".join(shlex.join(remove) for remove, _add in pairs),
                    " && ".join(shlex.join(add) for _remove, add in pairs),
                )
            )
            payload.extend(pairs)
        if not steps:
            return []
        undo = tuple(add for _remove, add in reversed(payload))
        return [Batch(LAYER, "firewalld", tuple(steps), tuple(payload), undo)]

    def apply(self, batch: Batch) -> None:
        done: list[Argv] = []
        for remove, add in batch.payload:
            try:
                self._output(tuple(remove))
            except LayerError:
                for undo in reversed(done):  # this batch is one unit: put back what it did
                    self._output(undo)
                raise
            done.append(tuple(add))

    def revert(self, batch: Batch) -> None:
        for add in batch.undo_payload:
            self._output(tuple(add))

    def _output(self, argv: Sequence[str]) -> str:
        done = run(LAYER, list(argv), check=False, timeout=60)
        if done.returncode != 0:
            raise LayerError(
                LAYER, f"'{shlex.join(argv)}' failed: {first_line(done.stderr or done.stdout)}"
            )
        return done.stdout
