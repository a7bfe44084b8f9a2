"""ufw as an owner: its rules in /etc/ufw/user.rules and user6.rules, lifted through ufw itself.

ufw rebuilds its chains from these files at `ufw reload` and at boot (`/lib/ufw/ufw-init start`),
so deleting only the kernel rule (`-A ufw-user-input -s ADDR -j DROP`) lasts until then. Each
rule is kept in the files as a `### tuple ###` comment (action, proto, dport, dst, sport, src,
[dapp sapp,] direction[_interface], [comment=HEX]) above its iptables lines; ufw numbers them
as `ufw status numbered` does: the IPv4 file's rules, then the IPv6 file's.

A deny, reject (or their `log` forms) from a source network that overlaps the target is a
finding (targeted when the source is inside the target). `plan` deletes it with `ufw delete
RULE` (ufw matches the rule itself, whatever its comment, and removes its kernel rule too:
`lifts_own`, owner "ufw", so the iptables layer leaves that rule to it). Undo puts it back at
the same number: `ufw insert N RULE` (with its comment), or `ufw RULE` when N is past the end of
its family's rules now.

`ufw limit` rules are not findings: they apply to every client, and lifting one would remove the
rate limit itself. The xt_recent layer clears the address's entry in list DEFAULT, which is what
locks a client out; the limit stays (`status` says so).

Nothing is found while ufw is disabled (ENABLED=no in ufw.conf): its rules are not loaded then.
A rules file that is a symlink or writable by group or others is refused as the other config
files are: its findings stay (declined by `plan`, so the run ends "still refused") and say how
to clear them by hand.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.address import Network, family_of, is_targeted, parse_network, show
from unban.errors import LayerError
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step
from unban.owners.files import read_text, unsafe_reason
from unban.system import first_line, run, which

LAYER = "ufw"
UFW_DIR = "/etc/ufw"
BLOCKING = ("deny", "reject")
ANY = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class UfwRule:
    """One `### tuple ###` line of user.rules / user6.rules."""

    path: str
    line: int
    number: int  # as `ufw status numbered` counts it
    family: str
    action: str  # deny | reject | allow | limit, with "_log" / "_log-all"
    proto: str
    dport: str
    dst: str
    sport: str
    src: str
    dapp: str
    sapp: str
    direction: str  # in | out, with "_IFACE"
    comment: str

    def spec(self, *, with_comment: bool = True) -> str:
        """The rule as `ufw show added` writes it (without the leading `ufw`)."""
        action, _, log = self.action.partition("_")
        words = [action, log] if log else [action]
        direction, _, interface = self.direction.partition("_")
        if interface:
            words += [direction, "on", interface]
        elif direction != "in":
            words.append(direction)
        words += ["from", _any(self.src)]
        if self.sapp:
            words += ["app", self.sapp]
        elif self.sport != "any":
            words += ["port", self.sport]
        words += ["to", _any(self.dst)]
        if self.dapp:
            words += ["app", self.dapp]
        elif self.dport != "any":
            words += ["port", self.dport]
        if self.proto != "any" and not (self.dapp or self.sapp):
            words += ["proto", self.proto]
        if with_comment and self.comment:
            words += ["comment", self.comment]
        return " ".join(shlex.quote(word) for word in words)


def _any(network: str) -> str:
    return "any" if network in ANY else network


def parse_rules(text: str, path: str, family: str, first_number: int = 1) -> list[UfwRule]:
    """The rules of one user*.rules file, numbered from `first_number`. Pure."""
    rules: list[UfwRule] = []
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("### tuple ### "):
            continue
        words = line[len("### tuple ### ") :].split()
        comment = ""
        if words and words[-1].startswith("comment="):
            try:
                comment = bytes.fromhex(words.pop()[len("comment=") :]).decode("utf-8")
            except ValueError:
                comment = ""
        if len(words) == 9:
            action, proto, dport, dst, sport, src, dapp, sapp, direction = words
        elif len(words) == 7:
            action, proto, dport, dst, sport, src, direction = words
            dapp = sapp = "-"
        else:
            continue
        rules.append(
            UfwRule(
                path=path,
                line=line_number,
                number=first_number + len(rules),
                family=family,
                action=action,
                proto=proto,
                dport=dport,
                dst=dst,
                sport=sport,
                src=src,
                dapp="" if dapp == "-" else dapp.replace("%20", " "),
                sapp="" if sapp == "-" else sapp.replace("%20", " "),
                direction=direction,
                comment=comment,
            )
        )
    return rules


def blocking_hits(rules: Sequence[UfwRule], target: Network) -> list[tuple[UfwRule, Network]]:
    """The incoming deny/reject rules whose source overlaps the target. Pure."""
    hits = []
    for rule in rules:
        if rule.action.partition("_")[0] not in BLOCKING or not rule.direction.startswith("in"):
            continue
        network = parse_network(rule.src)
        if network is None or network.version != target.version or not network.overlaps(target):
            continue
        hits.append((rule, network))
    return hits


def insert_argv(spec: str, position: int, family_first: int, family_count: int) -> list[str]:
    """`ufw insert N RULE`, or `ufw RULE` (append) when N is past the end of its family's rules:
    ufw refuses to insert a rule at a number of the other family. Pure."""
    words = shlex.split(spec)
    if family_first <= position < family_first + family_count:
        return ["ufw", "insert", str(position), *words]
    return ["ufw", *words]


def enabled(conf_text: Optional[str]) -> bool:
    """ufw.conf says ENABLED=yes."""
    for line in (conf_text or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ENABLED":
            return value.strip().strip("'\"").lower() == "yes"
    return False


class UfwOwner:
    """ufw's own rules, changed with the ufw command."""

    name = LAYER

    def __init__(self, ufw_dir: str = UFW_DIR) -> None:
        self.ufw_dir = ufw_dir
        self.user_rules = os.path.join(ufw_dir, "user.rules")
        self.user6_rules = os.path.join(ufw_dir, "user6.rules")
        self.conf = os.path.join(ufw_dir, "ufw.conf")
        self._seen: dict[Finding, UfwRule] = {}

    # -- reading

    def read(self) -> tuple[list[UfwRule], list[UfwRule]]:
        """The IPv4 and IPv6 rules, numbered as `ufw status numbered` numbers them."""
        v4 = parse_rules(read_text(self.user_rules) or "", self.user_rules, "ipv4")
        v6 = parse_rules(read_text(self.user6_rules) or "", self.user6_rules, "ipv6", len(v4) + 1)
        return v4, v6

    def is_enabled(self) -> bool:
        return enabled(read_text(self.conf))

    def status(self) -> list[LayerStatus]:
        if which("ufw") is None or not os.path.exists(self.user_rules):
            return [LayerStatus(LAYER, False, "ufw is not installed")]
        if not self.is_enabled():
            return [LayerStatus(LAYER, False, f"ufw is disabled ({self.conf}): its rules are off")]
        v4, v6 = self.read()
        limits = [r for r in (*v4, *v6) if r.action.startswith("limit")]
        detail = f"{self.user_rules}, {self.user6_rules}"
        if limits:
            detail += (
                f"; {len(limits)} `ufw limit` rule(s) stay (they limit every client): the "
                "xt_recent layer clears an address's hits in list DEFAULT"
            )
        return [LayerStatus(LAYER, True, detail)]

    def listings(self, query: ListQuery) -> list[Listing]:
        return []

    def find(self, target: Network) -> list[Finding]:
        if not self.is_enabled():
            return []
        v4, v6 = self.read()
        findings = []
        for rule, network in blocking_hits([*v4, *v6], target):
            problem = self.problem(rule.path)
            text = f"ufw {rule.spec()}"
            if problem:
                text += (
                    f"  [not changed: {problem}; `ufw reload` and boot load it again; clear "
                    f"it by hand: ufw delete {rule.spec(with_comment=False)}]"
                )
            finding = Finding(
                layer=LAYER,
                backend="ufw",
                family=family_of(network),
                table=rule.path,
                chain="ufw-user-input" if rule.family == "ipv4" else "ufw6-user-input",
                line=rule.number,
                handle=None,
                rule=text,
                verdict="reject" if rule.action.startswith("reject") else "deny",
                owner="ufw",
                network=show(network),
                targeted=is_targeted(network, target),
                source=f"{rule.path}:{rule.line}",
                lifts_own=True,
            )
            if not problem:
                self._seen[finding] = rule
            findings.append(finding)
        return findings

    def problem(self, path: str) -> str:
        """Why unban leaves ufw's rules alone, or "": ufw missing, or its rules file unsafe
        (symlinked, writable by group or others: refused as the other config files are)."""
        if which("ufw") is None:
            return "the ufw command is not installed"
        return unsafe_reason(path)

    # -- planning and changing

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        known = [(f, self._seen[f]) for f in findings if f in self._seen]
        if not known:
            return []
        steps = []
        payload: list[tuple[str, str, str]] = []
        undo: list[tuple[str, str, int, str]] = []
        # Deleted from the highest number down, put back from the lowest up: each rule then
        # goes back to the number it had.
        for finding, rule in sorted(known, key=lambda pair: -pair[1].number):
            spec = rule.spec(with_comment=False)
            full = rule.spec()
            delete = ["ufw", "--force", "delete", *shlex.split(spec)]
            steps.append(Step(finding, shlex.join(delete), f"ufw insert {rule.number} {full}"))
            payload.append(("delete", rule.family, spec))
            undo.insert(0, ("insert", rule.family, rule.number, full))
        return [Batch(LAYER, "ufw", tuple(steps), tuple(payload), tuple(undo))]

    def apply(self, batch: Batch) -> None:
        for item in batch.payload:
            _kind, family, spec = item
            present = {r.spec(with_comment=False) for r in self._family(family)}
            if spec not in present:
                continue  # gone already (a ufw reload or someone else deleted it)
            self._ufw(["--force", "delete", *shlex.split(spec)])

    def revert(self, batch: Batch) -> None:
        for item in batch.undo_payload:
            _kind, family, number, spec = item
            v4, v6 = self.read()
            if spec in {r.spec() for r in (v4 if family == "ipv4" else v6)}:
                continue
            first, count = (1, len(v4)) if family == "ipv4" else (len(v4) + 1, len(v6))
            self._ufw(insert_argv(str(spec), int(number), first, count)[1:])

    def _family(self, family: str) -> list[UfwRule]:
        v4, v6 = self.read()
        return v4 if family == "ipv4" else v6

    def _ufw(self, args: list[str]) -> None:
        done = run(LAYER, ["ufw", *args], check=False)
        if done.returncode != 0 or done.stdout.startswith(("ERROR", "Could not")):
            message = first_line(done.stderr or done.stdout)
            raise LayerError(LAYER, f"'ufw {' '.join(args)}' failed: {message}")
