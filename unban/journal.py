"""The write-ahead journal of a run's batches, in a reverter change set.

Every batch is written down, with everything needed to undo it, before it is applied (state
"pending"), and marked "applied" after; reverting marks it "reverted". A run killed anywhere
leaves a change set whose every batch is either done and marked, or pending: `revert_record`
finds out whether a pending batch happened before it undoes it, so undo neither misses a change
nor makes one twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from unban.address import parse_network
from unban.errors import ApplyError, UnbanError
from unban.layers import Layer
from unban.model import Batch, Finding, Step
from unban.reverter import PENDING, ChangeSet

ME_BATCH = "me-batch"  # change set action: one batch of a run, with its undo data
# Layers whose revert is harmless when the batch did not happen (fail2ban bans an address it
# bans already; `ipset restore -exist`, `ip -force -batch` and xt_recent re-add what is there).
# A pending batch of any other layer (a rule would be inserted twice) is reverted only once its
# layer no longer finds what the batch deletes.
IDEMPOTENT_REVERT = ("fail2ban", "ipset", "route", "xt_recent")


class ChangeSetJournal:
    """`engine.Journal` over a change set: one ME_BATCH action per batch (see the module doc).

    `record_of(batch)` is the batch as JSON (`unban.undo.batch_record`); it is recorded again once
    the batch is applied, when a layer knows its undo better (the bans fail2ban really lifted).
    `put_back(cause)` undoes the change set after a failure and returns the error to raise.
    """

    def __init__(
        self,
        change_set: ChangeSet,
        record_of: Callable[[Batch], dict[str, Any]],
        put_back: Callable[[Exception], ApplyError],
        **extra: Any,
    ) -> None:
        self.change_set = change_set
        self._record_of = record_of
        self._put_back = put_back
        self._extra = extra
        self._index: list[tuple[Batch, int]] = []

    def intent(self, batch: Batch) -> None:
        record = {**self._record_of(batch), **self._extra, "state": PENDING}
        self._index.append((batch, self.change_set.record_action(ME_BATCH, **record)))

    def applied(self, batch: Batch) -> None:
        index = next(i for b, i in reversed(self._index) if b is batch)
        self.change_set.mark_applied(index, **{**self._record_of(batch), **self._extra})

    def put_back(self, cause: Exception) -> ApplyError:
        return self._put_back(cause)


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def rebuild(record: Mapping[str, Any]) -> Batch:
    """The Batch a record saved, for layer.revert in a later process."""
    steps = []
    for step in record.get("steps", []):
        data = dict(step["finding"])
        for name in ("clears", "ports"):
            if name in data:
                data[name] = tuple(data[name])
        steps.append(Step(Finding(**data), str(step["command"]), str(step["undo_command"])))
    return Batch(
        str(record["layer"]),
        str(record["scope"]),
        tuple(steps),
        _tuples(list(record.get("payload", []))),
        _tuples(list(record.get("undo_payload", []))),
    )


def layer_finder(chosen: Callable[[], Sequence[Layer]]) -> Callable[[str], Layer]:
    """The layer of a name, from `chosen()` (made the first time one is asked for)."""
    by_name: dict[str, Layer] = {}

    def layer_named(name: str) -> Layer:
        if not by_name:
            by_name.update({layer.name: layer for layer in chosen()})
        if name not in by_name:
            raise UnbanError(f"no {name} layer here to undo that batch with")
        return by_name[name]

    return layer_named


def revert_record(action: Mapping[str, Any], layer_named: Callable[[str], Layer]) -> None:
    """Revert one ME_BATCH action with its layer; a pending one only as far as it happened."""
    if action.get("by_file") or action.get("by_fail2ban"):
        return  # the change set's files put it back; fail2ban's ban makes it again
    batch = rebuild(action)
    layer = layer_named(batch.layer)
    admits = any(step.finding.lift == "admit" for step in batch.steps)
    if action.get("state") == PENDING and batch.layer not in IDEMPOTENT_REVERT and not admits:
        happened = _happened(batch, layer)
        if happened is False:
            return
        if happened is None:
            undo = "; ".join(step.undo_command for step in batch.steps)
            raise UnbanError(
                f"{batch.layer} {batch.scope}: the run was cut short while this batch was applied, "
                "and only some of its rules are gone (something else changed them too): check "
                f"with `unban list` and put back the missing ones by hand: {undo}"
            )
    layer.revert(batch)


def _key(finding: Finding) -> tuple[Any, ...]:
    return (
        finding.backend,
        finding.family,
        finding.table,
        finding.chain,
        finding.rule,
        finding.set_name,
        finding.element,
    )


def _happened(batch: Batch, layer: Layer) -> Optional[bool]:
    """Did a batch that was cut short happen? True: everything it deletes is gone; False:
    all of it is still there; None: some of it. Its layer reads the system again."""
    wanted = Counter(_key(step.finding) for step in batch.steps)
    found: Counter[tuple[Any, ...]] = Counter()
    for network_text in {step.finding.network for step in batch.steps}:
        network = parse_network(network_text)
        if network is not None:
            found.update(_key(f) for f in layer.find(network) if f.layer == batch.layer)
    there = [found[key] >= count for key, count in wanted.items()]
    gone = [found[key] == 0 for key in wanted]
    if all(gone):
        return True
    if all(there):
        return False
    return None
