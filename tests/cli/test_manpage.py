"""man/unban.8 is generated from the commands: the committed page is what they say now."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from unban import _manpage, cli

PAGE = Path(__file__).resolve().parents[2] / "man" / "unban.8"


def test_the_committed_man_page_is_the_generated_one() -> None:
    generated = _manpage.render(cli.app)
    assert PAGE.read_text() == generated, "run: .venv/bin/python -m unban._manpage > man/unban.8"


def test_every_command_and_global_option_is_in_the_page() -> None:
    text = PAGE.read_text()
    for name in get_command(cli.app).commands:  # type: ignore[attr-defined]
        assert f"\\fBunban {name}\\fR" in text
    for option in ("debug", "fail2ban\\-conf", "state\\-dir", "version"):
        assert f"\\fB\\-\\-{option}" in text
    assert "\n.SH EXIT STATUS\n" in text and "\n.SH FILES\n" in text


def test_roff_escapes_what_roff_would_read_as_requests() -> None:
    assert _manpage.roff(".hidden\n'quoted\nrm -rf \\[x]") == "\\&.hidden\n\\&'quoted\nrm \\-rf [x]"
