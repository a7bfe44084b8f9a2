"""The one verdict with native nft, end to end through the CLI: a real sshd, the client
namespace's banner read as the judge. `find` reports the stop and exits 3, `me` lifts it (or
exits 3 for an allow-list policy until `--broad` admits the address), the banner comes back,
and `undo` puts the table back as `nft -s list ruleset` prints it."""

from __future__ import annotations

import pytest

from tests.integration.sshd_fixtures import CLIENT4, SERVER4
from tests.integration.test_path import Host, host, link, sshd_factory

__all__ = ["host", "link", "sshd_factory"]

GOTO = """\
table inet fwstyle {
  chain filter_IN_drop { drop; }
  chain filter_INPUT { type filter hook input priority 10; policy accept;
    ct state established,related accept
    ip saddr ADDR goto filter_IN_drop
  }
}
"""
CONCAT = """\
table ip cc {
  set blk { type ipv4_addr . inet_service; elements = { ADDR . 22, 198.51.100.1 . 22 }; }
  chain input { type filter hook input priority 0; ip saddr . tcp dport @blk drop; }
}
"""
VMAP = """\
table ip verdicts {
  chain input { type filter hook input priority 0;
    ip saddr vmap { 198.51.100.3 : accept, ADDR : drop }
  }
}
"""
ALLOW_LIST = """\
table inet al {
  chain input { type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    ip saddr 198.51.100.0/24 tcp dport 22 accept
  }
}
"""


def ruleset(host: Host) -> str:
    return str(host.run("nft", "-s", "list", "ruleset").stdout)


def load(host: Host, text: str) -> str:
    host.sshd.mount_ns.run("nft", "-f", "-", input=text.replace("ADDR", CLIENT4))
    return ruleset(host)


@pytest.mark.parametrize(
    ("text", "kind"),
    [(GOTO, "rule"), (CONCAT, "set element"), (VMAP, "anonymous element")],
)
def test_me_lifts_a_native_nft_stop_and_undo_puts_it_back(host: Host, text: str, kind: str) -> None:
    before = load(host, text)
    assert not host.reachable(SERVER4)
    code, found = host.find(CLIENT4)
    assert code == 3
    lifting = [f for f in found["findings"] if f["on_path"] and f["targeted"]]
    assert [(f["layer"], bool(f["set_name"]), bool(f["element"])) for f in lifting] == [
        ("nftables", kind == "set element", kind != "rule")
    ]
    proc = host.me(CLIENT4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "open:" in proc.stdout.splitlines()[-1]
    assert host.opens(SERVER4)
    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert ruleset(host) == before
    assert not host.reachable(SERVER4)


def test_an_nft_allow_list_policy_is_admitted_only_with_broad(host: Host) -> None:
    before = load(host, ALLOW_LIST)
    assert not host.reachable(SERVER4)
    code, found = host.find(CLIENT4)
    assert code == 3
    (admit,) = [f for f in found["findings"] if f["lift"] == "admit"]
    assert (admit["layer"], admit["table"], admit["chain"]) == ("nftables", "al", "input")
    proc = host.me(CLIENT4)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert not host.reachable(SERVER4)
    proc = host.me(CLIENT4, "--broad")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert host.opens(SERVER4)
    assert f'ip saddr {CLIENT4} tcp dport 22 accept comment "unban-admit"' in ruleset(host)
    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert ruleset(host) == before
    assert not host.reachable(SERVER4)
