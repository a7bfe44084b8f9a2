"""Putting change sets back: the undo handler of every kind of change unban records, and the
recovery of change sets that a killed unban left half-done.

`recover` runs at the start of every changing command (under the command lock): a change set
still "in-progress" whose process is gone is put back first (every batch that happened, or may
have, is reverted; unban's file edits are taken out), so the host is always as it was before
such a run or as it was after a finished one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from unban import engine
from unban.errors import ReverterError, UnbanError
from unban.layers import Layer
from unban.reverter import FAILED, Reverter, UndoHandler
from unban.settings import Settings

if TYPE_CHECKING:
    from unban.exemptions import Exemption


def undo_handlers(
    confdir: str,
    state_dir: str,
    layers: Optional[Sequence[Layer]] = None,
    exemptions: Optional[Sequence[Exemption]] = None,
) -> dict[str, UndoHandler]:
    """How to undo each kind of recorded change (the layers are made when first needed; the
    exemptions of every ban source, unban.exemptions', unless given)."""
    from unban.exemptions import EXEMPTION_KIND, default_exemptions, undo_action
    from unban.fail2ban import database
    from unban.fail2ban.ignoreip import IGNORE_KIND, undo_live
    from unban.journal import ME_BATCH, layer_finder, revert_record

    layer_named = layer_finder(
        lambda: (
            layers if layers is not None else engine.default_layers(Settings(confdir, state_dir))
        )
    )
    return {
        ME_BATCH: lambda action: revert_record(action, layer_named),
        IGNORE_KIND: undo_live,
        database.ROWS_KIND: database.undo_rows,
        EXEMPTION_KIND: lambda action: undo_action(
            action, default_exemptions(confdir) if exemptions is None else exemptions
        ),
    }


def undo_check(confdir: str) -> Callable[[Any], None]:
    """Refuses (before anything is touched) to put rows back under a running fail2ban."""
    from unban.fail2ban.config import server_paths
    from unban.fail2ban.ignoreip import rollback_check

    return rollback_check(lambda: server_paths(confdir).socket)


def recover(state_dir: str, confdir: str, layers: Optional[Sequence[Layer]] = None) -> list[str]:
    """Put back every change set a killed unban left in progress; one line for each."""
    reverter = Reverter(state_dir)
    lines = []
    reverter.discard_unstarted()
    for info in reverter.incomplete():
        try:
            reverter.rollback(
                info.id,
                handlers=undo_handlers(confdir, state_dir, layers),
                check=undo_check(confdir),
                status=FAILED,
            )
        except UnbanError as exc:
            raise ReverterError(
                f"change set {info.id} ({info.description}) was cut short (unban was killed), "
                f"and putting it back failed: {exc}. Nothing else was done; fix that, then run "
                f"`unban undo {info.id}`"
            ) from None
        lines.append(
            f"change set {info.id} ({info.description}) was cut short (unban was killed): "
            "put back what it had changed"
        )
    return lines
