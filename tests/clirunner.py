"""typer's CliRunner with stdout and stderr kept apart on every typer the project installs.

Newer runners always keep them apart (and take no `mix_stderr`); click 8.1's, which Python 3.9
resolves (Debian 11: typer 0.23 on click 8.1.8), mixes stderr into stdout unless told
otherwise, and then `result.stderr` raises.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.testing import CliRunner


def make_runner() -> CliRunner:
    options: dict[str, Any] = {}
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        options["mix_stderr"] = False
    return CliRunner(**options)
