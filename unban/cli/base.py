"""What every command shares: the app, the global options, the error edge, output helpers.

Commands live in the sibling modules (one per help panel); `unban.cli` imports them in the
order their panels appear in `unban --help`.

The command modules do not use `from __future__ import annotations`: typer 0.23 (what Python 3.9
gets) reads a command's `Annotated[..., typer.Option(...)]` from the signature as it is, and a
string annotation there loses every option's names, help and callbacks. Their annotations must
therefore evaluate at import time on Python 3.9 (`Optional[...]`, no `X | Y`).
"""

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Callable, NoReturn, Optional

import typer
from typer._completion_shared import get_completion_script
from typer.core import TyperGroup

import unban
from unban.defaults import DEFAULT_STATE_DIR
from unban.errors import ExitStatus, UnbanError, os_error_text, printable
from unban.fail2ban import DEFAULT_CONFDIR
from unban.progress import Progress, stderr_is_terminal
from unban.settings import Settings

EXIT_CODES_HELP = (
    "Exit codes: 0 done or nothing to do; 1 failed, changes put back; 2 bad usage or input, "
    "nothing changed; 3 done, but something still blocks the address; 4 not root; "
    "5 failed and putting changes back failed too."
)

# Help panels, in the order `unban --help` shows them (and the man page).
RESCUE = "Rescue (start here)"
BLOCKS = "Find and remove blocks"
HISTORY = "History of changes"
EXEMPTIONS = "Exemptions from future bans"
GUARD = "Self-healing guard"
PANELS = (RESCUE, BLOCKS, HISTORY, EXEMPTIONS, GUARD)

# Global options and the values they take; accepted before or after the command.
GLOBAL_VALUE_OPTIONS = ("--fail2ban-conf", "--state-dir")
GLOBAL_FLAGS = ("--debug",)
# Command options also accepted before the command (moved after it).
COMMAND_FLAGS_BEFORE = ("--json", "--dry-run")


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """`unban find X --debug` as `unban --debug find X`; `unban --json find X` as
    `unban find X --json`. Nothing after `--` is touched."""
    head: list[str] = []
    moved_after: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in GLOBAL_VALUE_OPTIONS and index + 1 < len(args):
            head += [arg, args[index + 1]]
            index += 2
            continue
        if arg in COMMAND_FLAGS_BEFORE:
            moved_after.append(arg)
            index += 1
            continue
        if not arg.startswith("-") or arg == "--":
            break
        head.append(arg)
        index += 1
    if index >= len(args):
        return [*head, *moved_after]
    command, rest = args[index], list(args[index + 1 :])
    tail: list[str] = []
    index = 0
    while index < len(rest):
        arg = rest[index]
        if arg == "--":
            tail += rest[index:]
            break
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS:
            head.append(arg)
        elif name in GLOBAL_VALUE_OPTIONS and "=" in arg:
            head.append(arg)
        elif arg in GLOBAL_VALUE_OPTIONS and index + 1 < len(rest):
            head += [arg, rest[index + 1]]
            index += 1
        else:
            tail.append(arg)
        index += 1
    return [*head, command, *moved_after, *tail]


# `--show-completion SHELL` (README, scripts/build-deb) prints SHELL's script. typer's own
# `--show-completion` is a flag that prints the script of the shell it finds among the parent
# processes and leaves SHELL unread: bash's script for zsh under bash, and an error where no
# shell is above (a build, cron, a container's PID 1).
COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def completion_script(args: Sequence[str], prog_name: str) -> Optional[str]:
    """The completion script `args` asks for (`--show-completion SHELL`), or None."""
    if len(args) != 2 or args[0] != "--show-completion" or args[1] not in COMPLETION_SHELLS:
        return None
    complete_var = "_{}_COMPLETE".format(prog_name.replace("-", "_").upper())
    return get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=args[1])


def usage_error() -> Any:
    """click's UsageError class (vendored by typer >= 0.24)."""
    try:
        from typer._click.exceptions import UsageError  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        from click.exceptions import UsageError  # type: ignore[no-redef, import-not-found, unused-ignore]
    return UsageError


class UnbanGroup(TyperGroup):
    """The top-level group: global options are accepted after the command too."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        script = completion_script(args, ctx.info_name or "unban")
        if script is not None:
            typer.echo(script)
            ctx.exit(0)
        hoisted = hoist_global_options(args)
        words = hoisted[: hoisted.index("--")] if "--" in hoisted else hoisted
        ctx.meta["unban.json"] = "--json" in words
        return super().parse_args(ctx, hoisted)

    def invoke(self, ctx: Any) -> Any:
        """A command's usage error (an unknown option, a missing argument) with --json: also
        the error document on stdout, exit 2 as always."""
        from unban.contract import error_document

        try:
            return super().invoke(ctx)
        except usage_error() as exc:
            if not ctx.meta.get("unban.json"):
                raise
            exc.show()
            name = exc.ctx.info_name if exc.ctx is not None else ""
            write_json(error_document(name, printable(exc.format_message()), "UsageError", 2))
            raise typer.Exit(int(ExitStatus.USAGE)) from None

    def list_commands(self, ctx: Any) -> list[str]:
        """The rescue commands first: panels in PANELS order, commands as registered."""

        def rank(name: str) -> int:
            panel = getattr(self.commands[name], "rich_help_panel", None)
            return PANELS.index(panel) if panel in PANELS else len(PANELS)

        return sorted(super().list_commands(ctx), key=rank)


def helptext(summary: str, *paragraphs: str, examples: Sequence[str] = ()) -> str:
    """A command's help: a one-line summary (the command list shows it), paragraphs, examples.

    Paragraphs are single lines here, so the help wraps evenly at any terminal width. Square
    brackets are escaped (typer renders help as rich markup).
    """
    parts = [summary, *paragraphs]
    if examples:
        parts.append("Examples:\n" + "\n".join(f"  {line}" for line in examples))
    return "\n\n".join(part.replace("[", "\\[") for part in parts)


app = typer.Typer(
    name="unban",
    cls=UnbanGroup,
    help=helptext(
        "Get a locked-out SSH client back in, safely.",
        "Locked out? Run `unban me` from the SSH session that still works (or `unban me ADDRESS`"
        " from the console); `unban doctor ADDRESS` explains what refuses it; `unban undo` puts"
        " back the last change. Global options (--debug, --fail2ban-conf, --state-dir) go"
        " before or after the command.",
        EXIT_CODES_HELP,
        examples=(
            "unban me --dry-run",
            "unban find 203.0.113.4",
            "unban history",
            "unban undo",
        ),
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def settings(ctx: typer.Context) -> Settings:
    """This run's global options: the Settings the root callback put into the context (every
    command's context inherits it)."""
    found = ctx.find_object(Settings)
    return found if found is not None else Settings()


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, nothing else.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and the commands; change nothing.")
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"unban {unban.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    fail2ban_conf: Annotated[
        str, typer.Option("--fail2ban-conf", metavar="DIR", help="fail2ban's config dir.")
    ] = DEFAULT_CONFDIR,
    state_dir: Annotated[
        str,
        typer.Option(
            "--state-dir",
            metavar="DIR",
            envvar="UNBAN_STATE_DIR",
            help="Where unban keeps its change sets and backups (mode 0700).",
        ),
    ] = DEFAULT_STATE_DIR,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = Settings(fail2ban_conf=fail2ban_conf, state_dir=state_dir, debug=debug)


def guarded(body: Callable[[], int], ctx: typer.Context) -> None:
    """Run a command body; turn every error into one line on stderr and its exit code (with
    --json also the error document on stdout; tracebacks only with --debug)."""
    debug = settings(ctx).debug
    try:
        code = body()
    except UnbanError as exc:
        if debug:
            raise
        failed(exc, str(exc), int(exc.exit_status), ctx)
    except KeyboardInterrupt as exc:
        failed(exc, "interrupted", int(ExitStatus.FAILED), ctx)
    except OSError as exc:
        if debug:
            raise
        failed(exc, os_error_text(exc), int(ExitStatus.FAILED), ctx)
    except Exception as exc:
        if debug:
            raise
        message = f"unexpected error: {type(exc).__name__}: {exc} (--debug shows where)"
        failed(exc, message, int(ExitStatus.FAILED), ctx)
    raise typer.Exit(code)


def failed(exc: BaseException, message: str, code: int, ctx: typer.Context) -> NoReturn:
    """The error edge: the line on stderr; with --json the error document on stdout (and
    nothing else there); exit `code`. `ctx`: the command's."""
    from unban.contract import error_document, error_kind

    error_line(message)
    if ctx.params.get("json_output"):
        document = error_document(
            ctx.info_name or "",
            printable(message),
            error_kind(exc),
            code,
            dry_run=bool(ctx.params.get("dry_run")),
        )
        write_json(document)
    raise typer.Exit(code) from None


def write_json(document: Any) -> None:
    import json  # here: `unban --help` does not need it

    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def error_line(message: str) -> None:
    """The one way an error reaches stderr: one line, safe for a terminal and a cron mail
    (whatever the user typed or a file held, its control characters and escapes are shown
    escaped)."""
    typer.echo(f"unban: {printable(message)}", err=True)


@contextmanager
def changing(run: Settings, *, changes: bool = True, recover: bool = True) -> Iterator[None]:
    """Around every command that changes the host (`changes`: not a dry run): one at a time
    (waiting up to 30 s, and saying so), and first putting back what a killed unban left
    half-done."""
    from unban import recovery
    from unban.locking import CommandLock

    if not changes:
        yield
        return
    with CommandLock(run.state_dir, say=error_line):
        if recover:
            for line in recovery.recover(run.state_dir, run.fail2ban_conf):
                error_line(line)
        yield


def emit(as_json_output: bool, document: Any, lines: Iterable[str]) -> None:
    """`document` (unban.contract's, for --json) or the text `lines`."""
    if as_json_output:
        write_json(document)
    else:
        for line in lines:
            typer.echo(line)


def emit_for_people(
    as_json_output: bool, document: Any, lines: Iterable[str], tables: Callable[[], list[Any]]
) -> None:
    """JSON; or `tables()` (rich, imported only now) on a terminal; or plain `lines`."""
    if as_json_output or not stdout_is_terminal():
        emit(as_json_output, document, lines)
        return
    from rich.console import Console

    console = Console(highlight=False)
    for renderable in tables():
        console.print(renderable)


def progress(json_output: bool) -> Progress:
    """The progress line for a slow step: on a terminal only, never with --json."""
    return Progress(not json_output and stderr_is_terminal())


def stdout_is_terminal() -> bool:
    """Tables and colour only for a person at a terminal (NO_COLOR keeps the tables plain)."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def family(ipv4: bool, ipv6: bool) -> Optional[str]:
    if ipv4 and ipv6:
        return None
    return "ipv4" if ipv4 else "ipv6" if ipv6 else None
