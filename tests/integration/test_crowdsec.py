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

import json
import sys
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
    assert host.opens()
    assert crowdsec.decisions() == []  # CrowdSec's own state agrees
    assert not crowdsec.blocks()
    assert CLIENT4 in host.read(PARSER)

    host.fail(8)  # fresh failures: the agent drops the whitelisted address's events
    crowdsec.restart_bouncer()  # it pulls every decision at start: none is left for it
    assert crowdsec.decisions() == [] and not crowdsec.blocks()
    assert host.opens()

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
    assert host.opens()  # the kernel element is lifted; the decision stays in CrowdSec
    assert not crowdsec.blocks()


RENAMES = "rename,renameat,renameat2"


def killed_me(host: Host, when: int) -> tuple[int, list[str]]:
    """`unban me CLIENT4`, SIGKILLed at its `when`-th rename (0: never); the renames traced."""
    trace = host.root / "renames"
    inject = ["-e", f"inject={RENAMES}:signal=SIGKILL:when={when}"] if when else []
    proc = host.run(
        "strace", "-qq", "-o", str(trace), "-e", f"trace={RENAMES}", *inject,
        sys.executable, "-m", "unban", "--fail2ban-conf", str(host.root / "fail2ban-none"),
        "--state-dir", str(host.state_dir), "me", CLIENT4,
        "--sshd-config", str(host.sshd.config_path),
        check=False,
    )  # fmt: skip
    renames = [line for line in trace.read_text().splitlines() if line.startswith("rename")]
    return proc.returncode, renames


def crowdsec_state(crowdsec: Crowdsec) -> tuple[object, ...]:
    """What `me` changes in CrowdSec: its decisions on the client (a re-added one has a new id
    and less time left), the whitelist parser, the bouncer's element."""
    decisions = sorted(
        (d["type"], d["scope"], d["value"], d["scenario"]) for d in crowdsec.decisions()
    )
    return (decisions, crowdsec.host.read(PARSER), crowdsec.blocks())


def test_killed_at_every_write_the_next_command_puts_crowdsec_back(crowdsec: Crowdsec) -> None:
    """`unban me` is killed at every rename of its run (the journal's records, the parser's
    backup and write, the marks around the decision's delete and the agent's reload): the next
    command adds the decision back and takes the address out of the parser, and the bouncer
    blocks again."""
    host = crowdsec.host
    crowdsec.cscli("decisions", "add", "--ip", CLIENT4, "--duration", "2h", "-R", "test ban")
    wait_for("the bouncer's element", crowdsec.blocks)
    before = crowdsec_state(crowdsec)

    code, renames = killed_me(host, 0)  # a whole run: how many renames it makes
    assert code == 0 and not crowdsec.decisions() and len(renames) >= 4, (code, renames)
    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    wait_for("the state before", lambda: crowdsec_state(crowdsec) == before)

    torn = 0  # kills that left CrowdSec changed: the decision deleted, the parser written
    for when in range(1, len(renames) + 1):
        code, _ = killed_me(host, when)
        assert code in (-9, 137), (when, code)
        torn += crowdsec_state(crowdsec)[:2] != before[:2]
        next_command = host.unban("remove", "198.51.100.77") if when % 2 else host.unban("undo")
        assert next_command.returncode in (0, 2), (when, next_command.stderr)
        wait_for(f"the state before (kill {when})", lambda: crowdsec_state(crowdsec) == before)
    assert torn >= 2, (torn, renames)
    assert not host.reachable()
    listed = json.loads(host.unban("rollback", "--list", "--json").stdout)["change_sets"]
    assert {c["status"] for c in listed} <= {"failed", "rolled-back"}
