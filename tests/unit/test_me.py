"""unban.me over in-memory layers and a hosts layer on temp files: one change set per run,
rollback of everything on a failure, `undo` in a later "process" from the change set alone."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import MemoryLayer
from unban import journal, me, transaction, undo
from unban.errors import ApplyError, ExitStatus, InputError
from unban.layers.hosts import HostsLayer
from unban.model import Batch, Finding, Step
from unban.reverter import Reverter

IP = "203.0.113.4"
TARGET = ipaddress.ip_network(IP)
DENY = f"# deny\nsshd: 198.51.100.7, {IP}\n"


class Box:
    def __init__(self, tmp_path: Path) -> None:
        self.allow = tmp_path / "hosts.allow"
        self.deny = tmp_path / "hosts.deny"
        self.allow.write_text("# allow\n")
        self.deny.write_text(DENY)
        self.state = tmp_path / "state"
        self.confdir = tmp_path / "no-fail2ban"
        self.memory = MemoryLayer("iptables", [("filter", f"{IP}/32"), ("raw", f"{IP}/32")])
        self.late = MemoryLayer("route", [("main", f"{IP}/32")])

    def hosts(self) -> HostsLayer:
        return HostsLayer(str(self.allow), str(self.deny), str(self.state), check_libwrap=False)

    def run(self, **kwargs: Any) -> me.MeResult:
        layers = kwargs.pop("layers", None) or [self.memory, self.hosts(), self.late]
        return me.run_me(
            TARGET,
            layers=layers,
            check_sshd=False,
            state_dir=str(self.state),
            confdir=str(self.confdir),
            **kwargs,
        )

    def change_sets(self) -> list[Any]:
        return Reverter(self.state).list()


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def test_one_change_set_holds_every_batch_and_the_files(box: Box) -> None:
    events: list[str] = []
    result = box.run(on_event=events.append)
    assert result.blocked and result.changed and result.status is ExitStatus.OK
    assert result.still_refused == ()
    assert box.memory.blocks == [] and box.late.blocks == []
    assert box.deny.read_text() == "# deny\nsshd: 198.51.100.7\n"
    assert events[0] == f"plan for {IP}: 4 change(s), in this order:"
    assert [e for e in events if e.startswith("done:")][-1].startswith("done: removed route")
    (info,) = box.change_sets()
    assert info.status == "done" and info.description == f"unban me {IP}"
    assert [r.path for r in info.files] == [str(box.deny)]
    kinds = [(a["kind"], a["layer"], a["by_file"]) for a in info.actions]
    assert kinds == [
        ("me-batch", "iptables", False),
        ("me-batch", "iptables", False),
        ("me-batch", "hosts", True),
        ("me-batch", "route", False),
    ]
    assert result.summary == f"{IP}: unblocked (4 change(s), `unban undo 1` puts them back)"
    assert (
        me.text_lines(result)[-1] == f"{IP} is now unblocked everywhere unban looks (checked again)"
    )


def test_a_second_run_has_nothing_to_do_and_leaves_no_change_set(box: Box) -> None:
    box.run()
    again = box.run()
    assert not again.blocked and not again.changed and again.status is ExitStatus.OK
    assert again.summary == f"{IP}: nothing to do"
    assert len(box.change_sets()) == 1


def test_dry_run_changes_nothing(box: Box) -> None:
    result = box.run(dry_run=True)
    assert result.dry_run and not result.changed and len(result.plan.steps) == 4
    assert box.deny.read_text() == DENY and len(box.memory.blocks) == 2
    assert box.change_sets() == []
    assert me.text_lines(result)[-2:] == [
        "dry run: nothing changed",
        f"{IP} would be unblocked everywhere unban looks",
    ]


def test_a_failing_later_batch_puts_everything_back(box: Box) -> None:
    box.late.fail_on = "main"
    with pytest.raises(ApplyError) as caught:
        box.run()
    assert caught.value.exit_status is ExitStatus.FAILED
    message = str(caught.value)
    assert "route: main refused the batch" in message and "rolled back" in message
    assert box.deny.read_text() == DENY
    assert sorted(box.memory.blocks) == [("filter", f"{IP}/32"), ("raw", f"{IP}/32")]
    (info,) = box.change_sets()
    assert info.status == "failed"  # put back: `unban undo` has nothing to undo


def test_broad_blocks_stay_and_are_said_with_their_fix(box: Box) -> None:
    box.memory.blocks.append(("filter", "203.0.113.0/24"))
    result = box.run()
    assert result.status is ExitStatus.STILL_BLOCKED
    (refusal,) = result.still_refused
    assert refusal.key == "iptables" and "203.0.113.0/24" in refusal.what
    assert refusal.fix == f"unban me {IP} --broad  (or: unblock 203.0.113.0/24)"
    assert me.last_line(result) == f"{IP} is still refused by: iptables (see the fixes above)"
    assert "still refused by 1 thing(s): iptables" in result.summary


def test_undo_in_a_later_process_from_the_change_set_alone(box: Box) -> None:
    box.run()
    fresh = [MemoryLayer("iptables"), box.hosts(), MemoryLayer("route")]
    undone = undo.undo(state_dir=str(box.state), confdir=str(box.confdir), layers=fresh)
    assert undone.change_set == "1"
    assert sorted(fresh[0].blocks) == [("filter", f"{IP}/32"), ("raw", f"{IP}/32")]  # type: ignore[attr-defined]
    assert fresh[2].blocks == [("main", f"{IP}/32")]  # type: ignore[attr-defined]
    assert box.deny.read_text() == DENY
    assert undone.restored == (f"restored {box.deny}",)
    assert box.change_sets()[0].status == "rolled-back"
    with pytest.raises(InputError, match="no change set to undo"):
        undo.undo(state_dir=str(box.state), confdir=str(box.confdir), layers=fresh)


def test_undo_refuses_when_a_later_change_set_changed_the_same_file(box: Box) -> None:
    box.run()
    later = Reverter(box.state).begin("ignore something")
    later.write(box.deny, b"# changed later\n")
    later.finalize()
    with pytest.raises(InputError, match="change set 2 .* made later, changed"):
        undo.undo(
            "1",
            state_dir=str(box.state),
            confdir=str(box.confdir),
            layers=[box.memory, box.hosts(), box.late],
        )
    assert box.deny.read_text() == "# changed later\n"


def test_records_rebuild_the_same_batch() -> None:
    finding = Finding(
        "fail2ban", "server", "ipv4", "", "sshd", None, None, "banned", "ban",
        "fail2ban:sshd", f"{IP}/32", True, clears=("hosts",),
    )  # fmt: skip
    batch = Batch("fail2ban", "server", (Step(finding, "c", "u"),), (("unbanip", "sshd", IP),),
                  (("banip", "sshd", IP),))  # fmt: skip
    record = undo.batch_record(batch, object())
    assert journal.rebuild(record) == batch
    assert record["summary"] == f"fail2ban server: unban {IP} in fail2ban jail sshd"
    notes = undo.cannot_restore([record])
    assert notes and "start times" in notes[0]


def test_layer_groups() -> None:
    layers = [MemoryLayer("fail2ban"), MemoryLayer("iptables"), MemoryLayer("hosts")]
    assert [x.name for x in me.select_layers(layers, ["firewall"])] == ["iptables"]  # type: ignore[arg-type]
    assert [x.name for x in me.select_layers(layers, None)] == ["fail2ban", "iptables", "hosts"]  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown layer group"):
        me.select_layers(layers, ["walls"])  # type: ignore[arg-type]


def test_a_cidr_target_says_hosts_files_are_not_checked(box: Box) -> None:
    result = me.run_me(
        ipaddress.ip_network("203.0.113.0/24"),
        layers=[box.hosts()],
        check_sshd=False,
        state_dir=str(box.state),
        confdir=str(box.confdir),
    )
    assert not result.changed
    assert any("single addresses only" in note for note in result.notes)


def _finding(layer: str, owner: str, network: str = f"{IP}/32", **kw: Any) -> Finding:
    return Finding(
        layer, "b", "ipv4", "t", "c", 1, None, "rule", "REJECT", owner, network,
        kw.pop("targeted", True), **kw,
    )  # fmt: skip


def test_fail2ban_leftovers_are_what_its_unban_should_have_lifted() -> None:
    ban = _finding("fail2ban", "fail2ban:sshd", clears=("route",))
    ban = Finding(**{**ban.__dict__, "chain": "sshd", "backend": "server"})
    applied = [Batch("fail2ban", "server", (Step(ban, "c", "u"),), (), ())]
    rule = _finding("iptables", "fail2ban:sshd")
    other_jail = _finding("iptables", "fail2ban:recidive")
    route = _finding("route", "manual")
    hand = _finding("hosts", "manual")
    wide = _finding("iptables", "fail2ban:sshd", "203.0.113.0/24", targeted=False)
    from unban.model import Report

    after = Report(IP, (rule, other_jail, route, hand, wide))
    assert transaction.fail2ban_leftovers(after, applied, TARGET) == [rule, route]
    assert transaction.fail2ban_leftovers(after, [], TARGET) == []
