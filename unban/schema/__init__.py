"""The JSON Schema of every command's `--json` output (README, "JSON output"), shipped as
package data so a reader on the host can validate against the schema of the unban it runs."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_FILE = "unban.schema.json"


def schema_text() -> str:
    # Imported here: importlib.resources (with tempfile) costs every command ~5 ms, and only
    # a reader of the schema needs it; the commands import this module for SCHEMA_VERSION.
    from importlib import resources

    return resources.files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded
