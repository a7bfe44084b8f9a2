"""fail2ban for real: bans made by a real fail2ban-server from log lines, lifted by `unban remove`,
checked through fail2ban itself, the firewall and its database, also after a restart."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from tests.integration import fail2ban_fixtures
from tests.integration.fail2ban_fixtures import Factory, Fail2ban

fail2ban_factory = fail2ban_fixtures.fail2ban_factory  # the fixture, for this module

IP = "203.0.113.4"


def firewall_holds(f2b: Fail2ban, banaction: str, jail: str, ip: str) -> bool:
    """Does the firewall rule/set element fail2ban made for `jail` still hold `ip`?"""
    if banaction.startswith("nftables"):
        proc = f2b.ns.run(
            "nft", "list", "set", "inet", "f2b-table", f"addr-set-{jail}", check=False
        )
        return ip in proc.stdout
    if "ipset" in banaction:
        return f2b.ns.run("ipset", "test", f"f2b-{jail}", ip, check=False).returncode == 0
    proc = f2b.ns.run("iptables", "-S", f"f2b-{jail}", check=False)
    return f"-s {ip}/32" in proc.stdout


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    """fail2ban lists a ban a moment before its action has made the firewall rule."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def settle(f2b: Fail2ban, seconds: float = 2.5) -> None:
    """Give the polling backend time to read new log lines (it polls every second)."""
    time.sleep(seconds)


@pytest.mark.parametrize(
    "banaction", ["iptables-multiport", "nftables-multiport", "iptables-ipset-proto6"]
)
def test_remove_unbans_through_fail2ban_and_stays_unbanned(
    fail2ban_factory: Factory, banaction: str
) -> None:
    f2b = fail2ban_factory(jails={"sshd": {"banaction": banaction}})
    f2b.fail(IP)
    f2b.wait_banned("sshd", IP)
    assert eventually(lambda: firewall_holds(f2b, banaction, "sshd", IP))

    report = f2b.unban_json("find", IP)
    bans = [f for f in report["findings"] if f["layer"] == "fail2ban"]
    assert len(bans) == 1
    ban = bans[0]
    assert (ban["backend"], ban["jail"], ban["owner"], ban["kind"]) == (
        "server",
        "sshd",
        "fail2ban",
        "ban",
    )
    assert ban["banned_at"] and ban["expires_at"] and not ban["permanent"]
    assert ban["targeted"] and ban["family"] == "ipv4" and ban["table"] is None
    assert "banned in jail sshd since" in ban["rule"] and banaction in ban["rule"]
    assert "not in its ignoreip" in ban["rule"]
    firewall = [f for f in report["findings"] if f["layer"] != "fail2ban"]
    assert firewall and all((f["owner"], f["jail"]) == ("fail2ban", "sshd") for f in firewall)

    dry = f2b.unban_json("remove", IP, "--dry-run")
    steps = dry["plan"]["steps"]
    # fail2ban removes its own rule: the packet-filter layers must not plan it too
    assert [s["layer"] for s in steps] == ["fail2ban"]
    assert steps[0]["text"].endswith(f"set sshd unbanip {IP}")
    assert steps[0]["argv"][-4:] == ["set", "sshd", "unbanip", IP]
    assert steps[0]["undo"]["text"].endswith(f"set sshd banip {IP}")

    proc = f2b.unban("remove", IP)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert IP not in f2b.banned("sshd")
    assert not firewall_holds(f2b, banaction, "sshd", IP)
    assert (IP, "sshd") not in f2b.db_rows("bips")
    assert (IP, "sshd") not in f2b.db_rows("bans")

    f2b.restart()
    settle(f2b)
    assert IP not in f2b.banned("sshd")
    assert not firewall_holds(f2b, banaction, "sshd", IP)


def test_recidive_and_sshd_both_unbanned(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(jails={"sshd": {}, "recidive": {}})
    f2b.fail(IP)
    f2b.wait_banned("sshd", IP)
    f2b.wait_banned("recidive", IP)
    assert eventually(lambda: firewall_holds(f2b, "iptables", "recidive", IP))

    report = f2b.unban_json("find", IP)
    jails = sorted(f["chain"] for f in report["findings"] if f["layer"] == "fail2ban")
    assert jails == ["recidive", "sshd"]
    recidive = next(f for f in report["findings"] if f.get("chain") == "recidive")
    assert "iptables-allports" in recidive["rule"]

    proc = f2b.unban("remove", IP)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for jail in ("sshd", "recidive"):
        assert IP not in f2b.banned(jail)
        assert not firewall_holds(f2b, "iptables", jail, IP)
    assert not [row for row in f2b.db_rows() if row[0] == IP]

    f2b.restart()
    settle(f2b)
    assert IP not in f2b.banned("sshd") and IP not in f2b.banned("recidive")


def test_ignore_keeps_new_failures_from_banning(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(jails={"sshd": {}})
    f2b.fail(IP)
    f2b.wait_banned("sshd", IP)

    proc = f2b.unban("ignore", IP)
    assert proc.returncode == 0, proc.stderr
    assert IP in f2b.ignoreip("sshd")
    assert "checked with fail2ban-client -d" in proc.stdout
    assert f"still banned in jail sshd: `unban remove {IP}`" in proc.stdout
    ban = next(f for f in f2b.unban_json("find", IP)["findings"] if f["layer"] == "fail2ban")
    assert f"already in its ignoreip ({IP})" in ban["rule"]
    assert f2b.unban("remove", IP).returncode == 0

    f2b.fail(IP, count=4)
    settle(f2b)
    assert IP not in f2b.banned("sshd")

    f2b.restart()
    assert IP in f2b.ignoreip("sshd")
    f2b.fail(IP, count=4)
    settle(f2b)
    assert IP not in f2b.banned("sshd")

    # a second run writes no byte, makes no change set, and says so
    before = f2b.snapshot()
    sets_before = f2b.unban_json("rollback", "--list")["change_sets"]
    again = f2b.unban("ignore", IP)
    assert again.returncode == 0
    assert "already ignored" in again.stdout
    assert f2b.snapshot() == before
    assert f2b.unban_json("rollback", "--list")["change_sets"] == sets_before
    assert f2b.ignoreip("sshd").count(IP) == 1


def test_database_edited_when_server_is_stopped(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(jails={"sshd": {}})
    f2b.fail(IP)
    f2b.wait_banned("sshd", IP)
    f2b.stop()
    assert (IP, "sshd") in f2b.db_rows()

    report = f2b.unban_json("find", IP)
    ban = next(f for f in report["findings"] if f["layer"] == "fail2ban")
    assert ban["backend"] == "database" and ban["chain"] == "sshd"

    proc = f2b.unban("remove", IP)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (IP, "sshd") not in f2b.db_rows()
    sets = f2b.unban_json("rollback", "--list")["change_sets"]
    # the rows, saved before they were deleted; not the file
    assert any(c.startswith(f"fail2ban database {f2b.dbfile}: ") for c in sets[-1]["changed"])
    assert sets[-1]["files"] == []

    f2b.start()
    settle(f2b)
    assert IP not in f2b.banned("sshd")
    f2b.fail("198.51.100.23")  # banned after the change: rolling back must keep it
    f2b.wait_banned("sshd", "198.51.100.23")

    # putting the rows back refuses under a running server, then inserts them again
    refused = f2b.unban("rollback")
    assert refused.returncode == 2 and "stop it first" in refused.stderr
    f2b.stop()
    assert f2b.unban("rollback").returncode == 0
    assert sorted(f2b.db_rows()) == [("198.51.100.23", "sshd"), (IP, "sshd")]
    f2b.start()
    f2b.wait_banned("sshd", IP, timeout=10)


def test_ipv6_ban(fail2ban_factory: Factory) -> None:
    ip6 = "2001:db8::4"
    f2b = fail2ban_factory(jails={"sshd": {}}, default={"allowipv6": "auto"})
    f2b.fail(ip6)
    f2b.wait_banned("sshd", ip6)

    def held() -> bool:
        return f"-s {ip6}/128" in f2b.ns.run("ip6tables", "-S", "f2b-sshd", check=False).stdout

    assert eventually(held)
    report = f2b.unban_json("find", "2001:0db8:0:0::4")  # any spelling
    ban = next(f for f in report["findings"] if f["layer"] == "fail2ban")
    assert ban["family"] == "ipv6" and ban["network"] == f"{ip6}/128"
    proc = f2b.unban("remove", ip6)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert ip6 not in f2b.banned("sshd") and not held()


def test_route_action_leaves_its_route_to_fail2ban(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(jails={"sshd": {"banaction": "route"}})
    f2b.fail(IP)
    f2b.wait_banned("sshd", IP)

    def routed() -> bool:
        return IP in f2b.ns.run("ip", "route", "show", "type", "unreachable").stdout

    assert eventually(routed)
    report = f2b.unban_json("find", IP)
    layers = sorted(f["layer"] for f in report["findings"])
    assert layers == ["fail2ban", "route"]
    ban = next(f for f in report["findings"] if f["layer"] == "fail2ban")
    assert ban["clears"] == ["route"]
    dry = f2b.unban_json("remove", IP, "--dry-run")
    assert [s["layer"] for s in dry["plan"]["steps"]] == ["fail2ban"]
    proc = f2b.unban("remove", IP)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert not routed() and IP not in f2b.banned("sshd")


def test_network_target_finds_every_ban_inside(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(jails={"sshd": {}})
    for ip in ("203.0.113.4", "203.0.113.9"):
        f2b.fail(ip)
    f2b.wait_banned("sshd", "203.0.113.4")
    f2b.wait_banned("sshd", "203.0.113.9")
    report = f2b.unban_json("find", "203.0.113.0/28")
    bans = sorted(f["network"] for f in report["findings"] if f["layer"] == "fail2ban")
    assert bans == ["203.0.113.4/32", "203.0.113.9/32"]
    assert f2b.unban("remove", "203.0.113.0/28").returncode == 0
    assert f2b.banned("sshd") == []


def test_list_shows_jails_and_ban_counts(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(jails={"sshd": {}})
    f2b.fail(IP)
    f2b.wait_banned("sshd", IP)
    data = f2b.unban_json("list")
    listing = next(item for item in data["listings"] if item["layer"] == "fail2ban")
    assert listing["data"]["running"] is True
    assert listing["data"]["jails"] == [
        {"jail": "sshd", "banned": 1, "actions": ["iptables-multiport"]}
    ]
    text = f2b.unban("list").stdout
    assert "sshd: 1 banned, actions iptables-multiport" in text
