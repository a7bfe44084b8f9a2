"""The native nft path evaluator against the real kernel: for each ruleset, built for real in the
server namespace, the evaluator's verdict (real `nft -j -t list table` documents, NftLookups
asking the kernel) equals what a real TCP connection from the client namespace meets, judged by
reading sshd's banner. Then the nftables layer's lifts: the client gets in, and the undo puts
the table back as `nft -s list table` prints it."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import pytest

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import CLIENT4, CLIENT6, SERVER4, SERVER6, Link, SshdFactory
from unban.address import parse_target
from unban.layers.nftables import NftablesLayer, path_finding
from unban.path.model import BLOCKS, CLEAR, ChainWalk, Outcome, Packet, SourceKey
from unban.path.nft import walk_tables
from unban.path.nft_lookups import NftLookups, ingress_devices

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory

# Reads the banner from the client: "banner", "refused", "timeout", "closed" or "error N".
CONNECT = """\
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[2]))
try:
    s.connect((sys.argv[1], 22))
    data = s.recv(64)
    print("banner" if data.startswith(b"SSH-") else "closed")
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(f"error {exc.errno}")
"""

V6_NDP = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"

# (name, ruleset, open?) with {addr}, {saddr} (ip saddr / ip6 saddr), {type}, {dev} filled in.
CORPUS = [
    ("jump to a dropping chain",
     "table inet j {{ chain bad {{ drop; }}\n chain input {{ type filter hook input priority 0;"
     " {saddr} {addr} jump bad; }} }}", False),
    ("goto a rejecting chain",
     "table inet g {{ chain deny {{ reject with tcp reset; }}\n chain input {{ type filter hook"
     " input priority 0; {saddr} {addr} goto deny; }} }}", False),
    ("firewalld-style goto filter_IN_drop",
     "table inet fwstyle {{ chain filter_IN_drop {{ drop; }}\n chain filter_INPUT {{ type filter"
     " hook input priority 10; ct state established,related accept; iifname lo accept;"
     " {saddr} {addr} goto filter_IN_drop; }} }}", False),
    ("anonymous verdict map",
     "table inet va {{ chain input {{ type filter hook input priority 0;"
     " {saddr} vmap {{ {addr} : drop, {other} : accept }}; }} }}", False),
    ("named verdict map",
     "table inet verdicts {{ map m {{ type {type} : verdict; elements = {{ {addr} : drop }}; }}\n"
     " chain input {{ type filter hook input priority 0; {saddr} vmap @m; }} }}", False),
    ("concatenated set with ADDR . 22",
     "table inet cc {{ set blk {{ type {type} . inet_service; elements = {{ {addr} . 22 }}; }}\n"
     " chain input {{ type filter hook input priority 0; {saddr} . tcp dport @blk drop; }} }}",
     False),
    ("concatenated set with ADDR . 2222 only",
     "table inet cc {{ set blk {{ type {type} . inet_service; elements = {{ {addr} . 2222 }}; }}\n"
     " chain input {{ type filter hook input priority 0; {saddr} . tcp dport @blk drop; }} }}",
     True),
    ("interval set behind a goto (ADDR and another network)",
     "table inet iv {{ set bad {{ type {type}; flags interval; elements = {{ {addr}, {net} }}; }}\n"
     " chain deny {{ drop; }}\n chain input {{ type filter hook input priority 0;"
     " {saddr} @bad goto deny; }} }}", False),
    ("interval set holding ADDR's network (auto-merged)",
     "table inet iv {{ set bad {{ type {type}; flags interval; auto-merge;"
     " elements = {{ {addr}, {ownnet} }}; }}\n chain deny {{ drop; }}\n chain input {{ type"
     " filter hook input priority 0; {saddr} @bad goto deny; }} }}", False),
    ("policy drop, only another network accepted to 22",
     "table inet al {{ chain input {{ type filter hook input priority 0; policy drop;"
     " ct state established,related accept; iif lo accept; {ndp}"
     " {saddr} {net} tcp dport 22 accept; }} }}", False),
    ("policy drop, ADDR accepted to 22",
     "table inet al {{ chain input {{ type filter hook input priority 0; policy drop;"
     " ct state established,related accept; iif lo accept; {ndp}"
     " {saddr} {net} tcp dport 22 accept; {saddr} {addr} tcp dport 22 accept; }} }}", True),
    ("netdev ingress drop on the client's interface",
     "table netdev nd {{ chain ing {{ type filter hook ingress device \"{dev}\" priority 0;"
     " {saddr} {addr} drop; }} }}", False),
    ("netdev ingress drop on another interface",
     "table netdev nd {{ chain ing {{ type filter hook ingress device \"lo\" priority 0;"
     " {saddr} {addr} drop; }} }}", True),
    ("inet ingress drop",
     "table inet ii {{ chain ing {{ type filter hook ingress device \"{dev}\" priority 0;"
     " {saddr} {addr} drop; }} }}", False),
    ("raw-priority prerouting drop",
     "table inet pr {{ chain pre {{ type filter hook prerouting priority -300;"
     " {saddr} {addr} drop; }} }}", False),
    ("a drop for others only",
     "table inet o {{ chain input {{ type filter hook input priority 0; {saddr} {other} drop;"
     " {saddr} != {addr} tcp dport 22 drop; tcp dport != 22 drop; ct state invalid drop;"
     " {saddr} {addr} tcp dport 2222 drop; }} }}", True),
    ("an accept in one base chain, a drop in a later one",
     "table inet a {{ chain early {{ type filter hook input priority -10; {saddr} {addr}"
     " accept; }}\n chain late {{ type filter hook input priority 10; {saddr} {addr} drop; }}"
     " }}", False),
    ("a return from a jumped chain, then the policy",
     "table inet r {{ chain sub {{ {saddr} {addr} return; drop; }}\n chain input {{ type filter"
     " hook input priority 0; policy accept; jump sub; }} }}", True),
    ("ct state new before conntrack (raw priority): the SYN is invalid there",
     "table inet early {{ chain pre {{ type filter hook prerouting priority -300;"
     " ct state new drop; }} }}", True),
    ("ct state invalid before conntrack",
     "table inet early {{ chain pre {{ type filter hook prerouting priority -300;"
     " ct state invalid drop; }} }}", False),
    ("ct state new after conntrack",
     "table inet late {{ chain pre {{ type filter hook prerouting priority 0;"
     " ct state new tcp dport 22 drop; }} }}", False),
    ("a nat chain that only accepts",
     "table ip n4 {{ chain pre {{ type nat hook prerouting priority dstnat; tcp dport 2222"
     " accept; }} }}", True),
]  # fmt: skip


def fill(ruleset: str, version: int, dev: str) -> str:
    """The ruleset for one family; a table's closing brace on its own line (nft wants one)."""
    v4 = version == 4
    text = ruleset.format(
        addr=CLIENT4 if v4 else CLIENT6,
        other="198.51.100.3" if v4 else "2001:db8:f::3",
        net="198.51.100.0/24" if v4 else "2001:db8:f::/64",
        ownnet="203.0.113.0/24" if v4 else "2001:db8::/64",
        saddr="ip saddr" if v4 else "ip6 saddr",
        type="ipv4_addr" if v4 else "ipv6_addr",
        ndp="" if v4 else V6_NDP + ";",
        dev=dev,
    )
    return text.replace("} }", "}\n}")


def server_dev(link: Link) -> str:
    out = link.server.run("ip", "-j", "link", "show").stdout
    (name,) = [i["ifname"] for i in json.loads(out) if i["ifname"].startswith("us")]
    return str(name)


def connect(link: Link, host: str, timeout: float = 1.5) -> str:
    return link.client.run("python3", "-c", CONNECT, host, str(timeout)).stdout.strip()


def native_docs(link: Link) -> list[dict[str, Any]]:
    """`nft -j -t list table` of every table."""
    tables = json.loads(link.server.run("nft", "-j", "list", "tables").stdout)["nftables"]
    docs = []
    for item in tables:
        if "table" in item:
            family, name = item["table"]["family"], item["table"]["name"]
            out = link.server.run("nft", "-j", "-t", "list", "table", family, name).stdout
            docs.append(json.loads(out))
    return docs


def evaluate(link: Link, version: int, dev: Optional[str]) -> list[ChainWalk]:
    """The walk over the documents the nftables layer's find read (as find will run it)."""
    source = ipaddress.ip_address(CLIENT4 if version == 4 else CLIENT6)
    server = ipaddress.ip_address(SERVER4 if version == 4 else SERVER6)
    everything = native_docs(link)
    with link.server.entered():
        layer = NftablesLayer()
        layer.find(parse_target(str(source)))
        docs = layer.path_documents()
        read = {
            (d["nftables"][1]["table"]["family"], d["nftables"][1]["table"]["name"]) for d in docs
        }
        assert read == {
            (d["nftables"][1]["table"]["family"], d["nftables"][1]["table"]["name"])
            for d in everything
            if any("chain" in i for i in d["nftables"])
            and d["nftables"][1]["table"]["family"]
            in ("inet", "netdev", "ip" if version == 4 else "ip6")
        }
        lookups = NftLookups(docs)
        devices = ingress_devices()
        packet = Packet(source, 22, destination=server, in_interface=dev)
        return walk_tables(docs, packet, lookups, devices)


def verdict(walks: Sequence[ChainWalk]) -> str:
    verdicts = [w.verdict for w in walks]
    if BLOCKS in verdicts:
        return "refused"
    return "open" if all(v == CLEAR for v in verdicts) else "may block"


@pytest.fixture
def server(link: Link, sshd_factory: SshdFactory) -> Iterator[str]:
    sshd_factory()
    yield server_dev(link)


@pytest.mark.parametrize("version", [4, 6])
def test_the_evaluator_agrees_with_the_kernel(link: Link, server: str, version: int) -> None:
    host = SERVER4 if version == 4 else SERVER6
    assert connect(link, host) == "banner"
    disagree = []
    for name, ruleset, is_open in CORPUS:
        if version == 6 and name.startswith("a nat chain"):
            continue
        link.server.run("nft", "flush", "ruleset")
        link.server.run("nft", "-f", "-", input=fill(ruleset, version, server) + "\n")
        seen = connect(link, host)
        said = verdict(evaluate(link, version, server))
        kernel = "open" if seen == "banner" else "refused"
        if said != kernel or kernel != ("open" if is_open else "refused"):
            disagree.append((name, said, seen))
    assert disagree == []


def test_without_the_interface_an_ingress_drop_may_block(link: Link, server: str) -> None:
    link.server.run("nft", "-f", "-", input=fill(CORPUS[11][1], 4, server) + "\n")
    assert connect(link, SERVER4) == "timeout"
    (walk,) = evaluate(link, 4, None)
    assert (walk.family, walk.hook, walk.device, walk.verdict) == ("netdev", "ingress", server,
                                                                   "may block")  # fmt: skip
    assert [o.verdict for o in walk.outcomes] == ["drop", "accept"]
    assert walk.outcomes[0].assumptions[0].matched is True
    # the layer's walks, without a find first: it reads the tables itself
    syn = Packet(ipaddress.ip_address(CLIENT4), 22, ipaddress.ip_address(SERVER4), server)
    with link.server.entered():
        (walk,) = NftablesLayer().walks(syn, NftLookups())
    assert (walk.table, walk.device, walk.verdict) == ("nd", server, BLOCKS)


# ---------------------------------------------------------------- lifts


def table_text(link: Link, family: str, table: str) -> str:
    return link.server.run("nft", "-s", "list", "table", family, table).stdout


def blocking(walks: Sequence[ChainWalk]) -> Outcome:
    (walk,) = [w for w in walks if w.verdict == BLOCKS]
    (outcome,) = walk.outcomes
    return outcome


def keyed(outcome: Outcome) -> tuple[Any, SourceKey]:
    """The hop on the way that picked the client out by its source, and that key."""
    ((hop, key),) = [(h, k) for h in outcome.path for k in h.keys]
    return hop, key


def lift_and_revert(link: Link, findings: Sequence[Any], family: str, table: str) -> None:
    before = table_text(link, family, table)
    assert connect(link, SERVER4) in ("timeout", "refused")
    with link.server.entered():
        layer = NftablesLayer()
        (batch,) = layer.plan(findings)
        assert [s.finding for s in batch.steps] == list(findings)
        layer.apply(batch)
    assert connect(link, SERVER4) == "banner"
    assert verdict(evaluate(link, 4, server_dev(link))) == "open"
    with link.server.entered():
        layer.revert(batch)
    assert table_text(link, family, table) == before
    assert connect(link, SERVER4) in ("timeout", "refused")


def test_lift_a_named_map_element_with_its_timeout_and_comment(link: Link, server: str) -> None:
    link.server.run("nft", "-f", "-", input=(
        "table ip verdicts { map m { type ipv4_addr : verdict; flags timeout;\n"
        f' elements = {{ {CLIENT4} timeout 1h comment "by hand" : drop, 198.51.100.3 : accept }}; }}\n'
        " chain input { type filter hook input priority 0; ip saddr vmap @m; }\n}\n"
    ))  # fmt: skip
    outcome = blocking(evaluate(link, 4, server))
    hop, key = keyed(outcome)
    assert (key.kind, key.name, key.value, key.targeted) == ("set", "m", CLIENT4, True)
    finding = path_finding(hop, key, "drop", f"{CLIENT4}/32")
    lift_and_revert(link, [finding], "ip", "verdicts")


def test_lift_a_concatenated_set_element(link: Link, server: str) -> None:
    link.server.run("nft", "-f", "-", input=fill(CORPUS[5][1], 4, server) + "\n")
    hop, key = keyed(blocking(evaluate(link, 4, server)))
    assert (key.kind, key.value, key.targeted) == ("set", f"{CLIENT4} . 22", True)
    lift_and_revert(link, [path_finding(hop, key, "drop", f"{CLIENT4}/32")], "inet", "cc")


def test_lift_the_rule_that_goes_to_a_dropping_chain(link: Link, server: str) -> None:
    link.server.run("nft", "-f", "-", input=fill(CORPUS[2][1], 4, server) + "\n")
    outcome = blocking(evaluate(link, 4, server))
    hop, key = keyed(outcome)
    assert hop.rule == f"ip saddr {CLIENT4} goto filter_IN_drop"
    assert outcome.hop.chain == "filter_IN_drop" and outcome.hop.rule == "drop"
    assert (key.kind, key.targeted) == ("address", True)
    finding = path_finding(hop, key, "drop", f"{CLIENT4}/32")
    lift_and_revert(link, [finding], "inet", "fwstyle")


@pytest.mark.parametrize(
    "rule",
    [
        "ip saddr {{ 192.0.2.1, {addr}, 192.0.2.0/28 }} drop",
        "ip saddr vmap {{ 198.51.100.3 : accept, {addr} : drop }}",
        "ip saddr . tcp dport {{ 192.0.2.1 . 22, {addr} . 22 }} drop",
    ],
)
def test_lift_an_anonymous_element_by_replacing_the_rule(
    link: Link, server: str, rule: str
) -> None:
    text = rule.format(addr=CLIENT4)
    chain = f"tcp dport 80 drop\n {text}\n ip saddr 198.51.100.9 drop"
    link.server.run("nft", "-f", "-", input=(
        "table ip an { chain input { type filter hook input priority 0;\n " + chain + "\n }\n}\n"
    ))  # fmt: skip
    hop, key = keyed(blocking(evaluate(link, 4, server)))
    assert key.kind == "anonymous" and key.value.startswith(CLIENT4) and key.targeted
    lift_and_revert(link, [path_finding(hop, key, "drop", f"{CLIENT4}/32")], "ip", "an")


def test_admit_at_the_top_of_an_allow_list_chain(link: Link, server: str) -> None:
    link.server.run("nft", "-f", "-", input=fill(CORPUS[9][1], 4, server) + "\n")
    outcome = blocking(evaluate(link, 4, server))
    assert outcome.hop.is_policy and outcome.detail == "policy drop"
    finding = path_finding(outcome.hop, None, "drop", f"{CLIENT4}/32", lift="admit", ports=(22,))
    with link.server.entered():
        (batch,) = NftablesLayer().plan([finding])
    (step,) = batch.steps
    assert step.command == (
        f"nft insert rule inet al input 'ip saddr {CLIENT4} tcp dport 22 accept comment "
        '"unban-admit"\''
    )
    assert "delete rule inet al input handle H" in step.undo_command
    lift_and_revert(link, [finding], "inet", "al")


def test_firewalld_is_left_alone(link: Link, server: str) -> None:
    link.server.run("nft", "-f", "-", input=fill(CORPUS[2][1], 4, server).replace(
        "fwstyle", "firewalld") + "\n")  # fmt: skip
    hop, key = keyed(blocking(evaluate(link, 4, server)))
    with link.server.entered():
        assert NftablesLayer().plan([path_finding(hop, key, "drop", f"{CLIENT4}/32")]) == []
