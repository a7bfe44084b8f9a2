"""netfilter-persistent's boot-time files: /etc/iptables/rules.v4, rules.v6 and ipsets.

`netfilter-persistent start` (iptables-persistent's and ipset-persistent's plugins) loads them
at boot: `ipset restore -exist < ipsets`, then `iptables-restore < rules.v4` and
`ip6tables-restore < rules.v6`. A DROP or REJECT saved there, or an `add SET ADDR` line of a
set that a saved rule drops by source, is back after the next boot however often the kernel
entry is deleted. These owners take those lines out (the kernel layers delete the live entry in
the same run); nothing else in the files changes. `netfilter-persistent save` is never run: it
would write every live chain (fail2ban's too) into the files.

Checks: `iptables-restore --test` / `ip6tables-restore --test` for the rules files; for ipsets,
`ipset restore -exist` in a throwaway network namespace (`unshare --net`), since ipset has no
test mode and its sets are per namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from unban.address import Network, family_of, is_targeted, parse_network, show
from unban.layers.xtables_rules import SourceMatcher, set_rules, verdict_of
from unban.owners.files import FileOwner, Hit, read_text
from unban.path.iptables import option_value, parse_save, split_spec
from unban.reverter import DEFAULT_STATE_DIR
from unban.system import first_line, run

RULES_V4 = "/etc/iptables/rules.v4"
RULES_V6 = "/etc/iptables/rules.v6"
IPSETS = "/etc/iptables/ipsets"
OWNER = "netfilter-persistent"
OFF_PATH = ("FORWARD", "OUTPUT", "POSTROUTING")  # built-in chains a SYN to sshd never passes


def rule_hits(text: str, family: str, target: Network) -> list[Hit]:
    """The `-A CHAIN ... -s NET ... -j DROP|REJECT` lines of a rules file whose source overlaps
    the target. Pure."""
    if (target.version == 4) != (family == "ipv4"):
        return []
    matcher = SourceMatcher(target)
    hits = []
    table = ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("*"):
            table = line[1:].strip()
        if not line.startswith(("-A ", "-I ")):
            continue
        tokens = split_spec(line)
        source = option_value(tokens, "-s", "--source")
        verdict = verdict_of(tokens)
        if source is None or verdict is None or len(tokens) < 2:
            continue
        matched = matcher.match(source)
        if matched is None:
            continue
        network, targeted = matched
        hits.append(
            Hit(
                line=number,
                rule=line.strip(),
                network=show(network),
                targeted=targeted and is_targeted(network, target),
                family=family,
                table=table,
                chain=tokens[1],
                verdict=verdict,
                on_path=False if tokens[1] in OFF_PATH else None,
            )
        )
    return hits


def dropping_sets(rules_texts: Sequence[tuple[str, str]]) -> set[str]:
    """The sets a rule of these rules files (text, family) drops by source. Pure."""
    names = set()
    for text, family in rules_texts:
        for ref in set_rules(parse_save(text, "file", family)):
            names.add(ref.name)
    return names


def ipset_hits(text: str, sets: set[str], target: Network) -> list[Hit]:
    """The `add SET ENTRY ...` lines of an ipsets file, for sets in `sets`, whose entry (an
    address or network) overlaps the target. Pure."""
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if len(words) < 3 or words[0] not in ("add", "-A") or words[1] not in sets:
            continue
        network = parse_network(words[2])
        if network is None or network.version != target.version:
            continue
        if not network.overlaps(target):
            continue
        hits.append(
            Hit(
                line=number,
                rule=line.strip(),
                network=show(network),
                targeted=is_targeted(network, target),
                family=family_of(network),
                table="ipset",
                set_name=words[1],
                element=words[2],
                verdict="drop",
            )
        )
    return hits


class RulesPersistentOwner(FileOwner):
    """iptables-persistent's rules.v4 and rules.v6."""

    name = OWNER
    owner = OWNER
    when = "at the next boot (`netfilter-persistent start`)"

    def __init__(
        self,
        rules_v4: str = RULES_V4,
        rules_v6: str = RULES_V6,
        *,
        state_dir: str = DEFAULT_STATE_DIR,
    ) -> None:
        super().__init__(state_dir)
        self.paths = {rules_v4: "ipv4", rules_v6: "ipv6"}

    def files(self) -> list[str]:
        return list(self.paths)

    def hits(self, path: str, text: str, target: Network) -> list[Hit]:
        return rule_hits(text, self.paths[path], target)

    def check(self, path: str, text: str) -> str:
        tool = "iptables-restore" if self.paths[path] == "ipv4" else "ip6tables-restore"
        done = run(self.name, [tool, "--test"], stdin=text, check=False)
        return "" if done.returncode == 0 else f"{tool} --test: {first_line(done.stderr)}"


class IpsetPersistentOwner(FileOwner):
    """ipset-persistent's ipsets file: elements of sets that a saved rule drops."""

    name = "ipset-persistent"
    owner = "ipset-persistent"
    when = "at the next boot (`netfilter-persistent start`)"

    def __init__(
        self,
        ipsets: str = IPSETS,
        rules_v4: str = RULES_V4,
        rules_v6: str = RULES_V6,
        *,
        state_dir: str = DEFAULT_STATE_DIR,
    ) -> None:
        super().__init__(state_dir)
        self.ipsets = ipsets
        self.rules = {rules_v4: "ipv4", rules_v6: "ipv6"}

    def files(self) -> list[str]:
        return [self.ipsets]

    def hits(self, path: str, text: str, target: Network) -> list[Hit]:
        rules: list[tuple[str, str]] = []
        for rules_path, family in self.rules.items():
            content: Optional[str] = read_text(rules_path)
            if content is not None:
                rules.append((content, family))
        return ipset_hits(text, dropping_sets(rules), target)

    def check(self, path: str, text: str) -> str:
        done = run(
            self.name, ["unshare", "--net", "ipset", "restore", "-exist"], stdin=text, check=False
        )
        return "" if done.returncode == 0 else f"ipset restore: {first_line(done.stderr)}"
