"""unban(8), generated from the commands themselves (`python -m unban._manpage > man/unban.8`).

tests/cli/test_manpage.py keeps man/unban.8 equal to this output, so the page never drifts
from `unban --help`. Not needed at run time; scripts/build-deb installs the committed page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import typer
import typer.main

import unban

FILES = (
    ("/etc/unban/unban.toml", "The addresses `unban heal` keeps unblocked (root-owned)."),
    ("/var/lib/unban", "The state dir: one change set per changing command (mode 0700)."),
    ("/etc/fail2ban", "fail2ban's config, read and (for ignore) edited in its .local files."),
    ("/etc/hosts.allow, /etc/hosts.deny", "TCP wrappers, as Debian's sshd reads them."),
)
ENVIRONMENT = (
    ("UNBAN_STATE_DIR", "The state dir when --state-dir is not given."),
    ("NO_COLOR", "When set, help, tables and doctor's report use no colour."),
)
SEE_ALSO = (
    "fail2ban-client(1), iptables(8), nft(8), ipset(8), ip(8), hosts_access(5), sshd_config(5)"
)


def roff(text: str) -> str:
    """Text as roff: backslashes, hyphens and line-leading dots escaped; rich's \\[ undone."""
    text = text.replace("\\[", "[").replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(f"\\&{line}" if line[:1] in (".", "'") else line for line in text.split("\n"))


def _paragraphs(help_text: str) -> Iterable[str]:
    for paragraph in help_text.split("\n\n"):
        if paragraph.startswith("Examples:"):
            yield ".PP\nExamples:\n.RS\n.nf"
            for line in paragraph.split("\n")[1:]:
                yield roff(line.strip())
            yield ".fi\n.RE"
        else:
            yield f".PP\n{roff(paragraph)}"


def _options(params: Iterable[Any], ctx: Any) -> Iterable[str]:
    for param in params:
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        yield f".TP\n\\fB{roff(_names(param, names))}\\fR\n{roff(help_text)}"


def _names(param: Any, shown: str) -> str:
    """`ID`, `-t, --table TABLE`, `--install <cron|systemd>`, whatever the help record shows:
    its metavars differ between typer releases (0.23, on Python 3.9, and newer)."""
    if param.param_type_name == "argument":
        return _value(param)
    names = ", ".join(sorted(param.opts, key=lambda opt: len(opt) - len(opt.lstrip("-"))))
    if param.secondary_opts:
        names += " / " + ", ".join(param.secondary_opts)
    if param.is_flag:
        return names
    choices = shown.rsplit(" ", 1)[-1]
    if "|" in choices:
        return f"{names} <{choices.strip('[]<>{}')}>"
    return f"{names} {_value(param)}"


def _value(param: Any) -> str:
    return str(param.metavar or param.name or "").upper()


def _usage(command: Any) -> str:
    """`[OPTIONS] ADDRESS`, `[OPTIONS] [ID]`: required arguments bare, optional ones bracketed."""
    pieces = ["[OPTIONS]"] if any(p.param_type_name == "option" for p in command.params) else []
    for param in command.params:
        if param.param_type_name == "argument":
            pieces.append(_value(param) if param.required else f"[{_value(param)}]")
    return " ".join(pieces)


def render(app: typer.Typer) -> str:
    try:  # typer >= 0.24 vendors click; 0.23 (Python 3.9, Debian 11) runs on click itself
        from typer import _click as click  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        import click  # type: ignore[no-redef, import-not-found, unused-ignore]

    from unban.cli.base import EXIT_CODES_HELP, PANELS

    group = typer.main.get_command(app)
    ctx = click.Context(group, info_name="unban")
    summary, *details = (group.help or "").split("\n\n")
    out = [
        f'.TH UNBAN 8 "" "unban {unban.__version__}" "System Administration"',
        ".SH NAME",
        f"unban \\- {roff(summary[0].lower() + summary[1:].rstrip('.'))}",
        ".SH SYNOPSIS",
        ".B unban",
        "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        *_paragraphs("\n\n".join(d for d in details if d != EXIT_CODES_HELP)),
        ".SH GLOBAL OPTIONS",
        *_options(group.params, ctx),
        ".SH COMMANDS",
    ]
    commands = group.commands  # type: ignore[attr-defined]
    names = group.list_commands(ctx)  # type: ignore[attr-defined]
    for panel in PANELS:
        out.append(f".SS {roff(panel)}")
        for name in names:
            command = commands[name]
            if getattr(command, "rich_help_panel", None) != panel:
                continue
            sub = click.Context(command, info_name=name, parent=ctx)
            out.append(f".TP\n\\fBunban {roff(name)}\\fR {roff(_usage(command))}")
            out.append(".RS")
            out.extend(_paragraphs(command.help or ""))
            options = list(_options(command.params, sub))
            if options:
                out.append(".PP\nOptions:")
                out.extend(options)
            out.append(".RE")
    out += [".SH EXIT STATUS", roff(EXIT_CODES_HELP), ".SH FILES"]
    out += [f".TP\n\\fI{roff(path)}\\fR\n{roff(what)}" for path, what in FILES]
    out.append(".SH ENVIRONMENT")
    out += [f".TP\n\\fB{name}\\fR\n{roff(what)}" for name, what in ENVIRONMENT]
    out += [".SH SEE ALSO", roff(SEE_ALSO)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    from unban.cli import app

    print(render(app), end="")
