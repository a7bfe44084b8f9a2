"""iptables and ip6tables, both backends, against the real kernel in a throwaway namespace."""

from __future__ import annotations

import shlex
import subprocess
import time

import pytest

from tests.contract import owner_of
from tests.integration.conftest import Netns
from unban import engine
from unban._sandbox import json_document
from unban.address import parse_target
from unban.errors import ApplyError, RuleChangedError
from unban.layers.xtables import XtablesLayer, build_batches

BACKENDS = ["legacy", "nft"]


def ipt(backend: str, family: str = "ipv4") -> str:
    return f"{'iptables' if family == 'ipv4' else 'ip6tables'}-{backend}"


def save(ns: Netns, backend: str, family: str = "ipv4") -> list[str]:
    out = ns.run(f"{ipt(backend, family)}-save").stdout
    return [line for line in out.splitlines() if not line.startswith("#")]


def chain_rules(ns: Netns, backend: str, chain: str, family: str = "ipv4") -> list[str]:
    out = ns.run(ipt(backend, family), "-S", chain).stdout
    return [line for line in out.splitlines() if line.startswith("-A ")]


def fail2ban_like(ns: Netns, backend: str, hosts: list[str], family: str = "ipv4") -> None:
    """The layout of fail2ban's iptables-multiport action: f2b-sshd jumped to from INPUT."""
    cmd = ipt(backend, family)
    ns.run(cmd, "-w", "-N", "f2b-sshd")
    ns.run(cmd, "-w", "-A", "f2b-sshd", "-j", "RETURN")
    ns.run(
        cmd, "-w", "-I", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd"
    )
    for host in hosts:
        ns.run(cmd, "-w", "-I", "f2b-sshd", "1", "-s", host, "-j", "REJECT")


def test_find_reports_every_backend_and_family(netns: Netns) -> None:
    fail2ban_like(netns, "legacy", ["203.0.113.9", "203.0.113.4"])
    fail2ban_like(netns, "nft", ["203.0.113.4", "198.51.100.7"])
    netns.run("iptables-nft", "-A", "INPUT", "-s", "203.0.113.0/24", "-j", "DROP")
    netns.run("ip6tables-legacy", "-A", "INPUT", "-s", "2001:db8::4", "-j", "DROP")
    netns.run("ip6tables-nft", "-A", "INPUT", "-s", "2001:db8::/64", "-j", "REJECT")

    report = netns.unban_json("find", "203.0.113.4")
    found = [
        (
            f["backend"],
            f["family"],
            f["table"],
            f["chain"],
            f["line"],
            f["verdict"],
            owner_of(f),
            f["targeted"],
        )
        for f in report["findings"]
        if f["layer"] == "iptables"
    ]
    assert found == [
        ("legacy", "ipv4", "filter", "f2b-sshd", 1, "REJECT", "fail2ban:sshd", True),
        ("nft", "ipv4", "filter", "INPUT", 2, "DROP", "manual", False),
        ("nft", "ipv4", "filter", "f2b-sshd", 2, "REJECT", "fail2ban:sshd", True),
    ]
    # The line numbers are the ones iptables -L --line-numbers shows.
    listed = netns.run("iptables-legacy", "-L", "f2b-sshd", "-n", "--line-numbers").stdout
    numbered = [line.split() for line in listed.splitlines()[2:]]
    assert [(row[0], row[1], row[4]) for row in numbered][:2] == [
        ("1", "REJECT", "203.0.113.4"),
        ("2", "REJECT", "203.0.113.9"),
    ]

    report6 = netns.unban_json("find", "2001:db8:0::4")
    found6 = [(f["backend"], f["family"], f["line"], f["targeted"]) for f in report6["findings"]]
    assert found6 == [("legacy", "ipv6", 1, True), ("nft", "ipv6", 1, False)]


def test_the_jump_into_the_jail_chain_is_never_a_finding(netns: Netns) -> None:
    fail2ban_like(netns, "nft", [])
    netns.run("iptables-nft", "-A", "INPUT", "-s", "203.0.113.4", "-j", "ACCEPT")
    report = netns.unban_json("find", "203.0.113.4")
    assert [f for f in report["findings"] if f["layer"] == "iptables"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_remove_deletes_targeted_rules_and_leaves_the_rest(netns: Netns, backend: str) -> None:
    fail2ban_like(netns, backend, ["203.0.113.9", "203.0.113.4", "198.51.100.7"])
    cmd = ipt(backend)
    netns.run(cmd, "-A", "INPUT", "-s", "203.0.113.4", "-p", "tcp", "--dport", "22", "-j", "DROP")
    netns.run(cmd, "-A", "INPUT", "-s", "203.0.113.0/24", "-j", "DROP")
    netns.run(cmd, "-t", "raw", "-A", "PREROUTING", "-s", "203.0.113.4", "-j", "DROP")
    before = save(netns, backend)

    proc = netns.unban("remove", "203.0.113.4")
    assert proc.returncode == 3, proc.stderr  # the /24 still blocks it
    assert "still blocking 203.0.113.4" in proc.stdout
    after = save(netns, backend)
    removed = sorted(line for line in before if line not in after)
    assert removed == [
        "-A INPUT -s 203.0.113.4/32 -p tcp -m tcp --dport 22 -j DROP",
        "-A PREROUTING -s 203.0.113.4/32 -j DROP",
        "-A f2b-sshd -s 203.0.113.4/32 -j REJECT --reject-with icmp-port-unreachable",
    ]
    assert [line for line in after if line not in before] == []

    proc = netns.unban("remove", "203.0.113.4", "--broad")
    assert proc.returncode == 0, proc.stderr
    assert "-A INPUT -s 203.0.113.0/24 -j DROP" not in save(netns, backend)
    assert "-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable" in save(
        netns, backend
    )

    again = netns.unban("remove", "203.0.113.4")
    assert again.returncode == 0
    assert "nothing to remove" in again.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_dry_run_changes_nothing_and_its_commands_do_the_same_job(
    netns: Netns, backend: str
) -> None:
    fail2ban_like(netns, backend, ["203.0.113.4", "203.0.113.9"])
    netns.run(ipt(backend, "ipv6"), "-A", "INPUT", "-s", "2001:db8::4", "-j", "DROP")
    before = save(netns, backend)

    plan = netns.unban_json("remove", "203.0.113.4", "--dry-run")
    assert plan["dry_run"] is True
    assert save(netns, backend) == before
    commands = [step["text"] for step in plan["plan"]["steps"]]
    assert commands == [
        f"{ipt(backend)} -t filter -D f2b-sshd -s 203.0.113.4/32 -j REJECT --reject-with icmp-port-unreachable"
    ]
    text = netns.unban("remove", "203.0.113.4", "--dry-run")
    assert "dry run: nothing changed" in text.stdout
    assert f"$ {commands[0]}" in text.stdout

    for command in commands:  # a person running the printed commands gets the same result
        netns.run(*shlex.split(command))
    by_hand = save(netns, backend)
    for step in plan["plan"]["steps"]:
        netns.run(*step["undo"]["argv"])
    assert save(netns, backend) == before
    assert netns.unban("remove", "203.0.113.4").returncode == 0
    assert save(netns, backend) == by_hand


@pytest.mark.parametrize("backend", BACKENDS)
def test_delete_by_number_checks_expect_and_shows_the_rule(netns: Netns, backend: str) -> None:
    fail2ban_like(netns, backend, ["203.0.113.9", "203.0.113.4"])
    before = save(netns, backend)

    refused = netns.unban("delete", "f2b-sshd", "2", "--expect", "203.0.113.4")
    assert refused.returncode == 2
    assert "does not match 203.0.113.4; nothing deleted" in refused.stderr
    assert save(netns, backend) == before

    missing = netns.unban("delete", "f2b-sshd", "9")
    assert missing.returncode == 2
    assert "has 3 rules; there is no rule 9" in missing.stderr

    done = netns.unban("delete", "f2b-sshd", "1", "--expect", "203.0.113.4")
    assert done.returncode == 0, done.stderr
    assert "-A f2b-sshd -s 203.0.113.4/32 -j REJECT" in done.stdout
    assert f"$ {ipt(backend)} -t filter -D f2b-sshd 1" in done.stdout
    assert chain_rules(netns, backend, "f2b-sshd") == [
        "-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable",
        "-A f2b-sshd -j RETURN",
    ]

    # the deletion is a change set `unban undo` puts back, rule at its number
    (change,) = netns.unban_json("history")["change_sets"]
    assert (change["kind"], change["description"]) == ("delete", "unban delete f2b-sshd rule 1")
    undone = netns.unban("undo")
    assert undone.returncode == 0, undone.stderr
    assert "  put back rule -A f2b-sshd -s 203.0.113.4/32 -j REJECT" in undone.stdout
    assert save(netns, backend) == before


def test_delete_asks_which_backend_when_both_have_the_chain(netns: Netns) -> None:
    fail2ban_like(netns, "legacy", ["203.0.113.4"])
    fail2ban_like(netns, "nft", ["203.0.113.4"])
    proc = netns.unban("delete", "f2b-sshd", "1")
    assert proc.returncode == 2
    assert "--backend nft|legacy" in proc.stderr
    proc = netns.unban("delete", "f2b-sshd", "1", "--backend", "nft", "--json")
    assert proc.returncode == 0, proc.stderr
    done = json_document(proc)
    assert (done["command"], done["changed"], done["plan"]["changes"]) == ("delete", True, 1)
    assert done["change_set"] and done["address"] is None and done["open"] is None
    assert len(chain_rules(netns, "nft", "f2b-sshd")) == 1
    assert len(chain_rules(netns, "legacy", "f2b-sshd")) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_rule_seen_is_deleted_even_after_it_slid(netns: Netns, backend: str) -> None:
    """The article's race: fail2ban inserts at 1 between reading the list and deleting."""
    fail2ban_like(netns, backend, ["203.0.113.9", "203.0.113.4"])
    with netns.entered():
        layer = XtablesLayer(backends=[backend])
        finding = layer.resolve(
            "filter",
            "f2b-sshd",
            1,
            backend=backend,
            family="ipv4",
            expect=parse_target("203.0.113.4"),
        )
        batch = build_batches([finding], by_number=True)[0]
        subprocess.run(
            [ipt(backend), "-w", "-I", "f2b-sshd", "1", "-s", "198.51.100.1", "-j", "REJECT"],
            check=True,
        )
        layer.apply(batch)  # rule 1 is now 198.51.100.1: it must survive
        assert chain_rules(netns, backend, "f2b-sshd") == [
            "-A f2b-sshd -s 198.51.100.1/32 -j REJECT --reject-with icmp-port-unreachable",
            "-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable",
            "-A f2b-sshd -j RETURN",
        ]
        with pytest.raises(RuleChangedError, match="is gone"):
            layer.apply(batch)
        layer.revert(batch)
    assert chain_rules(netns, backend, "f2b-sshd")[0] == (
        "-A f2b-sshd -s 203.0.113.4/32 -j REJECT --reject-with icmp-port-unreachable"
    )


def _start_inserter(ns: Netns, backend: str, count: int) -> subprocess.Popen[str]:
    """A real concurrent writer, as fail2ban is: `iptables -w -I f2b-sshd 1 ...` in a loop."""
    script = (
        "import subprocess, sys\n"
        f"for i in range({count}):\n"
        f"    subprocess.run(['{ipt(backend)}', '-w', '-I', 'f2b-sshd', '1', '-s', "
        "f'192.0.2.{i}', '-j', 'REJECT'], check=True)\n"
    )
    return subprocess.Popen(
        ["ip", "netns", "exec", ns.name, "python3", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_bans_are_never_lost_and_the_right_rules_go(netns: Netns, backend: str) -> None:
    hosts = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    cmd = ipt(backend)
    netns.run(cmd, "-N", "f2b-sshd")
    keep = [f"203.0.113.{i}" for i in range(1, 101)]
    lines = ["*filter", ":f2b-sshd - [0:0]"]
    lines += [f"-A f2b-sshd -s {h}/32 -j REJECT" for h in hosts + keep]
    netns.run(f"{cmd}-restore", "--noflush", input="\n".join([*lines, "COMMIT", ""]))

    inserter = _start_inserter(netns, backend, 60)
    time.sleep(0.2)
    removed = netns.unban("remove", "198.18.0.0/22", "--json")
    out, err = inserter.communicate(timeout=120)
    assert inserter.returncode == 0, err
    assert removed.returncode == 0, removed.stderr
    assert json_document(removed)["changed"] is True

    rules = chain_rules(netns, backend, "f2b-sshd")
    sources = [r.split()[3].split("/")[0] for r in rules]
    assert not any(s.startswith("198.18.") for s in sources)
    assert sorted(s for s in sources if s.startswith("192.0.2.")) == sorted(
        f"192.0.2.{i}" for i in range(60)
    )
    assert [s for s in sources if s.startswith("203.0.113.")] == keep


@pytest.mark.parametrize("backend", BACKENDS)
def test_delete_by_number_under_a_concurrent_inserter(netns: Netns, backend: str) -> None:
    fail2ban_like(netns, backend, ["203.0.113.4", *[f"198.51.100.{i}" for i in range(1, 50)]])
    inserter = _start_inserter(netns, backend, 40)
    deleted = False
    for _ in range(20):  # the rule keeps sliding; unban refuses each time it slid
        line = next(
            i
            for i, r in enumerate(chain_rules(netns, backend, "f2b-sshd"), 1)
            if "203.0.113.4/32" in r
        )
        proc = netns.unban("delete", "f2b-sshd", str(line), "--expect", "203.0.113.4")
        assert proc.returncode in (0, 1, 2), proc.stderr
        if proc.returncode == 0:
            deleted = True
            break
    inserter.communicate(timeout=120)
    assert inserter.returncode == 0
    rules = chain_rules(netns, backend, "f2b-sshd")
    assert deleted
    assert not any("203.0.113.4/32" in r for r in rules)
    assert sum("192.0.2." in r for r in rules) == 40
    assert sum("198.51.100." in r for r in rules) == 49


def test_a_failing_batch_puts_back_what_was_already_applied(netns: Netns) -> None:
    fail2ban_like(netns, "legacy", ["203.0.113.4", "203.0.113.9"])
    fail2ban_like(netns, "nft", ["203.0.113.4"])
    legacy_before = save(netns, "legacy")
    with netns.entered():
        layers = [XtablesLayer()]
        plan = engine.plan(engine.find(parse_target("203.0.113.4"), layers), layers)
        assert [b.scope for b in plan.batches] == ["legacy ipv4 filter", "nft ipv4 filter"]
        # Someone removes the nft rule after the plan was made: its batch must fail whole.
        subprocess.run(
            ["iptables-nft", "-D", "f2b-sshd", "-s", "203.0.113.4", "-j", "REJECT"], check=True
        )
        with pytest.raises(ApplyError, match="were put back; nothing is changed"):
            engine.apply(plan, layers)
    assert save(netns, "legacy") == legacy_before


def test_bad_input_changes_nothing(netns: Netns) -> None:
    fail2ban_like(netns, "nft", ["203.0.113.4"])
    before = save(netns, "nft")
    for bad in ["", "banana", "0.0.0.0/0", "203.0.113.4/24", "2001:db8::4%eth0"]:
        proc = netns.unban("remove", bad)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert proc.stderr.startswith("unban: ") and proc.stderr.count("\n") == 1
        assert proc.stdout == ""
    assert save(netns, "nft") == before


def test_list_numbers_rules_like_iptables(netns: Netns) -> None:
    fail2ban_like(netns, "nft", ["203.0.113.4", "203.0.113.9"])
    fail2ban_like(netns, "legacy", ["203.0.113.7"])
    data = netns.unban_json("list", "--chain", "f2b-sshd", "-4")
    iptables = [entry["data"] for entry in data["listings"] if entry["layer"] == "iptables"]
    assert [(d["backend"], d["family"], d["table"]) for d in iptables] == [
        ("legacy", "ipv4", "filter"),
        ("nft", "ipv4", "filter"),
    ]
    nft_rules = iptables[1]["chains"][0]["rules"]
    assert [r["line"] for r in nft_rules] == [1, 2, 3]
    assert [r["rule"] for r in nft_rules] == chain_rules(netns, "nft", "f2b-sshd")
    text = netns.unban("list", "--chain", "f2b-sshd")
    assert "== iptables-nft -t filter" in text.stdout
    assert "1  -A f2b-sshd -s 203.0.113.9/32 -j REJECT" in text.stdout
