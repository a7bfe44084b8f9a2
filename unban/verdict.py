"""The one verdict: what a new TCP SYN from the client meets on its way to sshd, read from the
rulesets the layers read, judged by the path evaluator (unban.path), and turned into findings
a plan can lift.

find, me, remove, heal and doctor all ask this module; none walks a ruleset itself.
- `system_packets`: the SYNs to judge: one per address and port sshd listens on (`sshd -T`;
  port 22 when sshd cannot be asked), arriving on the interface the route back to the client
  uses (`ip route get`).
- `judge`: each packet's `Reach` through every base chain that the layers offering `walks`
  (iptables both backends, native nft) read.
- `merge`: the layers' own findings marked on or off the path, plus a finding for each stop
  that none of them names: the rule that jumps or goes to a refusing chain for this address
  alone, an element of an nft set or map, an xt_recent entry behind a rate limit; and where
  nothing names the address alone (a policy, an allow-list, a broad rule), a broad "admit"
  finding: an accept for exactly this address at the top of the base chain that refuses it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Optional, Protocol, runtime_checkable

from unban.address import Network
from unban.errors import LayerError
from unban.layers import owner_of
from unban.model import Finding
from unban.path.evaluate import Reach, Stop, reach
from unban.path.model import ChainWalk, Hop, IPAddress, Lookups, Packet, SourceKey
from unban.system import run, which

# The layers whose findings the SYN meets (or not) on its way: the evaluator marks them.
PACKET_LAYERS = ("iptables", "nftables", "ipset", "xt_recent")
NFT_DISPLAY = {"ip": "ipv4", "ip6": "ipv6"}


@runtime_checkable
class PathSource(Protocol):
    """A layer that can say what the SYN meets in the rules it read."""

    def walks(
        self, packet: Packet, lookups: Lookups, *, see_through: bool = False
    ) -> Sequence[ChainWalk]: ...


# ---------------------------------------------------------------- the packets


@dataclass(frozen=True)
class Route:
    """How this host reaches the client: the interface, its own source address, local? And
    why not, when the route could not be read (no `ip`, no route, unreadable output)."""

    interface: Optional[str] = None
    source: Optional[str] = None
    local: bool = False
    error: str = ""


def route_to(address: str) -> Route:
    """`ip -j route get ADDRESS`; a Route without interface or source when it cannot tell."""
    if which("ip") is None:
        return Route(error="ip is not installed")
    result = run("route", ["ip", "-j", "route", "get", address], check=False, timeout=10)
    if result.returncode != 0:
        return Route(error=" ".join(result.stderr.split()))
    try:
        routes = json.loads(result.stdout)
    except ValueError:
        return Route(error="unreadable output")
    if not routes:
        return Route()
    first = routes[0]
    local = first.get("type") == "local"
    return Route("lo" if local else first.get("dev"), first.get("prefsrc"), local)


def packets_for(
    address: IPAddress,
    listen: Iterable[tuple[Optional[str], int]],
    route: Route,
) -> list[Packet]:
    """One SYN per (listen address, port) of the client's family. A wildcard listen address
    (None, 0.0.0.0, ::) means the client may use any of the host's addresses: the destination
    is the route's source address, and destination matches stay "maybe" when it is unknown."""
    packets: list[Packet] = []
    for host, port in listen:
        destination: Optional[IPAddress] = None
        if host not in (None, "", "0.0.0.0", "::"):
            parsed = ipaddress.ip_address(str(host))
            if parsed.version != address.version:
                continue
            destination = parsed
        elif route.source:
            source = ipaddress.ip_address(route.source)
            destination = source if source.version == address.version else None
        packet = Packet(address, port, destination, route.interface, route.local)
        if packet not in packets:
            packets.append(packet)
    return packets


def sshd_listen(address: str, sshd_config: Optional[str] = None) -> list[tuple[Optional[str], int]]:
    """Where sshd listens, as `sshd -T` says; port 22 on every address when it cannot say."""
    from unban import sshd

    try:
        config = sshd.read_config(address, config_file=sshd_config, sshd=sshd.sshd_binary())
    except LayerError:
        return [(None, 22)]
    listen: list[tuple[Optional[str], int]] = [(e.host, e.port) for e in config.listen]
    return listen or [(None, port) for port in (config.ports or (22,))]


def system_packets(address: IPAddress, sshd_config: Optional[str] = None) -> list[Packet]:
    shown = str(address)
    return packets_for(address, sshd_listen(shown, sshd_config), route_to(shown)) or [
        Packet(address, 22)
    ]


# ---------------------------------------------------------------- judging


def judge(
    packets: Sequence[Packet],
    sources: Sequence[object],
    lookups: Lookups,
    *,
    see_through: bool = False,
) -> list[Reach]:
    """Each packet's way through every base chain the path sources read (`see_through`: past
    every refusal, as if each were lifted: everything the SYN would meet)."""
    readers = [s for s in sources if isinstance(s, PathSource)]
    return [
        reach(
            packet,
            [
                walk
                for source in readers
                for walk in source.walks(packet, lookups, see_through=see_through)
            ],
        )
        for packet in packets
    ]


# ---------------------------------------------------------------- findings


def _layer_of(backend: str) -> str:
    return "nftables" if backend == "nftables" else "iptables"


def _family(hop: Hop) -> str:
    return NFT_DISPLAY.get(hop.family, hop.family)


def hop_identity(hop: Hop) -> tuple[object, ...]:
    """What names the same rule in a layer's Finding and in the evaluator's Hop."""
    if hop.backend == "nftables":
        return ("nftables", _family(hop), hop.table, hop.chain, hop.handle)
    return ("iptables", hop.backend, hop.family, hop.table, hop.chain, hop.line)


def rule_identity(hop: Hop) -> tuple[object, ...]:
    """The iptables rule a set or list finding came from (its layer does not say which
    backend): family, table, chain, number and text."""
    return (hop.family, hop.table, hop.chain, hop.line, hop.rule)


def _rule_of(finding: Finding) -> tuple[object, ...]:
    return (finding.family, finding.table, finding.chain, finding.line, finding.rule)


def finding_identity(finding: Finding) -> tuple[object, ...]:
    if finding.layer == "nftables":
        return ("nftables", finding.family, finding.table, finding.chain, finding.handle)
    return (
        finding.layer,
        finding.backend,
        finding.family,
        finding.table,
        finding.chain,
        finding.line,
    )


def _verdict_text(stop: Stop) -> str:
    outcome = stop.outcome
    via = [hop for hop in outcome.path if hop is not outcome.hop]
    text = outcome.detail or outcome.verdict
    if via and outcome.hop.chain != via[-1].chain:
        text += f" (in {outcome.hop.chain}, reached through {via[-1].chain})"
    return text


def stop_finding(
    stop: Stop, target: Network, port: int, lifted_by: Collection[tuple[object, ...]] = ()
) -> Optional[Finding]:
    """The finding that lifts this stop for `target`, or None when a layer's own finding does
    (an ipset member of a rule in `lifted_by`: the ipset layer tests and lifts it). Pure.

    The last rule on the way that picks the client out by source decides: its own source
    value naming this address alone (delete the rule: a DROP, or a jump or goto to a refusing
    chain), an nft set or map element, an xt_recent entry. When none does, the stop is broad
    and is lifted by admitting the address at the top of the base chain (with --broad).
    """
    outcome, walk = stop.outcome, stop.walk
    keyed = [(hop, key) for hop in outcome.path for key in hop.keys]
    if keyed:
        hop, key = keyed[-1]
        found = _keyed_finding(hop, key, stop, target)
        if found is not None or (key.kind == "ipset" and rule_identity(hop) in lifted_by):
            return found
    base = Hop(walk.backend, walk.family, walk.table, walk.chain, outcome.hop.rule)
    return Finding(
        layer=_layer_of(walk.backend),
        backend=walk.backend if walk.backend != "nftables" else "nft",
        family=_family(base),
        table=walk.table,
        chain=walk.chain,
        line=None,
        handle=None,
        rule=outcome.hop.rule,
        verdict=_verdict_text(stop),
        owner=hop_owner(outcome.hop),
        network=str(target),
        targeted=False,
        lift="admit",
        ports=(port,),
        on_path=True,
    )


def hop_owner(hop: Hop, set_name: Optional[str] = None) -> str:
    """Who made the rule or set: as the layer that reads it names its own findings (firewalld
    owns its nft table, fail2ban its chains and sets ...), so a live owner's lift is matched."""
    if hop.backend == "nftables":
        from unban.layers.nftables import owner as nft_owner

        return nft_owner(hop.family, hop.table, hop.chain, set_name)
    return owner_of(set_name or hop.chain)


def _keyed_finding(hop: Hop, key: SourceKey, stop: Stop, target: Network) -> Optional[Finding]:
    common = {
        "family": _family(hop),
        "table": hop.table,
        "chain": hop.chain,
        "rule": hop.rule,
        "verdict": _verdict_text(stop),
        "on_path": True,
    }
    if key.kind == "address" and key.targeted:
        return Finding(
            layer=_layer_of(hop.backend),
            backend=hop.backend if hop.backend != "nftables" else "nft",
            line=hop.line,
            handle=hop.handle,
            owner=hop_owner(hop),
            network=key.value,
            targeted=True,
            **common,  # type: ignore[arg-type]
        )
    if key.kind in ("set", "anonymous"):
        return Finding(
            layer="nftables",
            backend="nft",
            line=None,
            handle=hop.handle if key.kind == "anonymous" else None,
            owner=hop_owner(hop, key.name or None),
            network=_element_network(key, target),
            targeted=key.targeted,
            set_name=key.name or None,
            element=key.value,
            **common,  # type: ignore[arg-type]
        )
    if key.kind == "recent":
        return Finding(
            layer="xt_recent",
            backend="proc",
            line=hop.line,
            handle=None,
            owner=owner_of(key.name),
            network=str(target),
            targeted=True,
            set_name=key.name,
            element=key.value,
            **common,  # type: ignore[arg-type]
        )
    return None


def _element_network(key: SourceKey, target: Network) -> str:
    """The network an element covers, for the finding: its address part when it parses."""
    first = key.value.split(" . ", 1)[0].split(" : ", 1)[0].strip()
    try:
        return str(ipaddress.ip_network(first, strict=False))
    except ValueError:
        return str(target)


def merge(
    findings: Sequence[Finding],
    reaches: Sequence[Reach],
    target: Network,
    met: Optional[Sequence[Reach]] = None,
) -> list[Finding]:
    """The layers' findings, each marked on or off the path when it is a packet-filter one,
    then a finding for every stop that no layer finding lifts. Pure.

    `met`: the see-through walks (judge(..., see_through=True)): a finding is on the way when
    the SYN meets it there, once the refusals before it are lifted; default `reaches`.
    """
    on_path: set[tuple[object, ...]] = set()
    rules: set[tuple[object, ...]] = set()
    elements: set[tuple[str, str]] = set()
    for r in met if met is not None else reaches:
        for walk in r.walks:
            for outcome in walk.outcomes:
                for hop in outcome.path:
                    on_path.add(hop_identity(hop))
                    rules.add(rule_identity(hop))
                    elements.update((key.name, key.value) for key in hop.keys if key.name)
    # A layer's findings are judged only when the evaluator read that layer's rules.
    read = {_layer_of(w.backend) for r in reaches for w in r.walks}
    judged = {*read, *(PACKET_LAYERS[2:] if "iptables" in read else ())}
    marked = []
    for finding in findings:
        if finding.layer not in judged:
            pass
        elif finding.layer in PACKET_LAYERS[:2]:
            hit = finding_identity(finding) in on_path
            if finding.set_name:
                hit = hit or any(name == finding.set_name for name, _v in elements)
            finding = replace(finding, on_path=hit)
        else:
            finding = replace(finding, on_path=_rule_of(finding) in rules)
        marked.append(finding)
    known = {finding_identity(f) for f in marked} | {
        (f.set_name, f.element) for f in marked if f.set_name
    }
    lifted = {_rule_of(f) for f in marked if f.layer == "ipset"}
    extra: list[Finding] = []
    for r in reaches:
        for stop in r.stops():
            found = stop_finding(stop, target, r.packet.dport, lifted)
            if found is None:
                continue
            if (found.set_name, found.element) in known and found.set_name:
                continue
            if found.lift != "admit" and finding_identity(found) in known:
                continue
            if found.lift == "admit" and (
                _lifted_by_known(stop, known) or rule_identity(stop.outcome.hop) in lifted
            ):
                continue
            if any(_same(found, other) for other in extra):
                extra = [_with_ports(o, found) if _same(found, o) else o for o in extra]
                continue
            extra.append(found)
    return marked + extra


def _lifted_by_known(stop: Stop, known: set[tuple[object, ...]]) -> bool:
    """A broad stop whose deciding rule is already a layer's finding (a broad DROP rule the
    layer lifts with --broad) needs no admit of its own."""
    return hop_identity(stop.outcome.hop) in known


def _same(a: Finding, b: Finding) -> bool:
    return (a.layer, a.backend, a.family, a.table, a.chain, a.line, a.handle, a.lift,
            a.set_name, a.element) == (b.layer, b.backend, b.family, b.table, b.chain, b.line,
            b.handle, b.lift, b.set_name, b.element)  # fmt: skip


def _with_ports(kept: Finding, other: Finding) -> Finding:
    return replace(kept, ports=tuple(sorted(set(kept.ports) | set(other.ports))))
