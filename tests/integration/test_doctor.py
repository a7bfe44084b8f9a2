"""`unban doctor` against each cause reproduced for real: a real sshd in a network namespace,
a client namespace on a veth pair, real netfilter, libwrap, MaxStartups and fail2ban.

Each test checks that doctor names the right cause first, and (where the client side is cheap)
that the client really is refused in the way doctor says.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

import pytest

from tests.integration import fail2ban_fixtures, sshd_fixtures
from tests.integration.sshd_fixtures import (
    CLIENT4,
    CLIENT6,
    MAXSTARTUPS_LOGGED,
    OPENSSH,
    PENALTIES,
    SERVER4,
    Link,
    SshdFactory,
    as_user,
)

fail2ban_factory = fail2ban_fixtures.fail2ban_factory
link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory


def _first(result: Any) -> dict[str, Any]:
    checks: list[dict[str, Any]] = result["checks"]
    return checks[0]


def _check(result: Any, key: str) -> dict[str, Any]:
    return next(c for c in result["checks"] if c["key"] == key)


def fixes(check: dict[str, Any]) -> list[str]:
    """A check's fixes as text; the argv of each one that is a command must say the same."""
    for fix in check["fix"]:
        assert fix["argv"] is None or shlex.split(fix["text"]) == fix["argv"], fix
    return [fix["text"] for fix in check["fix"]]


def test_nothing_blocks(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    result = server.doctor(CLIENT4, "--user", "root")
    assert result["verdict"] == "clear"
    assert result["returncode"] == 0
    assert {c["verdict"] for c in result["checks"]} <= {"clear", "not present"}
    assert _check(result, "listen")["summary"] == f"sshd listens on {SERVER4}:22"
    # OpenSSH 9.8+: on, and no penalty; before: not there
    assert _check(result, "penalties")["verdict"] == ("clear" if PENALTIES else "not present")


def test_hosts_deny_line(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory(hosts_deny=f"# local bans\nsshd: 198.51.100.7 {CLIENT4}\n")
    result = server.doctor(CLIENT4)
    first = _first(result)
    assert first["key"] == "tcpwrappers"
    assert first["verdict"] == "blocks"
    decided = first["data"]["decided_by"]
    assert (decided["file"], decided["line"], decided["matched"]) == ("/etc/hosts.deny", 2, CLIENT4)
    assert "Connection reset by peer" in first["client_sees"]
    assert result["returncode"] == 3
    # the host's own /etc/hosts.deny was never touched
    with open("/etc/hosts.deny") as handle:
        assert CLIENT4 not in handle.read()


def test_hosts_deny_ipv6(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory(hosts_deny=f"ALL: [{CLIENT6}]\n")
    first = _first(server.doctor(CLIENT6))
    assert (first["key"], first["verdict"]) == ("tcpwrappers", "blocks")
    # the IPv4 address of the same client is not refused
    assert _check(server.doctor(CLIENT4), "tcpwrappers")["verdict"] == "clear"


def test_sshguard_deny_in_hosts_allow(link: Link, sshd_factory: SshdFactory) -> None:
    allow = f"###sshguard###\nALL : {CLIENT4} : DENY\n###sshguard###\n"
    server = sshd_factory(hosts_allow=allow)
    first = _first(server.doctor(CLIENT4))
    assert (first["key"], first["verdict"]) == ("tcpwrappers", "blocks")
    assert first["data"]["decided_by"]["file"] == "/etc/hosts.allow"
    assert first["data"]["decided_by"]["owner"] == "sshguard"
    probe = link.probe(SERVER4)
    assert probe["outcome"] == "reset"


def test_maxstartups_with_a_connection_held_open(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory("MaxStartups 1:100:1")
    link.hold(SERVER4)
    refused = link.probe(SERVER4)  # sshd drops it and logs MAXSTARTUPS_LOGGED
    assert refused["outcome"] in ("closed", "reset")
    result = server.doctor(CLIENT4)
    first = _first(result)
    assert first["key"] == "maxstartups"
    assert first["verdict"] == "blocks"
    assert first["data"]["load"]["startups"] == 1
    assert any(MAXSTARTUPS_LOGGED in line for line in first["evidence"])
    assert _check(result, "logs")["verdict"] == "may block"


@pytest.mark.skipif(OPENSSH < (8, 5), reason="PerSourceMaxStartups is new in OpenSSH 8.5")
def test_per_source_max_startups(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory("PerSourceMaxStartups 1")
    link.hold(SERVER4)
    first = _first(server.doctor(CLIENT4))
    assert (first["key"], first["verdict"]) == ("maxstartups", "blocks")
    assert "PerSourceMaxStartups 1" in first["summary"]


def test_deny_users(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory(f"DenyUsers nobody root@{CLIENT4}")
    result = server.doctor(CLIENT4, "--user", "root")
    first = _first(result)
    assert (first["key"], first["verdict"]) == ("users", "blocks")
    assert f"root@{CLIENT4}" in first["summary"]
    assert "Permission denied" in first["client_sees"]
    # another address may log in as root; without --user it can only say "may"
    assert _check(server.doctor("203.0.113.5", "--user", "root"), "users")["verdict"] == "clear"
    assert _check(server.doctor(CLIENT4), "users")["verdict"] == "may block"
    # DenyUsers acts after the banner: the probe still gets the version string
    assert link.probe(SERVER4)["outcome"] == "banner"


def test_deny_users_in_a_match_block(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory(f"Match Address {CLIENT4}\n  DenyUsers root")
    assert _first(server.doctor(CLIENT4, "--user", "root"))["key"] == "users"
    assert _check(server.doctor("203.0.113.9", "--user", "root"), "users")["verdict"] == "clear"


def test_reject_with_tcp_reset(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    link.server.run(
        "iptables", "-I", "INPUT", "-s", CLIENT4, "-p", "tcp", "--dport", "22",
        "-j", "REJECT", "--reject-with", "tcp-reset",
    )  # fmt: skip
    first = _first(server.doctor(CLIENT4))
    assert (first["key"], first["verdict"]) == ("firewall", "blocks")
    stop = first["data"]["ways"][0]["stops"][0]
    assert (stop["backend"], stop["chain"], stop["line"]) == ("nft", "INPUT", 1)
    assert "tcp-reset" in stop["detail"]
    assert "Connection refused" in first["client_sees"]
    assert fixes(first)[0] == f"unban me {CLIENT4}"
    assert any(fix.startswith("iptables-nft -t filter -D INPUT -s") for fix in fixes(first))


def test_drop_in_a_legacy_user_chain(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    for argv in (
        ["iptables-legacy", "-N", "blocklist"],
        ["iptables-legacy", "-A", "blocklist", "-s", "203.0.113.0/24", "-j", "DROP"],
        ["iptables-legacy", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
        ["iptables-legacy", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED",
         "-j", "ACCEPT"],
        ["iptables-legacy", "-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports",
         "80,443,1000:2000", "-j", "ACCEPT"],
        ["iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "blocklist"],
    ):  # fmt: skip
        link.server.run(*argv)
    first = _first(server.doctor(CLIENT4))
    assert first["key"] == "firewall" and first["verdict"] == "blocks"
    stop = first["data"]["ways"][0]["stops"][0]
    assert (stop["backend"], stop["chain"], stop["line"]) == ("legacy", "blocklist", 1)
    assert [(j["chain"], j["line"]) for j in stop["via"]] == [("INPUT", 4)]
    assert "timed out" in first["client_sees"]
    probe = link.probe(SERVER4, "--timeout", "2")
    assert probe["outcome"] == "timeout"


def test_policy_drop_with_an_accept_for_others(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    link.server.run(
        "iptables", "-A", "INPUT", "-s", "198.51.100.0/24", "-p", "tcp", "--dport", "22",
        "-j", "ACCEPT",
    )  # fmt: skip
    link.server.run("iptables", "-P", "INPUT", "DROP")
    first = _first(server.doctor(CLIENT4))
    assert (first["key"], first["verdict"]) == ("firewall", "blocks")
    assert first["data"]["ways"][0]["stops"][0]["rule"] == "-P INPUT DROP"
    assert fixes(first)[0] == f"unban me {CLIENT4} --broad"
    assert any(
        "-I INPUT 1 -s 203.0.113.4/32 -p tcp -m tcp --dport 22 -m comment --comment unban-admit"
        in f
        for f in fixes(first)
    )


def test_ipset_match_set(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    link.server.run("ipset", "create", "blocked", "hash:net")
    link.server.run("ipset", "add", "blocked", "203.0.113.0/28")
    link.server.run(
        "iptables", "-I", "INPUT", "-m", "set", "--match-set", "blocked", "src", "-j", "DROP"
    )
    first = _first(server.doctor(CLIENT4))
    assert (first["key"], first["verdict"]) == ("firewall", "blocks")
    # the /28 element holds more than this address: --broad lifts it
    assert fixes(first)[0] == f"unban me {CLIENT4} --broad"
    assert any("blocked" in fix and "203.0.113.0/28" in fix for fix in fixes(first)), fixes(first)
    # an address outside the set passes
    assert _check(server.doctor("203.0.113.200"), "firewall")["verdict"] != "blocks"


def test_rate_limit_is_may_block(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    link.server.run(
        "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-m", "hashlimit",
        "--hashlimit-above", "3/min", "--hashlimit-mode", "srcip", "--hashlimit-name", "ssh",
        "-j", "DROP",
    )  # fmt: skip
    check = _check(server.doctor(CLIENT4), "firewall")
    assert check["verdict"] == "may block"
    assert "hashlimit" in " ".join(check["evidence"])


def test_ip6tables_drop(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    link.server.run("ip6tables", "-I", "INPUT", "-s", CLIENT6, "-j", "DROP")
    first = _first(server.doctor(CLIENT6))
    assert (first["key"], first["verdict"]) == ("firewall", "blocks")
    assert first["data"]["ways"][0]["stops"][0]["family"] == "ipv6"
    v4 = server.doctor(CLIENT4)
    # ip6tables' rule does not see IPv4 (and may have made no IPv4 table at all)
    assert {c["verdict"] for c in v4["checks"] if c["key"] == "firewall"} <= {
        "clear",
        "not present",
    }


def test_fail2ban_ban(
    link: Link, sshd_factory: SshdFactory, fail2ban_factory: fail2ban_fixtures.Factory
) -> None:
    server = sshd_factory()
    f2b = fail2ban_factory(jails={"sshd": {"banaction": "iptables-multiport"}})
    f2b.fail(CLIENT4)
    f2b.wait_banned("sshd", CLIENT4)
    result = server.doctor(CLIENT4, global_args=("--fail2ban-conf", str(f2b.confdir)))
    first = _first(result)
    assert (first["key"], first["verdict"]) == ("fail2ban", "blocks")
    assert any(f"set sshd unbanip {CLIENT4}" in fix for fix in fixes(first))
    # the packet path shows the rule fail2ban added, in its chain
    walk = _check(result, "firewall")
    assert walk["verdict"] == "blocks"
    assert walk["data"]["ways"][0]["stops"][0]["chain"] == "f2b-sshd"
    assert link.probe(SERVER4)["outcome"] == "refused"


def test_doctor_text_report_and_not_root(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory(hosts_deny=f"sshd: {CLIENT4}\n")
    proc = server.unban(
        "doctor", CLIENT4, "--sshd-config", str(server.config_path), "--log", str(server.log_path)
    )
    assert proc.returncode == 3
    assert "most likely cause: TCP wrappers" in proc.stdout.replace("\n", " ")
    assert "/etc/hosts.deny:1" in proc.stdout
    as_nobody = server.run(
        *as_user("nobody"), sys.executable, "-m", "unban", "doctor", CLIENT4, check=False
    )
    assert as_nobody.returncode == 4
    assert "root" in as_nobody.stderr


@pytest.mark.parametrize("bad", ["203.0.113.0/24", "not-an-address", ""])
def test_doctor_bad_input(link: Link, sshd_factory: SshdFactory, bad: str) -> None:
    server = sshd_factory()
    proc = server.unban("doctor", bad)
    assert proc.returncode == 2
    assert proc.stderr.startswith("unban: ")


def test_native_nftables_set(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    ruleset = (
        "table inet guard {\n"
        "  set blocked { type ipv4_addr; }\n"
        "  chain input { type filter hook input priority 0; ip saddr @blocked tcp dport 22 drop; }\n"
        "}\n"
        f"add element inet guard blocked {{ {CLIENT4} }}\n"
    )
    link.server.run("nft", "-f", "-", input=ruleset)
    result = server.doctor(CLIENT4)
    first = _first(result)
    assert (first["key"], first["verdict"]) == ("firewall", "blocks")
    assert any("blocked" in line for line in first["evidence"])
    assert any("nft" in fix for fix in fixes(first))
    assert link.probe(SERVER4, "--timeout", "1.5")["outcome"] == "timeout"


def test_unreachable_route(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory()
    link.server.run("ip", "route", "add", "unreachable", f"{CLIENT4}/32")
    first = _first(server.doctor(CLIENT4))
    assert (first["key"], first["verdict"]) == ("route", "blocks")
    assert "unreachable" in first["summary"]
    assert link.probe(SERVER4, "--timeout", "1.5")["outcome"] == "timeout"
