"""The --json contract as tests check it: the whole of stdout is one document, valid against
the schema unban ships (unban/schema), with the process's exit code in it."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from unban.schema import schema

VALIDATOR = jsonschema.Draft202012Validator(schema())


def validated(stdout: str, exit_code: int | None = None) -> dict[str, Any]:
    """The document `stdout` holds (nothing else may be there), checked against the schema
    and, when given, against the exit code the process returned."""
    document = json.loads(stdout)
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors[:10]
    )
    if exit_code is not None:
        assert document["exit_code"] == exit_code, (document["exit_code"], exit_code)
    assert isinstance(document, dict)
    return document


def owner_of(finding: dict[str, Any]) -> str:
    """A finding's owner as unban's text names it: `fail2ban:sshd` for a jail's, else the
    owner."""
    return f"{finding['owner']}:{finding['jail']}" if finding["jail"] else finding["owner"]
