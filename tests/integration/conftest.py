"""Throwaway network namespaces with real netfilter. Nothing here touches the host's rules.

`Netns` lives in unban/_sandbox.py (shared with scripts/sandbox); it is re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pytest

from unban._sandbox import Netns

__all__ = ["Netns", "netns", "run_many"]

pytestmark = pytest.mark.root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.root)


def _create(prefix: str) -> Netns:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they make network namespaces)")
    return Netns.create(prefix)


def _delete(ns: Netns) -> None:
    ns.delete()


@pytest.fixture
def netns() -> Iterator[Netns]:
    ns = _create("unban-t")
    try:
        yield ns
    finally:
        _delete(ns)


def run_many(ns: Netns, commands: Sequence[Sequence[str]]) -> None:
    for argv in commands:
        ns.run(*argv)
