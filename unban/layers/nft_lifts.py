"""How the nftables layer lifts each kind of finding: one `nft -f -` transaction per table. Pure.

- An element of a named set or map (`set_name`, `element`; concatenations and interval
  elements too): `delete element F T S { KEY }`; the undo re-adds it with its timeout,
  comment and, for a map, its value (`{ KEY timeout 1h comment "x" : drop }`).
- A rule (`handle`, no `element`): `delete rule F T C handle H`, e.g. `ip saddr ADDR goto
  deny`; the undo re-inserts it before the next rule that stays. apply checks its text first.
- An element of an anonymous set or verdict map inside a rule (`element`, `handle`, no
  `set_name`): `insert rule F T C position H TEXT-WITHOUT-IT` and `delete rule ... handle H`
  in one transaction (the rule alone is deleted when that was its only element; not `replace
  rule`, which nft 1.0.6 aborts on for anonymous interval sets). The new rule has a new handle,
  so the undo finds it again by its text at revert time and swaps the old text back in. Where the element cannot be cut out of the
  rule text exactly once, the finding is declined (plan.skipped).
- `lift == "admit"`: `insert rule F T C ip saddr ADDR tcp dport PORTS accept comment
  "unban-admit"` at the top of base chain C; the undo deletes exactly that rule, found by its
  text (comment included) at revert time. In an inet or netdev table `ip saddr` carries nft's
  own `meta nfproto ipv4` (or protocol) dependency, so the rule is the same there.

An undo line that must find its rule by text is `@` + JSON (`chain`, `rule`, `then` with
`{handle}`); NftablesLayer.revert resolves it against a fresh listing of the chain.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Optional

from unban.model import Batch, Finding, Step
from unban.path.nft_syntax import quote_name

LAYER = "nftables"
FIREWALLD = ("inet", "firewalld")
ADMIT_COMMENT = "unban-admit"
NFT_FAMILY = {"ipv4": "ip", "ipv6": "ip6"}
BY_TEXT = "@"

Key = tuple[str, str, str]  # nft family, table, chain or set


def nft_family(family: str) -> str:
    return NFT_FAMILY.get(family, family)


def is_changeable(finding: Finding) -> bool:
    """firewalld's table is left to firewall-cmd."""
    return (nft_family(finding.family), finding.table) != FIREWALLD


def admit_rule(network: str, ports: Sequence[int]) -> str:
    """The accept `lift == "admit"` inserts, as nft prints it (one port without braces)."""
    net = ipaddress.ip_network(network, strict=False)
    address = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    protocol = "ip" if net.version == 4 else "ip6"
    words = [protocol, "saddr", address]
    if ports:
        shown = sorted(set(ports))
        listed = str(shown[0]) if len(shown) == 1 else "{ " + ", ".join(map(str, shown)) + " }"
        words += ["tcp", "dport", listed]
    return " ".join([*words, "accept", f'comment "{ADMIT_COMMENT}"'])


def without_element(rule: str, element: str) -> Optional[str]:
    """The rule text with `element` taken out of its one anonymous set or verdict map (a set
    left with one element is printed without braces, as nft does); "" when it was the only
    element (the rule goes); None when it is not there exactly once."""
    groups = _brace_groups(rule)
    hits = []
    for start, end in groups:
        entries = _entries(rule[start + 1 : end])
        for i, entry in enumerate(entries):
            if entry == element or entry.startswith(element + " : "):
                hits.append((start, end, entries, i))
    if len(hits) != 1:
        return None
    start, end, entries, index = hits[0]
    rest = entries[:index] + entries[index + 1 :]
    if not rest:
        return ""
    # nft prints a one-element set as the value, but keeps braces for maps and concatenations
    bare = len(rest) == 1 and " : " not in entries[index] and " . " not in rest[0]
    inner = rest[0] if bare else "{ " + ", ".join(rest) + " }"
    return rule[:start] + inner + rule[end + 1 :]


def _brace_groups(text: str) -> list[tuple[int, int]]:
    """(open, close) positions of the top-level `{ ... }` groups outside quotes."""
    groups = []
    depth, quoted, start = 0, False, -1
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "{":
            depth += 1
            if depth == 1:
                start = i
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                groups.append((start, i))
    return groups


def _entries(inner: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in inner:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def by_text(chain: str, rule: str, then: str) -> str:
    """An undo line resolved at revert time: `then` with {handle} of the rule whose text is
    `rule` in `chain`."""
    return BY_TEXT + json.dumps({"chain": chain, "rule": rule, "then": then})


def build_batches(
    findings: Sequence[Finding],
    orders: Optional[Mapping[Key, Sequence[int]]] = None,
    extras: Optional[Mapping[tuple[str, str, str, str], str]] = None,
    texts: Optional[Mapping[Key, Sequence[str]]] = None,
) -> list[Batch]:
    """One `nft -f -` transaction per table.

    `orders` (rule handles of each chain, in order) puts re-added rules back where they were;
    `extras` keeps a deleted element's timeout, expiry, comment and map value (`: drop`) for
    the undo; `texts` (each chain's rule texts) declines swapping a rule for a text its chain
    already has, which the undo could not tell apart. A finding none of the lifts above fits
    is left out (declined).
    """
    orders = orders or {}
    texts = texts or {}
    extras = extras or {}
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        if finding.layer == LAYER and is_changeable(finding):
            groups.setdefault((nft_family(finding.family), finding.table), []).append(finding)
    batches = []
    for (family, table), group in groups.items():
        steps: list[Step] = []
        payload: list[str] = []
        undo: list[str] = []
        seen: set[tuple[str, ...]] = set()
        deleted = {(f.chain or "", f.handle) for f in group if _deletes_rule(f)}
        anchors = _anchors(family, table, orders, deleted)
        for finding in group:
            lift = _lift(finding, family, table, anchors, extras, texts)
            if lift is None or lift[0] in seen:
                continue
            key, do, back, undo_line, undo_command = lift
            seen.add(key)
            payload.extend(" ".join(argv) for argv in do)
            undo.append(undo_line if undo_line else " ".join(back))
            command = "; ".join(shlex.join(["nft", *argv]) for argv in do)
            steps.append(Step(finding, command, undo_command or shlex.join(["nft", *back])))
        if steps:
            batches.append(
                Batch(LAYER, f"{family} {table}", tuple(steps), tuple(payload), tuple(undo))
            )
    return batches


def _kind(finding: Finding) -> str:
    if finding.lift == "admit":
        return "admit"
    if finding.set_name is not None and finding.element is not None:
        return "element"
    if finding.handle is not None and finding.element is not None:
        return "anonymous"
    return "rule" if finding.handle is not None else ""


def _deletes_rule(finding: Finding) -> bool:
    kind = _kind(finding)
    if kind == "anonymous" and finding.element is not None:
        return without_element(finding.rule, finding.element) == ""
    return kind == "rule"


# (dedup key, command argvs, undo argv, undo payload line when not " ".join(undo argv),
#  undo command for a person when not the undo argv)
_Lift = tuple[tuple[str, ...], list[list[str]], list[str], str, str]


def _lift(
    finding: Finding,
    family: str,
    table: str,
    anchors: Mapping[tuple[str, int], int],
    extras: Mapping[tuple[str, str, str, str], str],
    texts: Mapping[Key, Sequence[str]],
) -> Optional[_Lift]:
    kind = _kind(finding)
    chain = finding.chain or ""
    where = [family, quote_name(table), quote_name(chain)]
    if kind == "element":
        assert finding.set_name is not None and finding.element is not None
        extra = extras.get((family, table, finding.set_name, finding.element), "")
        at = [family, quote_name(table), quote_name(finding.set_name)]
        do = ["delete", "element", *at, f"{{ {finding.element} }}"]
        readd = " ".join(filter(None, [finding.element, extra]))
        back = ["add", "element", *at, f"{{ {readd} }}"]
        return ("element", finding.set_name, finding.element), [do], back, "", ""
    if kind == "admit":
        if not chain or not finding.network:
            return None
        text = admit_rule(finding.network, finding.ports)
        do = ["insert", "rule", *where, text]
        then = " ".join(["delete", "rule", *where, "handle", "{handle}"])
        person = (
            f"{shlex.join(['nft', 'delete', 'rule', *where, 'handle'])} H  # H: the handle "
            f"of {shlex.quote(text)} in `nft -a list chain {' '.join(where)}`"
        )
        return ("admit", chain, text), [do], [], by_text(chain, text, then), person
    if finding.handle is None:
        return None
    handle = finding.handle
    rule_key = ("rule", chain, str(handle))
    if kind == "anonymous":
        assert finding.element is not None
        rest = without_element(finding.rule, finding.element)
        if rest is None or rest in texts.get((family, table, chain), ()):
            return None
        if rest:
            # Not `replace rule`: nft 1.0.6 aborts (interval_set_eval assertion) replacing a
            # rule with an anonymous interval set. Insert before, then delete: one transaction.
            swap = [
                ["insert", "rule", *where, "position", str(handle), rest],
                ["delete", "rule", *where, "handle", str(handle)],
            ]
            then = "\n".join(
                [
                    " ".join(["insert", "rule", *where, "position", "{handle}", finding.rule]),
                    " ".join(["delete", "rule", *where, "handle", "{handle}"]),
                ]
            )
            person = (
                f"{shlex.join(['nft', 'insert', 'rule', *where, 'position'])} H "
                f"{shlex.quote(finding.rule)}; "
                f"{shlex.join(['nft', 'delete', 'rule', *where, 'handle'])} H  # H: the handle "
                f"of {shlex.quote(rest)} in `nft -a list chain {' '.join(where)}`"
            )
            return rule_key, swap, [], by_text(chain, rest, then), person
    delete = ["delete", "rule", *where, "handle", str(handle)]
    anchor = anchors.get((chain, handle))
    back = (
        ["insert", "rule", *where, "position", str(anchor), finding.rule]
        if anchor is not None
        else ["add", "rule", *where, finding.rule]
    )
    return rule_key, [delete], back, "", ""


def _anchors(
    family: str,
    table: str,
    orders: Mapping[Key, Sequence[int]],
    deleted: set[tuple[str, Optional[int]]],
) -> dict[tuple[str, int], int]:
    """For each deleted rule, the next rule of its chain that stays: re-inserting each deleted
    rule before that one, in the order of the deletions, rebuilds the chain's order. A deleted
    rule with none after it (or of a chain `find` did not read) is re-added at the chain's end.
    """
    anchors: dict[tuple[str, int], int] = {}
    for chain in {c for c, _h in deleted}:
        following: Optional[int] = None
        for handle in reversed(orders.get((family, table, chain), ())):
            if (chain, handle) in deleted:
                if following is not None:
                    anchors[(chain, handle)] = following
            else:
                following = handle
    return anchors


def resolve(line: str, rules: Sequence[tuple[int, str]]) -> Optional[str]:
    """An undo line for `nft -f`: `by_text` lines get the handle of the first rule of the
    chain (as `nft -a -s list chain` lists it) with that text; None when there is none."""
    if not line.startswith(BY_TEXT):
        return line
    spec = json.loads(line[len(BY_TEXT) :])
    handle = next((h for h, text in rules if text == spec["rule"]), None)
    return None if handle is None else str(spec["then"]).replace("{handle}", str(handle))


def chain_of(line: str) -> Optional[str]:
    """The chain a `by_text` undo line must list, None for a plain line."""
    if not line.startswith(BY_TEXT):
        return None
    return str(json.loads(line[len(BY_TEXT) :])["chain"])
