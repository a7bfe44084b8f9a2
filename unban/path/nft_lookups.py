"""Kernel lookups for the nft path evaluator: which element of a named set or map holds a key,
and which device an ingress chain is on. The only part of unban.path that runs nft (argv lists).

How (nft 1.0.6, 100,000 elements, each kind the only set of a netns's ruleset, on this
project's 2-core machine shared with other engineers; scripts/bench_nft_lookups.py, medians,
two runs, ms):

| set of 100k      | `-c delete element` present / absent | `get element` | `-j -t list table` |
| ---------------- | ------------------------------------ | ------------- | ------------------ |
| hash (ipv4_addr) | 20-25 / 16                           | 418-462       | 608-623            |
| concatenation    | 23-24 / 16-23                        | 1074-1535     | 1334-1377          |
| verdict map      | 20-24 / 23-24                        | 819-1800      | 881-1978           |
| interval         | 1302-1415 / 1772-2013                | 766-978       | 1079-1704          |

`nft -c delete element` is the kernel's own lookup in a transaction that is then aborted:
nothing is listed or changed; rc 1 when the key is absent. `get element` first fetches every
element of the table's sets (nft's cache), which is why it costs as much as a listing; it is
the only lookup that gives the interval holding a key and a map's value. So: exact sets and
concatenations by `-c delete` alone; maps by `-c delete`, then `get element` only when the key
is there (for its value); interval sets and maps by `get element`. With 400,000 elements in
four sets of one table, every nft command (even `-c delete`) took 0.6-4.7 s: nft fetches the
elements of every set of the table it caches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from unban.path.model import NftElement, NoLookups
from unban.path.nft_syntax import listed_elements, quote_name
from unban.system import run

LAYER = "nftables"
_ABSENT = "Could not process rule: No such file or directory"


class NftLookups(NoLookups):
    """`nft_element` against the running kernel. Set kinds (interval? map?) come from the same
    `nft -j -t list table` documents the walk reads; ipset and xt_recent membership stay
    unknown here (the caller's Lookups answers those and delegates `nft_element` to this)."""

    def __init__(self, docs: Sequence[Mapping[str, Any]] = ()) -> None:
        self._asked: dict[tuple[str, str, str, str], NftElement] = {}
        self._kinds: dict[tuple[str, str, str], tuple[bool, bool]] = {}
        for doc in docs:
            for item in doc.get("nftables", []):
                for kind in ("set", "map"):
                    if kind in item:
                        s = item[kind]
                        flags = s.get("flags", [])
                        flags = [flags] if isinstance(flags, str) else flags
                        key = (str(s["family"]), str(s["table"]), str(s["name"]))
                        self._kinds[key] = ("interval" in flags, kind == "map")

    def nft_element(self, family: str, table: str, name: str, key: str) -> NftElement:
        """Each key is asked once (several ways through the chains may ask it again)."""
        asked = (family, table, name, key)
        if asked not in self._asked:
            self._asked[asked] = self._lookup(family, table, name, key)
        return self._asked[asked]

    def _lookup(self, family: str, table: str, name: str, key: str) -> NftElement:
        base = [family, quote_name(table), quote_name(name), f"{{ {key} }}"]
        interval, is_map = self._kinds.get((family, table, name), (True, True))
        if not interval:
            check = run(LAYER, ["nft", "-c", "delete", "element", *base], check=False)
            if check.returncode != 0:
                return NftElement(False) if _ABSENT in check.stderr else NftElement(None)
            if not is_map:
                return NftElement(True, key)
        got = run(LAYER, ["nft", "get", "element", *base], check=False)
        if got.returncode != 0:
            return NftElement(False) if _ABSENT in got.stderr else NftElement(None)
        elements = parse_get_element(got.stdout)
        if not elements:
            return NftElement(None)
        element, value, _extras = elements[0]
        return NftElement(True, element, value)


def nft_element(family: str, table: str, name: str, key: str) -> NftElement:
    """One lookup without the tables' documents (for unban.path.lookups.SystemLookups): the
    set's kind from `nft -j -t list sets` and `list maps` (6 ms each at any size: no
    elements), then as NftLookups. Nothing is kept between calls: a lift may change the set."""
    return NftLookups(set_documents()).nft_element(family, table, name, key)


def set_documents() -> list[dict[str, Any]]:
    """`nft -j -t list sets` and `nft -j -t list maps`; [] for a listing nft refuses."""
    docs = []
    for kind in ("sets", "maps"):
        result = run(LAYER, ["nft", "-j", "-t", "list", kind], check=False)
        if result.returncode == 0:
            docs.append(json.loads(result.stdout))
    return docs


def parse_get_element(text: str) -> list[tuple[str, str, str]]:
    """(element, map value, extras) of each element `nft get element` printed:
    `203.0.113.4 timeout 1h expires 59m59s comment "x" : drop` -> ("203.0.113.4", "drop",
    'timeout 1h expires 59m59s comment "x"')."""
    found = []
    for item in listed_elements(text):
        left, value = _map_value(item)
        words = left.split(" ")
        cut = next(
            (i for i, w in enumerate(words) if w in ("timeout", "expires", "comment")), len(words)
        )
        found.append((" ".join(words[:cut]), value, " ".join(words[cut:])))
    return found


def _map_value(item: str) -> tuple[str, str]:
    """Split `KEY ... : VALUE` at the last ` : ` outside quotes."""
    quoted = False
    cut = -1
    for i, char in enumerate(item):
        if char == '"':
            quoted = not quoted
        elif not quoted and item.startswith(" : ", i):
            cut = i
    if cut < 0:
        return item, ""
    return item[:cut], item[cut + 3 :]


_TABLE = re.compile(r'^table (\S+) ("[^"]*"|\S+) \{')
_CHAIN = re.compile(r'^chain ("[^"]*"|\S+) \{')
_DEVICE = re.compile(r'hook ingress device "?([^";\s]+)"?')
_DEVICES = re.compile(r"hook ingress devices = \{ ([^}]*) \}")


def ingress_devices() -> dict[tuple[str, str, str], tuple[str, ...]]:
    """(family, table, chain) -> devices of every ingress chain, from `nft list chains` (nft
    1.0.6's JSON leaves the device out). Empty when nft cannot be run."""
    result = run(LAYER, ["nft", "list", "chains"], check=False)
    return parse_chain_devices(result.stdout) if result.returncode == 0 else {}


def parse_chain_devices(text: str) -> dict[tuple[str, str, str], tuple[str, ...]]:
    devices: dict[tuple[str, str, str], tuple[str, ...]] = {}
    table: Optional[tuple[str, str]] = None
    chain: Optional[str] = None
    for raw in text.splitlines():
        line = raw.strip()
        if m := _TABLE.match(line):
            table, chain = (m.group(1), m.group(2).strip('"')), None
        elif m := _CHAIN.match(line):
            chain = m.group(1).strip('"')
        elif table is not None and chain is not None:
            if m := _DEVICES.search(line):
                names = [d.strip().strip('"') for d in m.group(1).split(",")]
                devices[(*table, chain)] = tuple(n for n in names if n)
            elif m := _DEVICE.search(line):
                devices[(*table, chain)] = (m.group(1),)
    return devices
