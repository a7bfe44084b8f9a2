"""Throwaway network namespaces with real netfilter. Nothing here touches the host's rules."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import pytest

pytestmark = pytest.mark.root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.root)


class Netns:
    """A named network namespace (`ip netns add`); commands run inside it with `ip netns exec`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(
        self, *argv: str, input: Optional[str] = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} failed ({proc.returncode}): {proc.stderr}")
        return proc

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move this (single-threaded) test process into the namespace for in-process tests."""
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newnet = 0x40000000
        with open("/proc/self/ns/net") as home, open(f"/run/netns/{self.name}") as target:
            if libc.setns(target.fileno(), clone_newnet) != 0:
                raise OSError(ctypes.get_errno(), "setns into the test namespace failed")
            try:
                yield
            finally:
                if libc.setns(home.fileno(), clone_newnet) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the host namespace failed")

    def unban(self, *args: str, input: Optional[str] = None) -> subprocess.CompletedProcess[str]:
        """Run the real CLI inside the namespace."""
        return self.run(sys.executable, "-m", "unban", *args, input=input, check=False)

    def unban_json(self, *args: str) -> Any:
        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json.loads(proc.stdout)


def _create(prefix: str) -> Netns:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they make network namespaces)")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name)
    ns.run("ip", "link", "set", "lo", "up")
    return ns


def _delete(ns: Netns) -> None:
    subprocess.run(["ip", "netns", "del", ns.name], check=False)


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
