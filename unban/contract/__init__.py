"""The `--json` contract (schema_version 1; the schema is unban/schema/unban.schema.json,
README's "JSON output" explains it): explicit serialisation of the internal model, so the
model can change without changing what scripts and the Ansible modules read.

`core` has the shared shapes (envelope, finding, plan step, error), `commands` one document
per command. The CLI only calls these.
"""

from __future__ import annotations

from unban.contract import commands, core
from unban.contract.core import error_document, error_kind

__all__ = ["commands", "core", "error_document", "error_kind"]
