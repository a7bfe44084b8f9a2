"""ufw end to end: `unban me` deletes a ufw deny (IPv4; IPv6 with a port and a comment) through
ufw itself, the client reads sshd's banner, still after `ufw reload` and after a simulated boot
(kernel rules flushed, `/lib/ufw/ufw-init start`); `ufw status numbered` agrees and keeps the
other rules; `unban undo` puts each rule back at its number; a second run changes nothing.
A client over a `ufw limit` gets its xt_recent entry cleared; the limit stays.
Real ufw 0.36 with /etc and /lib/ufw overlaid in sshd's mount namespace (owner_fixtures)."""

from __future__ import annotations

from tests.integration import owner_fixtures, sshd_fixtures
from tests.integration.owner_fixtures import Box
from tests.integration.sshd_fixtures import CLIENT4, CLIENT6, SERVER4, SERVER6

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory
owners_box = owner_fixtures.owners_box


def _status(box: Box) -> str:
    return box.run("ufw", "status", "numbered").stdout


def test_ufw_denies_are_lifted_through_ufw_and_stay_lifted(owners_box: Box) -> None:
    box = owners_box
    box.overlay("/lib/ufw")
    for rule in (
        ["deny", "from", "198.51.100.7"],
        ["deny", "from", CLIENT4],
        ["deny", "from", CLIENT6, "to", "any", "port", "22", "proto", "tcp", "comment", "bad bot"],
        ["allow", "22/tcp"],
    ):
        box.run("ufw", *rule)
    box.run("ufw", "--force", "enable")
    before = _status(box)
    assert "[ 2] Anywhere                   DENY IN     203.0.113.4" in before
    assert not box.reachable(SERVER4) and not box.reachable(SERVER6)

    code, result = box.me(CLIENT4)
    assert code == 0, result
    steps = result["plan"]["steps"]
    assert [(s["finding"]["layer"], s["text"]) for s in steps] == [
        ("ufw", "ufw --force delete deny from 203.0.113.4 to any")
    ]  # ufw's kernel rule is left to ufw's delete
    code, result = box.me(CLIENT6)
    assert code == 0, result
    assert box.opens(SERVER4) and box.opens(SERVER6)
    after = _status(box)
    assert CLIENT4 not in after and CLIENT6 not in after
    assert "DENY IN     198.51.100.7" in after and "22/tcp (v6)" in after
    assert "-s 203.0.113.4" not in box.run("iptables-save").stdout

    box.run("ufw", "reload")
    assert box.opens(SERVER4) and box.opens(SERVER6)
    box.flush_kernel()
    box.run("/lib/ufw/ufw-init", "start")
    assert "ufw-user-input" in box.run("iptables-save").stdout
    assert box.opens(SERVER4) and box.opens(SERVER6)

    sets = box.change_sets()
    code, again = box.me(CLIENT4)
    assert code == 0 and again["plan"]["steps"] == [] and box.change_sets() == sets

    box.undo()
    box.undo()
    assert _status(box) == before  # each rule at its number again, with its comment
    assert not box.reachable(SERVER4) and not box.reachable(SERVER6)


def test_a_client_over_a_ufw_limit_is_cleared_and_the_limit_stays(owners_box: Box) -> None:
    box = owners_box
    box.overlay("/lib/ufw")
    box.run("ufw", "limit", "22/tcp")
    box.run("ufw", "--force", "enable")
    for _ in range(8):  # ufw limit: the 6th new connection in 30 s and on are rejected
        box.reachable(SERVER4)
    assert not box.reachable(SERVER4)

    code, result = box.me(CLIENT4)
    assert code == 0, result
    layers = [s["finding"]["layer"] for s in result["plan"]["steps"]]
    assert layers == ["xt_recent"]
    (status,) = [s for s in result["layers"] if s["layer"] == "ufw"]
    assert "`ufw limit` rule(s) stay" in status["detail"]
    assert box.opens(SERVER4)
    assert "22/tcp                     LIMIT" in box.run("ufw", "status").stdout
