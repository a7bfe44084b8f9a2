"""Unit tests never ask the kernel: nftables' generation id reads as unknown (every find dumps
its rules again, as without nf_tables), unless a test gives its own (tests/unit/test_nftgen.py)."""

from __future__ import annotations

import pytest

from unban.layers import xtables


@pytest.fixture(autouse=True)
def no_generation_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xtables, "generation", lambda: None)
    monkeypatch.setattr(xtables, "before_reads", lambda: None)
