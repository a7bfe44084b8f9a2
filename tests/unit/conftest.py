"""Unit tests never ask the kernel: nftables' generation id reads as unknown (every find dumps
its rules again, as without nf_tables), unless a test gives its own (tests/unit/test_nftgen.py),
and a dump of nft rule handles or a delete by handle over netlink fails the test unless it
gives its own kernel."""

from __future__ import annotations

from typing import Any

import pytest

from unban.layers import xtables


@pytest.fixture(autouse=True)
def no_generation_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xtables, "generation", lambda: None)
    monkeypatch.setattr(xtables, "before_reads", lambda: None)
    monkeypatch.setattr(xtables, "delete_at", no_netlink)
    monkeypatch.setattr(xtables, "rule_handles", no_netlink)


def no_netlink(*args: Any) -> bool:
    raise AssertionError(f"a unit test asked the kernel for nft rule handles: {args}")
