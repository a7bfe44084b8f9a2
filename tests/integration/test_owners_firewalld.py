"""firewalld end to end, on a private system bus in sshd's mount namespace (owner_fixtures):
a source in the drop zone and an entry of an ipset the drop zone has as source (IPv4), a rich
rule that rejects (IPv6), each runtime and permanent. `unban me` lifts them with firewall-cmd
(never touching `table inet firewalld` itself), the client reads sshd's banner, still after
`firewall-cmd --reload` and after a simulated boot (firewalld stopped, the ruleset flushed,
firewalld started again); `firewall-cmd --list-all-zones` agrees, runtime and permanent, and
keeps the other entries; `unban undo` puts every block back; a second run changes nothing.
With firewalld stopped, the lift goes through firewall-offline-cmd."""

from __future__ import annotations

from tests.integration import owner_fixtures, sshd_fixtures
from tests.integration.owner_fixtures import Box
from tests.integration.sshd_fixtures import CLIENT4, CLIENT6, SERVER4, SERVER6

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory
owners_box = owner_fixtures.owners_box

RICH6 = f"rule family=ipv6 source address={CLIENT6} service name=ssh reject"


def _zones(box: Box) -> tuple[str, str]:
    runtime = box.run("firewall-cmd", "--list-all-zones").stdout
    permanent = box.run("firewall-cmd", "--permanent", "--list-all-zones").stdout
    return runtime, permanent


def _normal(view: str) -> list[str]:
    """A zone listing with its lines and each line's words in order (firewalld appends a source
    put back after the ones already there; their order means nothing)."""
    return sorted(" ".join(sorted(line.split())) for line in view.splitlines())


def _entries(box: Box) -> tuple[str, str]:
    return (
        box.run("firewall-cmd", "--ipset=blocked", "--get-entries").stdout,
        box.run("firewall-cmd", "--permanent", "--ipset=blocked", "--get-entries").stdout,
    )


def test_firewalld_sources_rich_rules_and_ipsets_are_lifted_where_they_are_kept(
    owners_box: Box,
) -> None:
    box = owners_box
    box.start_firewalld()
    fw = ["firewall-cmd", "--permanent", "-q"]
    box.run(*fw, "--new-ipset=blocked", "--type=hash:ip")
    for entry in ("192.0.2.9", CLIENT4):
        box.run(*fw, "--ipset=blocked", f"--add-entry={entry}")
    for source in ("198.51.100.7", CLIENT4, "ipset:blocked"):
        box.run(*fw, "--zone=drop", f"--add-source={source}")
    box.run(*fw, "--zone=public", f"--add-rich-rule={RICH6}")
    box.run(
        *fw, "--zone=public", "--add-rich-rule=rule family=ipv6 source address=2001:db8::9 drop"
    )
    box.run("firewall-cmd", "--reload")
    before, entries = _zones(box), _entries(box)
    assert not box.reachable(SERVER4) and not box.reachable(SERVER6)

    code, result = box.me(CLIENT4)
    assert code == 0, result
    steps = result["plan"]["steps"]
    assert {s["finding"]["layer"] for s in steps} == {"firewalld"}
    assert [s["text"] for s in steps] == [
        "firewall-cmd --zone=drop --remove-source=203.0.113.4 && "
        "firewall-cmd --permanent --zone=drop --remove-source=203.0.113.4",
        "firewall-cmd --ipset=blocked --remove-entry=203.0.113.4 && "
        "firewall-cmd --permanent --ipset=blocked --remove-entry=203.0.113.4",
    ]
    code, result = box.me(CLIENT6)
    assert code == 0, result
    assert box.opens(SERVER4) and box.opens(SERVER6)
    runtime, permanent = _zones(box)
    for view in (runtime, permanent):
        assert CLIENT4 not in view and CLIENT6 not in view
        assert "sources: 198.51.100.7 ipset:blocked" in view and "2001:db8::9" in view
    assert _entries(box) == ("192.0.2.9\n", "192.0.2.9\n")
    assert CLIENT4 not in box.read("/etc/firewalld/zones/drop.xml")

    box.run("firewall-cmd", "--reload")
    assert box.opens(SERVER4) and box.opens(SERVER6)
    box.stop_firewalld()
    box.run("nft", "flush", "ruleset")
    box.start_firewalld()  # boot
    assert box.opens(SERVER4) and box.opens(SERVER6)

    sets = box.change_sets()
    code, again = box.me(CLIENT4)
    assert code == 0 and again["plan"]["steps"] == [] and box.change_sets() == sets

    box.undo()
    box.undo()
    assert _entries(box) == entries
    after = _zones(box)
    assert _normal(after[0]) == _normal(before[0]) and _normal(after[1]) == _normal(before[1])
    assert not box.reachable(SERVER4) and not box.reachable(SERVER6)

    # firewalld stopped: its permanent config, through firewall-offline-cmd.
    box.stop_firewalld()
    code, result = box.me(CLIENT4)
    commands = [s["text"] for s in result["plan"]["steps"]]
    assert "firewall-offline-cmd --zone=drop --remove-source=203.0.113.4" in commands
    box.run("nft", "flush", "ruleset")
    box.start_firewalld()
    assert box.opens(SERVER4)
