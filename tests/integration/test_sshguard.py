"""`unban me` against a real sshguard 2.4 banning a real client, end to end.

sshguard tails a log file (FILES=); the test appends sshd's failure lines for the client to it,
sshguard's own parser and blocker ban it through the backend, and the client's banner read is
the judge. Then: `unban me` gets the banner back, lifts the block, takes the address out of
BLACKLIST_FILE and whitelists it (sshguard restarted); the banner stays back after fresh
failures and after another restart; a second `unban me` writes nothing; `unban undo` brings the
ban back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration import sshd_fixtures
from tests.integration.ban_daemons import CLIENT4, Host, Sshguard, require_installed, wait_for
from tests.integration.sshd_fixtures import Link, SshdFactory

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory


@pytest.fixture
def host(link: Link, sshd_factory: SshdFactory, tmp_path: Path) -> Host:
    require_installed({"sshguard": "sshguard"})
    sshd = sshd_factory(isolate=True)
    return Host(link, sshd, tmp_path)


@pytest.mark.parametrize(
    ("backend", "blacklist"),
    [("sshg-fw-nft-sets", True), ("sshg-fw-nft-sets", False), ("sshg-fw-ipset", False)],
)
def test_me_lifts_sshguards_ban_and_whitelists(host: Host, backend: str, blacklist: bool) -> None:
    guard = Sshguard(host, backend, blacklist)
    guard.start()
    host.fail(4)
    wait_for("sshguard's block", guard.blocks)
    assert not host.reachable()
    if blacklist:
        assert f"|4|{CLIENT4}" in host.read(guard.blacklist)

    found = host.unban_json("find", CLIENT4)
    owners = {(f["layer"], f["owner"]) for f in found["findings"]}
    assert ("nftables" if "nft" in backend else "ipset", "sshguard") in owners
    assert (("sshguard", "sshguard") in owners) == blacklist
    listed = [f for f in found["findings"] if f["layer"] == "sshguard"]
    assert all(f["kind"] == "ban" and f["banned_at"] for f in listed)  # the line's EPOCH
    dry = host.unban_json("me", CLIENT4, "--dry-run", "--sshd-config", str(host.sshd.config_path))
    exempting = [s for s in dry["plan"]["steps"] if s["scope"] == "sshguard"]
    # the whitelist, then the restart: stop, and start once the old sshguard has exited
    assert [s["action"] for s in exempting] == ["write", "run", "run"]
    assert [s["argv"] for s in exempting[1:]] == [
        ["/etc/init.d/sshguard", "stop"],
        ["/etc/init.d/sshguard", "start"],
    ]
    assert dry["would_change"] is True and dry["plan"]["changes"] == len(dry["plan"]["steps"])
    exempt = {e["source"]: e for e in found["exemptions"] if e["present"]}
    assert exempt["sshguard"]["exempt"] is False

    old_blocker = guard.blocker()
    proc = host.unban("me", CLIENT4, "--sshd-config", str(host.sshd.config_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "restarting sshguard drops every block it holds now" in proc.stdout
    assert host.opens()
    assert guard.blocker() != old_blocker  # restarted: it reads its whitelist at start only
    assert guard.whitelist().splitlines()[-1] == CLIENT4
    if blacklist:
        assert CLIENT4 not in host.read(guard.blacklist)
    assert host.unban_json("find", CLIENT4)["exemptions"][1]["exempt"] is True

    host.fail(6)  # fresh failures: whitelisted, nothing is banned
    guard.restart()
    host.fail(6)
    assert not guard.blocks()
    assert host.opens()

    sets = host.change_sets()
    again = host.unban("me", CLIENT4, "--sshd-config", str(host.sshd.config_path))
    assert again.returncode == 0, again.stderr
    assert f"nothing to change for {CLIENT4}" in again.stdout
    assert host.change_sets() == sets

    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stderr
    assert CLIENT4 not in guard.whitelist()
    assert guard.blocks() and not host.reachable()
    if blacklist:
        assert f"|4|{CLIENT4}" in host.read(guard.blacklist)
        guard.restart()  # blocked again from its blacklist at start
        assert guard.blocks()


def test_ignore_and_unignore_only_sshguard(host: Host) -> None:
    guard = Sshguard(host, "sshg-fw-nft-sets", blacklist=False)
    guard.start()
    first = guard.blocker()
    proc = host.unban("ignore", CLIENT4, "--only", "sshguard")
    assert proc.returncode == 0, proc.stderr
    assert "fail2ban" not in proc.stdout
    assert guard.whitelist().splitlines()[-1] == CLIENT4 and guard.blocker() != first
    host.fail(6)
    time.sleep(1)
    assert not guard.blocks()
    again = host.unban("ignore", CLIENT4, "--only", "sshguard")
    assert again.returncode == 0 and "already exempt there; nothing written" in again.stdout
    out = host.unban("unignore", CLIENT4, "--only", "sshguard")
    assert out.returncode == 0, out.stderr
    assert CLIENT4 not in guard.whitelist()
    host.fail(4)
    wait_for("sshguard's block", guard.blocks)
