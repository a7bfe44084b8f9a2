"""Shell text back into argv, for the commands unban prints (layers build them with
shlex.join): the JSON contract gives each as an argv list where it is one plain command."""

from __future__ import annotations

import shlex
from typing import Optional

_OPERATORS = set("();<>|&")


def argv_of(text: str) -> Optional[list[str]]:
    """`text` as the argv of one plain command, or None when it is not one: a sequence (`;`,
    `&&`), a pipe or redirection, a comment, an unbalanced quote, or empty."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError:
        return None
    if not words:
        return None
    for word in words:
        if word.startswith("#") or (set(word) <= _OPERATORS):
            return None
    return words
