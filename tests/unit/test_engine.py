from __future__ import annotations

import os
import signal
from collections.abc import Sequence

import pytest

from tests.fakes import MemoryLayer
from unban import engine
from unban.address import parse_target
from unban.errors import ApplyError, ExitStatus
from unban.model import Batch, Finding
from unban.render import plan_text


def three_scopes() -> MemoryLayer:
    return MemoryLayer(
        "memory",
        [
            ("a", "203.0.113.4/32"),
            ("b", "203.0.113.4/32"),
            ("c", "203.0.113.4/32"),
            ("a", "203.0.113.0/24"),
            ("a", "198.51.100.1/32"),
        ],
    )


def test_plan_takes_targeted_findings_and_skips_broad_ones() -> None:
    layer = three_scopes()
    plan = engine.plan(engine.find(parse_target("203.0.113.4"), [layer]), [layer])
    assert [b.scope for b in plan.batches] == ["a", "b", "c"]
    assert [f.network for f in plan.skipped] == ["203.0.113.0/24"]
    broad = engine.plan(engine.find(parse_target("203.0.113.4"), [layer]), [layer], broad=True)
    assert broad.skipped == ()
    assert [s.finding.network for s in broad.batches[0].steps] == [
        "203.0.113.4/32",
        "203.0.113.0/24",
    ]


def test_a_failure_reverts_the_applied_batches_newest_first() -> None:
    layer = three_scopes()
    layer.fail_on = "c"
    before = sorted(layer.blocks)
    plan = engine.plan(engine.find(parse_target("203.0.113.4"), [layer]), [layer])
    with pytest.raises(ApplyError) as caught:
        engine.apply(plan, [layer])
    assert layer.journal == ["apply a", "apply b", "revert b", "revert a"]
    assert sorted(layer.blocks) == before
    assert "c refused the batch" in str(caught.value)
    assert caught.value.exit_status == ExitStatus.FAILED


def test_a_failed_revert_is_said_and_has_its_own_exit_code() -> None:
    layer = three_scopes()
    layer.fail_on = "c"

    def broken_revert(batch: Batch) -> None:
        raise RuntimeError("kernel said no")

    layer.revert = broken_revert  # type: ignore[method-assign]
    plan = engine.plan(engine.find(parse_target("203.0.113.4"), [layer]), [layer])
    with pytest.raises(ApplyError) as caught:
        engine.apply(plan, [layer])
    assert caught.value.exit_status == ExitStatus.ROLLBACK_FAILED
    assert "putting back the earlier changes failed too" in str(caught.value)
    assert "memory a: kernel said no" in str(caught.value)


def test_sigterm_during_a_batch_lets_it_finish_then_rolls_back() -> None:
    layer = three_scopes()
    before = sorted(layer.blocks)

    def terminate_during_b(batch: Batch) -> None:
        if batch.scope == "b":
            os.kill(os.getpid(), signal.SIGTERM)

    layer.on_apply = terminate_during_b
    plan = engine.plan(engine.find(parse_target("203.0.113.4"), [layer]), [layer])
    with pytest.raises(ApplyError, match="stopped by signal SIGTERM"):
        engine.apply(plan, [layer])
    assert layer.journal == ["apply a", "apply b", "revert b", "revert a"]
    assert sorted(layer.blocks) == before
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_success_reports_every_applied_batch() -> None:
    layer = three_scopes()
    seen: list[str] = []
    plan = engine.plan(engine.find(parse_target("203.0.113.4"), [layer]), [layer])
    outcome = engine.apply(plan, [layer], on_batch=lambda b: seen.append(b.scope))
    assert seen == ["a", "b", "c"]
    assert [b.scope for b in outcome.applied] == ["a", "b", "c"]
    assert engine.find(parse_target("203.0.113.4"), [layer]).findings[0].network == "203.0.113.0/24"


def test_findings_a_layer_declines_are_listed_as_skipped() -> None:
    """firewalld's table belongs to firewall-cmd: the nft layer plans nothing for it."""

    class Declining(MemoryLayer):
        def plan(self, findings: Sequence[Finding]) -> list[Batch]:
            return super().plan([f for f in findings if f.table != "firewalld"])

    layer = Declining("memory", [("a", "203.0.113.4/32"), ("firewalld", "203.0.113.4/32")])
    plan = engine.plan(engine.find(parse_target("203.0.113.4"), [layer]), [layer])
    assert [b.scope for b in plan.batches] == ["a"]
    assert [(f.table, f.targeted) for f in plan.skipped] == [("firewalld", True)]
    assert "left alone, owned by another tool" in "\n".join(plan_text(plan))
