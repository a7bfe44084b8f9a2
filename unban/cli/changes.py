"""The history of changes: history, and rollback (the old name of undo, kept for scripts)."""

from typing import Annotated

import typer

from unban.cli.base import (
    HISTORY,
    DryRunOption,
    JsonOption,
    app,
    emit_for_people,
    guarded,
    helptext,
    settings,
)
from unban.cli.rescue import ChangeIdArgument, undo_body
from unban.errors import ExitStatus
from unban.settings import Settings
from unban.system import require_root


def history_body(json_output: bool, run: Settings, command: str) -> int:
    from unban import history, tables
    from unban.contract import commands as contract
    from unban.reverter import Reverter

    require_root()
    found = history.entries(Reverter(run.state_dir))
    emit_for_people(
        json_output,
        contract.history(command, found),
        history.history_lines(found),
        lambda: tables.history_table(found),
    )
    return ExitStatus.OK


@app.command(
    rich_help_panel=HISTORY,
    help=helptext(
        "Every change set: what it changed, whether undo can take it.",
        "Every command that changes something (me, heal runs, remove, delete, ignore, unignore)"
        " records one change set under the state dir; `unban undo ID` puts any of them back.",
        examples=("unban history", "unban history --json"),
    ),
)
def history(ctx: typer.Context, *, json_output: JsonOption = False) -> None:
    guarded(lambda: history_body(json_output, settings(ctx), "history"), ctx)


@app.command(
    rich_help_panel=HISTORY,
    help=helptext(
        "The old name of undo, kept for scripts; --list is history.",
        examples=("unban rollback --list", "unban rollback 7 --dry-run"),
    ),
)
def rollback(
    ctx: typer.Context,
    change_id: ChangeIdArgument = None,
    *,
    list_: Annotated[bool, typer.Option("--list", help="List the change sets.")] = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    if list_:
        guarded(lambda: history_body(json_output, settings(ctx), "rollback"), ctx)
    else:
        run = settings(ctx)
        guarded(lambda: undo_body(change_id, dry_run, json_output, run, "rollback"), ctx)
