"""The evaluator and the kernel agree: for a corpus of iptables rulesets (both backends, both
families, combined), the verdict `unban find` gives for the client's SYN is what a real
connection from the client namespace meets (sshd's banner read, or not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import CLIENT4, CLIENT6, SERVER4, SERVER6, Link, Sshd
from tests.integration.test_path import Host

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory

ESTABLISHED = "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"

CORPUS = [
    # (tools and rules, the client's family, the verdict the evaluator must give)
    ([("iptables-nft", "-A INPUT -s {ip} -j DROP")], 4, "blocks"),
    ([("iptables-legacy", "-A INPUT -s 203.0.113.0/24 -p tcp --dport 22 -j REJECT")], 4, "blocks"),
    ([("iptables-nft", "-A INPUT -s 198.51.100.0/24 -j DROP")], 4, "clear"),
    ([("iptables-nft", "-A INPUT ! -s 10.0.0.0/8 -p tcp --dport 22 -j DROP")], 4, "blocks"),
    ([("iptables-nft", "-A INPUT -p tcp --dport 2222 -j DROP")], 4, "clear"),
    ([("iptables-nft", "-A INPUT -p tcp -m multiport --dports 80,20:25 -j DROP")], 4, "blocks"),
    ([("iptables-nft", "-A INPUT -m conntrack --ctstate INVALID -j DROP")], 4, "clear"),
    ([("iptables-nft", "-A INPUT -m conntrack --ctstate NEW -p tcp --dport 22 -j DROP")], 4,
     "blocks"),
    ([("iptables-nft", "-A INPUT -i lo -j ACCEPT"), ("iptables-nft", ESTABLISHED),
      ("iptables-nft", "-P INPUT DROP")], 4, "blocks"),
    ([("iptables-nft", ESTABLISHED), ("iptables-nft", "-A INPUT -s {ip} -p tcp --dport 22 -j ACCEPT"),
      ("iptables-nft", "-P INPUT DROP")], 4, "clear"),
    ([("iptables-nft", "-N bans"), ("iptables-nft", "-A bans -j RETURN"),
      ("iptables-nft", "-A bans -j DROP"), ("iptables-nft", "-A INPUT -j bans")], 4, "clear"),
    ([("iptables-nft", "-N bans"), ("iptables-nft", "-A bans -s {ip} -j RETURN"),
      ("iptables-nft", "-A bans -j DROP"), ("iptables-nft", "-A INPUT -p tcp -j bans")], 4,
     "clear"),
    ([("iptables-legacy", "-N hole"), ("iptables-legacy", "-A hole -j DROP"),
      ("iptables-legacy", "-A INPUT -p tcp -g hole")], 4, "blocks"),
    # an ACCEPT in one backend does not save the packet from a DROP in the other
    ([("iptables-nft", "-A INPUT -s {ip} -j ACCEPT"), ("iptables-legacy", "-A INPUT -s {ip} -j DROP")],
     4, "blocks"),
    ([("iptables-nft", "-t mangle -A PREROUTING -s {ip} -j DROP")], 4, "blocks"),
    ([("iptables-nft", "-t raw -A PREROUTING -s {ip} -j ACCEPT"), ("iptables-nft", "-A INPUT -s {ip} -j DROP")],
     4, "blocks"),
    ([("iptables-nft", "-A INPUT -d 203.0.113.1/32 -p tcp --dport 22 -j DROP")], 4, "blocks"),
    ([("iptables-nft", "-A INPUT -d 203.0.113.2/32 -j DROP")], 4, "clear"),
    ([("ip6tables-nft", "-A INPUT -s {ip} -j DROP")], 6, "blocks"),
    ([("ip6tables-legacy", "-A INPUT -s 2001:db8::/32 -p tcp --dport 22 -j REJECT")], 6, "blocks"),
    ([("ip6tables-nft", "-A INPUT -s 2001:db9::/32 -j DROP")], 6, "clear"),
    ([("iptables-nft", "-A INPUT -s 203.0.113.0/24 -j DROP")], 6, "clear"),
]  # fmt: skip


@pytest.fixture
def host(link: Link, sshd_factory: Callable[..., Sshd], tmp_path: Path) -> Iterator[Host]:
    sshd = sshd_factory(isolate=True)
    sshd.mount_ns.run("tee", "/etc/hosts.allow", "/etc/hosts.deny", input="")
    yield Host(link, sshd, tmp_path)


@pytest.mark.parametrize(("rules", "version", "verdict"), CORPUS)
def test_the_evaluator_and_the_kernel_agree(
    host: Host, rules: list[tuple[str, str]], version: int, verdict: str
) -> None:
    ip, server = (CLIENT4, SERVER4) if version == 4 else (CLIENT6, SERVER6)
    for tool, rule in rules:
        host.run(tool, *rule.format(ip=ip).split())
    code, found = host.find(ip)
    verdicts = {way["verdict"] for way in found["reach"]}
    if verdict == "clear":  # no table of the client's family at all is open too
        assert verdicts <= {"clear", "not present"}, found["reach"]
    else:
        assert verdicts == {verdict}, found["reach"]
    assert code == (0 if verdict == "clear" else 3)
    assert bool(host.link.probe(server, "--timeout", "2")["ok"]) == (verdict == "clear")
