"""The command line. Thin: parse options, call the engine, print, map errors to exit codes.

The modules below register their commands in the order `unban --help` lists their panels:
the rescue commands first.
"""

from unban.cli import blocks, changes, guard, ignoring, rescue  # noqa: F401  (registration)
from unban.cli.base import app


def main() -> None:
    app(prog_name="unban")


__all__ = ["app", "main"]
