"""`unban probe` from the client namespace, as an unprivileged user, against each way a real
sshd (or the firewall in front of it) can refuse a client."""

from __future__ import annotations

from typing import Any

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import (
    CLIENT4,
    CLIENT6,
    MAXSTARTUPS_SAID,
    SERVER4,
    SERVER6,
    Link,
    SshdFactory,
)

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory


def _attempts(result: Any) -> list[dict[str, Any]]:
    attempts: list[dict[str, Any]] = result["attempts"]
    return attempts


def test_banner_ipv4_and_ipv6(link: Link, sshd_factory: SshdFactory) -> None:
    sshd_factory()
    for server in (SERVER4, SERVER6, f"[{SERVER6}]"):
        result = link.probe(server)
        assert result["ok"] is True
        (attempt,) = _attempts(result)
        assert attempt["outcome"] == "banner"
        assert attempt["banner"].startswith("SSH-2.0-OpenSSH_")
        assert attempt["local_address"] in (CLIENT4, CLIENT6)
    assert any("ssh -v" in hint for hint in result["hints"])


def test_hosts_deny_is_reset_after_libwrap_delay(link: Link, sshd_factory: SshdFactory) -> None:
    sshd_factory(hosts_deny=f"sshd: {CLIENT4} [{CLIENT6}]\n")
    for server in (SERVER4, SERVER6):
        result = link.probe(server)
        assert result["ok"] is False
        (attempt,) = _attempts(result)
        assert attempt["outcome"] == "reset", attempt
        assert attempt["error"] == "ECONNRESET"
        assert 4.0 <= attempt["seconds"] <= 9.0  # libwrap sleeps 5 s before it closes
    hints = " ".join(result["hints"])
    assert "hosts.deny" in hints and "libwrap" in hints
    assert f"unban doctor {CLIENT6}" in hints


def test_maxstartups_drops_say_so(link: Link, sshd_factory: SshdFactory) -> None:
    sshd_factory("MaxStartups 1:100:1")
    link.hold(SERVER4)
    result = link.probe(SERVER4, "--count", "3")
    attempts = _attempts(result)
    assert len(attempts) == 3
    for attempt in attempts:
        assert attempt["outcome"] in ("closed", "reset")
    assert any(MAXSTARTUPS_SAID in a["before_banner"] for a in attempts)
    assert any("MaxStartups" in hint for hint in result["hints"])


def test_maxstartups_random_drops_with_count(link: Link, sshd_factory: SshdFactory) -> None:
    # start 1, rate 50, full 3: with one connection held, half the new ones are dropped
    sshd_factory("MaxStartups 1:50:3")
    link.hold(SERVER4)
    result = link.probe(SERVER4, "--count", "24", "--timeout", "5")
    outcomes = {a["outcome"] for a in _attempts(result)}
    assert "banner" in outcomes
    assert outcomes & {"closed", "reset"}
    assert result["ok"] is False
    assert result["outcome"] in ("closed", "reset")


def test_reject_tcp_reset_is_refused(link: Link, sshd_factory: SshdFactory) -> None:
    sshd_factory()
    link.server.run(
        "iptables", "-I", "INPUT", "-s", CLIENT4, "-p", "tcp", "--dport", "22",
        "-j", "REJECT", "--reject-with", "tcp-reset",
    )  # fmt: skip
    (attempt,) = _attempts(link.probe(SERVER4))
    assert attempt["outcome"] == "refused"
    assert attempt["error"] == "ECONNREFUSED"
    assert link.probe(SERVER6)["ok"] is True  # only IPv4 is refused


def test_reject_host_prohibited_is_unreachable(link: Link, sshd_factory: SshdFactory) -> None:
    sshd_factory()
    link.server.run(
        "iptables", "-I", "INPUT", "-s", CLIENT4, "-j", "REJECT",
        "--reject-with", "icmp-host-prohibited",
    )  # fmt: skip
    (attempt,) = _attempts(link.probe(SERVER4))
    assert attempt["outcome"] == "unreachable"
    assert attempt["error"] == "EHOSTUNREACH"


def test_drop_is_timeout(link: Link, sshd_factory: SshdFactory) -> None:
    sshd_factory()
    link.server.run("iptables", "-I", "INPUT", "-s", CLIENT4, "-j", "DROP")
    link.server.run("ip6tables", "-I", "INPUT", "-s", CLIENT6, "-j", "DROP")
    for server in (SERVER4, SERVER6):
        result = link.probe(server, "--timeout", "1.5")
        (attempt,) = _attempts(result)
        assert attempt["outcome"] == "timeout"
        assert 1.4 <= attempt["seconds"] < 5
    assert any("DROP" in hint for hint in result["hints"])


def test_nothing_listening_is_refused(link: Link) -> None:
    (attempt,) = _attempts(link.probe(SERVER4))
    assert attempt["outcome"] == "refused"


def test_silent_server(link: Link, sshd_factory: SshdFactory) -> None:
    # a listener that accepts and never speaks: a hung sshd, or not an SSH server
    server = sshd_factory()
    server.run("iptables", "-I", "OUTPUT", "-p", "tcp", "--sport", "22", "-m", "conntrack",
               "--ctstate", "ESTABLISHED", "-m", "length", "--length", "80:", "-j", "DROP")  # fmt: skip
    (attempt,) = _attempts(link.probe(SERVER4, "--timeout", "1.5"))
    assert attempt["outcome"] == "silent"


def test_host_name_with_two_addresses(link: Link) -> None:
    result = link.probe("localhost", "--port", "1")
    addresses = {a["address"] for a in _attempts(result)}
    assert "127.0.0.1" in addresses
    assert {a["outcome"] for a in _attempts(result)} == {"refused"}


def test_unknown_host_is_a_usage_error(link: Link) -> None:
    proc = link.unban_client("probe", "no-such-host.invalid", user="nobody")
    assert proc.returncode == 2
    assert "cannot resolve" in proc.stderr


def test_text_output(link: Link, sshd_factory: SshdFactory) -> None:
    sshd_factory(hosts_deny=f"sshd: {CLIENT4}\n")
    proc = link.unban_client("probe", SERVER4, user="nobody")
    assert proc.returncode == 3
    assert f"{SERVER4}: reset" in proc.stdout
    assert "kex_exchange_identification: read: Connection reset by peer" in proc.stdout
