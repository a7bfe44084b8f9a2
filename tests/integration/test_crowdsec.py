"""`unban me` against a real CrowdSec 1.4 (agent, local API, firewall bouncer) banning a real
client, end to end.

The ban is a decision (`cscli decisions add`), or one the agent makes itself from sshd's
failure lines through the shipped sshd parser and ssh-bf scenario; the bouncer turns it into an
element of its nft set, and the client's banner read is the judge. `unban me` deletes the
decision (the bouncer lifts its element), whitelists the address in a parser and reloads the
agent; the banner stays back after the bouncer's restart and fresh failures; a second `unban
me` writes nothing; `unban undo` adds the decision back and the bouncer blocks again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import sshd_fixtures
from tests.integration.ban_daemons import CLIENT4, Crowdsec, Host, require_installed, wait_for
from tests.integration.sshd_fixtures import Link, SshdFactory

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory
PARSER = "/etc/crowdsec/parsers/s02-enrich/unban-whitelists.yaml"


@pytest.fixture
def crowdsec(link: Link, sshd_factory: SshdFactory, tmp_path: Path) -> Iterator[Crowdsec]:
    require_installed(
        {"crowdsec": "crowdsec", "cscli": "crowdsec", "crowdsec-firewall-bouncer":
         "crowdsec-firewall-bouncer"}
    )  # fmt: skip
    host = Host(link, sshd_factory(isolate=True), tmp_path)
    daemons = Crowdsec(host)
    try:
        daemons.start()
        yield daemons
    finally:
        daemons.stop()


@pytest.mark.parametrize("banned_by", ["cscli", "sshd log"])
def test_me_deletes_the_decision_and_whitelists(crowdsec: Crowdsec, banned_by: str) -> None:
    host = crowdsec.host
    if banned_by == "cscli":
        crowdsec.cscli("decisions", "add", "--ip", CLIENT4, "--duration", "2h", "-R", "test ban")
    else:
        host.fail(8)  # crowdsecurity/ssh-bf: more than 5 failures in a short while
    wait_for("the bouncer's element", crowdsec.blocks)
    assert not host.reachable()
    decision = crowdsec.decisions()[0]

    found = host.unban_json("find", CLIENT4)
    ours = [f for f in found["findings"] if f["layer"] == "crowdsec"]
    assert [(f["source"], f["lifts_own"], f["kind"]) for f in ours] == [
        (f"cscli decision {decision['id']}", True, "ban")
    ]
    assert ours[0]["expires_at"] is not None  # the decision's time left, as a zoned time
    assert any(f["layer"] == "nftables" and f["owner"] == "crowdsec" for f in found["findings"])
    assert {e["source"]: e["exempt"] for e in found["exemptions"] if e["present"]} == {
        "crowdsec": False
    }

    proc = host.unban("me", CLIENT4, "--sshd-config", str(host.sshd.config_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"cscli decisions delete --id {decision['id']}" in proc.stdout
    assert "[nftables" not in proc.stdout  # the element is left to the bouncer...
    assert "left behind" not in proc.stdout  # ...which lifted it within its poll
    assert host.reachable()
    assert crowdsec.decisions() == []  # CrowdSec's own state agrees
    assert not crowdsec.blocks()
    assert CLIENT4 in host.read(PARSER)

    host.fail(8)  # fresh failures: the agent drops the whitelisted address's events
    crowdsec.restart_bouncer()  # it pulls every decision at start: none is left for it
    assert crowdsec.decisions() == [] and not crowdsec.blocks()
    assert host.reachable()

    sets = host.change_sets()
    again = host.unban("me", CLIENT4, "--sshd-config", str(host.sshd.config_path))
    assert again.returncode == 0, again.stderr
    assert f"nothing to change for {CLIENT4}" in again.stdout
    assert host.change_sets() == sets

    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stderr
    back = crowdsec.decisions()
    assert [(d["type"], d["scope"], d["value"]) for d in back] == [("ban", "Ip", CLIENT4)]
    assert back[0]["scenario"] == decision["scenario"]
    wait_for("the bouncer's element again", crowdsec.blocks)
    assert not host.reachable()
    assert host.read(PARSER) == ""


def test_crowdsec_stopped_lifts_the_element_and_says_so(crowdsec: Crowdsec) -> None:
    host = crowdsec.host
    crowdsec.cscli("decisions", "add", "--ip", CLIENT4, "--duration", "2h")
    wait_for("the bouncer's element", crowdsec.blocks)
    assert crowdsec.agent is not None and crowdsec.bouncer is not None
    crowdsec.agent.terminate()
    crowdsec.agent.wait(timeout=20)

    proc = host.unban("me", CLIENT4, "--sshd-config", str(host.sshd.config_path))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "read from its database: the local API does not answer" in proc.stdout
    assert host.reachable()  # the kernel element is lifted; the decision stays in CrowdSec
    assert not crowdsec.blocks()
