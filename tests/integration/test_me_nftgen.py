"""`unban me` on a lone iptables-nft rule: it deletes the rule by nft handle in a netlink batch
that names the find's nftables generation (unban.nftnl), runs no iptables-nft for it, and its
final check reuses the find's rules less the one it deleted only when nftables' generation id
proves nothing else committed (unban.nftgen), and reads afresh when something did. A real sshd
in a server namespace, a client namespace at the banned address reading sshd's banner."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import CLIENT4, SERVER4, Link, Sshd, SshdFactory

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory

BLOCK = ["-s", f"{CLIENT4}/32", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"]


def banned_server(sshd_factory: SshdFactory) -> Sshd:
    """sshd, and a fail2ban-like chain of iptables-nft rules where one refuses CLIENT4."""
    server = sshd_factory(isolate=True)
    server.run("iptables-nft", "-N", "f2b-sshd")
    for last in range(1, 40):
        server.run("iptables-nft", "-A", "f2b-sshd", "-s", f"198.51.100.{last}/32", "-j", "DROP")
    server.run("iptables-nft", "-I", "f2b-sshd", "20", *BLOCK)
    server.run("iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "f2b-sshd")
    return server


def reachable(link: Link) -> bool:
    return bool(link.probe(SERVER4, "--timeout", "3")["ok"])


def saved_rules(server: Sshd) -> list[str]:
    """iptables-nft-save's chains and rules, without its header and footer comments and the
    chains' counters (iptables 1.8.11, Debian 13, counts the probes' packets there)."""
    out = server.run("iptables-nft-save").stdout
    return [re.sub(r" \[\d+:\d+\]$", "", line) for line in out.splitlines() if line[:1] != "#"]


def unban_argv(tmp_path: Path) -> list[str]:
    """The CLI with no fail2ban config and a state dir of the test's own."""
    empty = tmp_path / "no-fail2ban"
    empty.mkdir(mode=0o755, exist_ok=True)
    state = str(tmp_path / "state")
    return [sys.executable, "-m", "unban", "--fail2ban-conf", str(empty), "--state-dir", state]


def me_over_netlink(server: Sshd, link: Link, tmp_path: Path) -> None:
    """`unban me CLIENT4` under strace: it opens the way (the client reads the banner) with the
    find's one iptables-nft-save and no iptables-nft run (the delete goes over netlink, the
    final check is the kernel's generation after it)."""
    execs = tmp_path / "exec.log"
    proc = server.run(
        "strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(execs),
        *unban_argv(tmp_path), "me", CLIENT4, "--no-ignore", "--no-sshd",
        "--sshd-config", str(server.config_path),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(checked again)" in proc.stdout
    assert link.opens(SERVER4)  # a real client reads sshd's banner
    log = execs.read_text()
    assert len(re.findall(r'execve\("[^"]*/iptables-nft-save"', log)) == 1, log
    assert not re.findall(r'execve\("[^"]*/iptables-nft"', log), log


def test_me_lifts_the_lone_rule_and_its_check_needs_no_second_dump(
    link: Link, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    server = banned_server(sshd_factory)
    assert not reachable(link)
    me_over_netlink(server, link, tmp_path)
    left = server.run("iptables-nft-save").stdout
    assert CLIENT4 not in left and left.count("-A f2b-sshd") == 39


def test_a_ban_added_between_the_delete_and_the_check_is_seen(
    link: Link, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    server = banned_server(sshd_factory)
    empty = tmp_path / "no-fail2ban"
    empty.mkdir(mode=0o755)
    spec = {
        "address": CLIENT4,
        "confdir": str(empty),
        "state_dir": str(tmp_path / "state"),
        "sshd_config": str(server.config_path),
        "after": "done: removed iptables",
        # a ban daemon racing unban: the rule is back before the final check reads anything
        "argv": ["iptables-nft", "-I", "f2b-sshd", "1", *BLOCK],
    }
    proc = server.run(sys.executable, "-m", "tests.integration.me_inject", json.dumps(spec))
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["fired"] and " -> 0 " in result["fired"][0] + " ", result
    assert result["exit_status"] == 3, result
    assert "partly unblocked" in result["summary"] and "iptables" in result["summary"], result
    assert not reachable(link)


def test_me_deletes_exactly_the_found_rule_of_a_big_chain_and_undo_puts_it_back(
    link: Link, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    server = sshd_factory(isolate=True)
    others = [f"-A f2b-sshd -s 10.1.{i // 250}.{i % 250 + 1}/32 -j REJECT" for i in range(3000)]
    rules = [*others[:1700], f"-A f2b-sshd {' '.join(BLOCK)}", *others[1700:]]
    lines = ["*filter", ":f2b-sshd - [0:0]", "-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd"]
    ruleset = tmp_path / "ruleset"
    ruleset.write_text("\n".join([*lines, *rules, "COMMIT", ""]))
    server.run("iptables-nft-restore", str(ruleset))
    before = saved_rules(server)
    assert not reachable(link)
    me_over_netlink(server, link, tmp_path)
    left = server.run("iptables-nft-save", "-t", "filter").stdout
    assert [line for line in left.splitlines() if line.startswith("-A f2b-sshd")] == [
        rule.replace("-j REJECT", "-j REJECT --reject-with icmp-port-unreachable")
        for rule in others
    ]
    undone = server.run(*unban_argv(tmp_path), "undo", check=False)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert saved_rules(server) == before
    assert not reachable(link)
