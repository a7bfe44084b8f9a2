"""The kernel lookups the evaluator may ask, one key at a time: the only part of unban.path
that touches the system. Never a listing of a whole set: `ipset test` is the kernel's O(1)
lookup; xt_recent lists are read from /proc (one line per address the list holds)."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Optional, TypeVar

from unban.path.model import NftElement
from unban.system import run, which

T = TypeVar("T")


class SystemLookups:
    """ipset and xt_recent membership on this host (or the network namespace it runs in).

    Each key is asked of the kernel once per instance: one verdict's walks (the real one, the
    see-through one, and the rule's source keys) ask the same keys; a new read makes a new one.
    """

    def __init__(self) -> None:
        self._answers: dict[tuple[str, ...], Any] = {}

    def _once(self, key: tuple[str, ...], ask: Callable[[], T]) -> T:
        if key not in self._answers:
            self._answers[key] = ask()
        answer: T = self._answers[key]
        return answer

    def ipset_member(self, name: str, address: str) -> Optional[bool]:
        return self._once(("ipset", name, address), lambda: _ipset_member(name, address))

    def recent_member(self, name: str, address: str) -> Optional[bool]:
        return self._once(("recent", name, address), lambda: _recent_member(name, address))

    def nft_element(self, family: str, table: str, name: str, key: str) -> NftElement:
        from unban.path.nft_lookups import nft_element

        return self._once(
            ("nft", family, table, name, key), lambda: nft_element(family, table, name, key)
        )


def _ipset_member(name: str, address: str) -> Optional[bool]:
    if which("ipset") is None:
        return None
    result = run("ipset", ["ipset", "test", name, address], check=False, timeout=10)
    if result.returncode == 0:
        return True
    if "NOT in set" in result.stderr + result.stdout:
        return False
    return None


def _recent_member(name: str, address: str) -> Optional[bool]:
    try:
        with open(f"/proc/net/xt_recent/{name}") as handle:
            text = handle.read()
    except OSError:
        return None
    wanted = ipaddress.ip_address(address)
    for line in text.splitlines():
        if not line.startswith("src="):
            continue
        try:
            if ipaddress.ip_address(line[4:].split()[0]) == wanted:
                return True
        except ValueError:
            continue
    return False
