"""The one verdict, end to end: rulesets that refuse the client by their structure (a jump or a
goto to a refusing chain, a rate limit's chain, an allow-list policy), built for real in the
server namespace with a real sshd; a client namespace reading sshd's banner is the judge.
For each: `find` reports the stop and exits 3, `me` lifts it (or, for a policy, exits 3 naming
it until `--broad` admits the address), the banner comes back, and `undo` puts it back.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import CLIENT4, CLIENT6, SERVER4, SERVER6, Link, Sshd
from unban._sandbox import Seen, json_document

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory


class Host:
    """sshd (isolated /etc) and the unban CLI beside it, with no fail2ban."""

    def __init__(self, link: Link, sshd: Sshd, root: Path) -> None:
        self.link, self.sshd = link, sshd
        self.confdir = root / "no-fail2ban"
        self.confdir.mkdir()
        self.state = root / "state"

    def run(self, *argv: str, check: bool = True) -> Any:
        return self.sshd.mount_ns.run(*argv, check=check)

    def unban(self, *args: str) -> Any:
        return self.run(
            sys.executable, "-m", "unban", "--fail2ban-conf", str(self.confdir),
            "--state-dir", str(self.state), *args, check=False,
        )  # fmt: skip

    def me(self, *args: str) -> Any:
        return self.unban("me", *args, "--sshd-config", str(self.sshd.config_path))

    def reachable(self, host: str) -> bool:
        return bool(self.link.probe(host, "--timeout", "3")["ok"])

    def opens(self, host: str) -> Seen:
        return self.link.opens(host)

    def find(self, ip: str) -> tuple[int, dict[str, Any]]:
        proc = self.unban("find", ip, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return proc.returncode, json_document(proc)


@pytest.fixture
def host(link: Link, sshd_factory: Callable[..., Sshd], tmp_path: Path) -> Iterator[Host]:
    sshd = sshd_factory(isolate=True)
    box = Host(link, sshd, tmp_path)
    sshd.mount_ns.run("tee", "/etc/hosts.allow", "/etc/hosts.deny", input="")
    yield box


def _rules(host: Host, tool: str, *rules: str) -> None:
    for rule in rules:
        host.run(tool, *rule.split())


def _verdicts(found: dict[str, Any]) -> set[str]:
    return {way["verdict"] for way in found["reach"]}


STRUCTURES = [
    pytest.param(
        "iptables-nft", CLIENT4, SERVER4,
        ["-N blocker", "-A blocker -j DROP", "-I INPUT -s {ip} -j blocker"], id="jump-nft",
    ),
    pytest.param(
        "iptables-legacy", CLIENT4, SERVER4,
        ["-N hole", "-A hole -p tcp -j REJECT --reject-with tcp-reset", "-I INPUT -s {ip} -g hole"],
        id="goto-legacy",
    ),
    pytest.param(
        "ip6tables-nft", CLIENT6, SERVER6,
        ["-N blocker", "-A blocker -j REJECT", "-A INPUT -s {ip} -j blocker"], id="jump-v6",
    ),
    pytest.param(
        "iptables-nft", CLIENT4, SERVER4,
        ["-t raw -N early", "-t raw -A early -j DROP", "-t raw -A PREROUTING -s {ip} -j early"],
        id="raw-prerouting-jump",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("tool", "ip", "server", "rules"), STRUCTURES)
def test_a_structural_block_is_found_lifted_and_undone(
    host: Host, tool: str, ip: str, server: str, rules: list[str]
) -> None:
    assert host.opens(server)
    _rules(host, tool, *(rule.format(ip=ip) for rule in rules))
    before = host.run(f"{tool}-save").stdout
    assert not host.reachable(server)

    code, found = host.find(ip)
    assert code == 3
    assert _verdicts(found) == {"blocks"}
    lifting = [f for f in found["findings"] if f["on_path"] and f["targeted"]]
    assert lifting, found["findings"]

    proc = host.me(ip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last.startswith(f"{ip} is now unblocked everywhere unban looks (checked again); open:")
    assert host.opens(server)
    assert host.find(ip)[0] == 0

    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert _strip(host.run(f"{tool}-save").stdout) == _strip(before)
    assert not host.reachable(server)


def _strip(save: str) -> list[str]:
    """The save without comments and counters (iptables 1.8.11 counts packets on policies)."""
    return [
        re.sub(r"\[\d+:\d+\]", "[0:0]", line)
        for line in save.splitlines()
        if not line.startswith("#")
    ]


def test_an_allow_list_policy_is_broad_until_broad_admits_exactly_this_address(
    host: Host,
) -> None:
    _rules(
        host, "iptables",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -s 198.51.100.0/24 -p tcp --dport 22 -j ACCEPT",
        "-P INPUT DROP",
    )  # fmt: skip
    assert not host.reachable(SERVER4)
    code, found = host.find(CLIENT4)
    assert code == 3
    (admit,) = [f for f in found["findings"] if f["lift"] == "admit"]
    assert (admit["chain"], admit["rule"], admit["targeted"]) == ("INPUT", "-P INPUT DROP", False)

    proc = host.me(CLIENT4)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "-P INPUT DROP" in proc.stdout
    assert f"unban me {CLIENT4} --broad" in proc.stdout
    assert not host.reachable(SERVER4)

    proc = host.me(CLIENT4, "--broad")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert host.opens(SERVER4)
    save = host.run("iptables-save").stdout
    assert (
        f"-A INPUT -s {CLIENT4}/32 -p tcp -m tcp --dport 22 -m comment --comment unban-admit "
        "-j ACCEPT"
    ) in save
    assert "-P INPUT DROP" in save or ":INPUT DROP" in save  # the policy itself stays

    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "unban-admit" not in host.run("iptables-save").stdout
    assert not host.reachable(SERVER4)


def test_a_rate_limit_chain_is_lifted_by_its_recent_entry_and_the_limit_stays(
    host: Host,
) -> None:
    _rules(
        host, "iptables",
        "-N user-limit",
        "-A user-limit -j REJECT",
        "-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --set",
        "-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --update "
        "--seconds 300 --hitcount 3 -j user-limit",
    )  # fmt: skip
    for _ in range(4):
        host.reachable(SERVER4)
    assert not host.reachable(SERVER4)
    code, found = host.find(CLIENT4)
    assert code == 3
    assert _verdicts(found) == {"may block"}  # whether the hits are recent enough: unknown
    recent = [f for f in found["findings"] if f["layer"] == "xt_recent"]
    assert recent and recent[0]["set_name"] == "DEFAULT"

    proc = host.me(CLIENT4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert host.opens(SERVER4)
    assert "--hitcount 3" in host.run("iptables-save").stdout  # the limit itself stays


def test_a_rule_off_the_way_is_reported_and_left_alone(host: Host) -> None:
    host.run("iptables", "-A", "FORWARD", "-s", CLIENT4, "-j", "DROP")
    host.run("iptables", "-N", "unused")
    host.run("iptables", "-A", "unused", "-s", CLIENT4, "-j", "REJECT")
    assert host.opens(SERVER4)
    code, found = host.find(CLIENT4)
    assert code == 0  # nothing a new connection meets refuses it
    assert sorted((f["chain"], f["on_path"]) for f in found["findings"]) == [
        ("FORWARD", False),
        ("unused", False),
    ]
    proc = host.me(CLIENT4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "left alone, off the way a new connection" in proc.stdout
    save = host.run("iptables-save").stdout
    assert f"-A FORWARD -s {CLIENT4}/32 -j DROP" in save
    assert f"-A unused -s {CLIENT4}/32 -j REJECT" in save
