"""nftables.service's config end to end: elements and rules saved in /etc/nftables.conf and a
file it includes are taken out by `unban me` (the nftables layer deletes the live ones), the
client reads sshd's banner, still after the boot-time load (`nft -f /etc/nftables.conf`, which
flushes the ruleset first); every other byte of the files stays; `unban undo` puts them back in
the files and the kernel; a second run changes nothing."""

from __future__ import annotations

from tests.integration import owner_fixtures, sshd_fixtures
from tests.integration.owner_fixtures import Box
from tests.integration.sshd_fixtures import CLIENT4, CLIENT6, SERVER4, SERVER6

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory
owners_box = owner_fixtures.owners_box

CONF = """\
#!/usr/sbin/nft -f

flush ruleset

table inet filter {
	set blocklist {
		type ipv4_addr
		# saved after the brute force
		elements = { 198.51.100.7, 203.0.113.4,
				192.0.2.9 }
	}
	set blocklist6 {
		type ipv6_addr
		elements = { 2001:db8::4 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @blocklist counter drop
		ip6 saddr @blocklist6 drop
		ip saddr 203.0.113.4 tcp dport 22 reject # by hand
		ip saddr 198.51.100.0/24 drop
	}
}

include "/etc/nftables.d/*.nft"
"""
EXTRA = """\
# the old server's bans
table ip legacy {
	set banned { type ipv4_addr; elements = { 203.0.113.4, 192.0.2.10 } ; }
	chain input {
		type filter hook input priority -10; policy accept;
		ip saddr @banned drop
	}
}
"""


def test_nftables_conf_elements_and_rules_stay_lifted_after_boot(owners_box: Box) -> None:
    box = owners_box
    box.write("/etc/nftables.conf", CONF, "0755")
    box.write("/etc/nftables.d/legacy.nft", EXTRA, "0644")
    box.run("nft", "-f", "/etc/nftables.conf")
    assert not box.reachable(SERVER4) and not box.reachable(SERVER6)

    code, result = box.me(CLIENT4)
    assert code == 0, result
    layers = [s["finding"]["layer"] for s in result["plan"]["steps"]]
    assert layers.count("nftables.conf") == 3 and "nftables" in layers
    code, result = box.me(CLIENT6)
    assert code == 0, result
    assert box.opens(SERVER4) and box.opens(SERVER6)
    assert box.read("/etc/nftables.conf") == (
        CONF.replace("{ 198.51.100.7, 203.0.113.4,\n", "{ 198.51.100.7,\n")
        .replace("\t\telements = { 2001:db8::4 }\n", "")
        .replace("\t\tip saddr 203.0.113.4 tcp dport 22 reject # by hand\n", "")
    )
    assert box.read("/etc/nftables.d/legacy.nft") == EXTRA.replace("203.0.113.4, ", "")
    assert box.run("stat", "-c", "%a", "/etc/nftables.conf").stdout.strip() == "755"

    sets = box.change_sets()
    code, again = box.me(CLIENT4)
    assert code == 0 and again["plan"]["steps"] == [] and box.change_sets() == sets

    box.undo()
    box.undo()
    assert box.read("/etc/nftables.conf") == CONF
    assert box.read("/etc/nftables.d/legacy.nft") == EXTRA
    assert not box.reachable(SERVER4) and not box.reachable(SERVER6)

    # Lifted again, then booted. (Undo comes first above: after the boot-time load every rule
    # has a new handle, and the nftables layer's undo re-inserts a rule at its old handle.)
    assert box.me(CLIENT4)[0] == 0 and box.me(CLIENT6)[0] == 0
    box.run("nft", "-f", "/etc/nftables.conf")  # boot, and `systemctl reload nftables`
    assert box.opens(SERVER4) and box.opens(SERVER6)
    assert "198.51.100.7" in box.run("nft", "list", "set", "inet", "filter", "blocklist").stdout


def test_a_config_that_fails_its_own_check_is_left_alone_and_named(owners_box: Box) -> None:
    box = owners_box
    box.write("/etc/nftables.conf", CONF, "0755")
    box.write("/etc/nftables.d/legacy.nft", EXTRA, "0644")
    box.run("nft", "-f", "/etc/nftables.conf")
    broken = CONF.replace("policy accept;", "policy acept;")  # edited since the last load
    box.write("/etc/nftables.conf", broken, "0755")
    code, result = box.me(CLIENT4)
    assert code == 3, result
    refused = [r for r in result["still_refused"] if r["layer"] == "nftables.conf"]
    assert refused and all("fails its own check before any change" in r["detail"] for r in refused)
    assert len(refused) == 3  # both files: an include is checked as part of the whole config
    assert box.read("/etc/nftables.conf") == broken  # not touched
    assert box.read("/etc/nftables.d/legacy.nft") == EXTRA
    assert box.opens(SERVER4)  # the live entries are gone; the config brings them back
