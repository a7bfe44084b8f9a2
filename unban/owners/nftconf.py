"""nftables.service's /etc/nftables.conf (and the files it `include`s) as an owner.

At boot nftables.service runs `nft -f /etc/nftables.conf`: an element saved in a set's
`elements = { ... }`, or a rule dropping the address, is back then (and at every `systemctl
reload nftables`) however often the kernel's copy is deleted. This owner takes exactly that
text out: the element (with one comma next to it) from the set, or the rule's statement; when
a set's last element goes, its `elements = { ... }` goes; a rule whose anonymous set loses its
last element goes. Every other byte (formatting, comments, other elements) stays.

Found: elements of named sets that a rule of the same table drops or rejects by source
(`ip saddr @NAME drop`), and rules with `ip saddr ADDR` / `ip6 saddr ADDR` (or an anonymous
set of them) and a drop or reject verdict. Checked with `nft -c -f -` on the whole config with
its includes inlined (the edited file's new text in its place), before and after the edit.
The scanner that finds and cuts them is unban.owners.nftconf_scan, loaded only for a file that
drops or rejects something.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from unban.address import Network
from unban.owners.files import FileOwner, Hit, read_text
from unban.reverter import DEFAULT_STATE_DIR
from unban.system import first_line, run

if TYPE_CHECKING:
    from unban.owners.nftconf_scan import Cut

NFT_CONF = "/etc/nftables.conf"
LAYER = "nftables.conf"
OWNER = "nftables.service"
INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"', re.MULTILINE)


# ---------------------------------------------------------------- includes (pure)


def includes(text: str, path: str) -> list[str]:
    """The files an nft file includes, in order (globs sorted, relative to its directory)."""
    found = []
    for pattern in INCLUDE.findall(text):
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(path), pattern)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        found.extend(matches)
    return found


def flattened(path: str, texts: dict[str, str], seen: Optional[set[str]] = None) -> str:
    """`path` with every include replaced by the included text (from `texts`, else the disk),
    so `nft -c -f -` checks the config as it would be after an edit."""
    seen = set() if seen is None else seen
    if path in seen:
        return ""
    seen.add(path)
    text = texts.get(path)
    if text is None:
        text = read_text(path) or ""
    out = []
    for line in text.splitlines(keepends=True):
        match = INCLUDE.match(line)
        if not match:
            out.append(line)
            continue
        for included in includes(line, path):
            out.append(flattened(included, texts, seen) + "\n")
    return "".join(out)


# ---------------------------------------------------------------- the owner


class NftConfOwner(FileOwner):
    """/etc/nftables.conf and its includes."""

    name = LAYER
    owner = OWNER
    when = "at the next boot or `systemctl reload nftables` (`nft -f /etc/nftables.conf`)"

    def __init__(self, conf: str = NFT_CONF, *, state_dir: str = DEFAULT_STATE_DIR) -> None:
        super().__init__(state_dir)
        self.conf = conf
        self._cuts: dict[tuple[str, Hit], Cut] = {}

    def files(self) -> list[str]:
        order: list[str] = []
        todo = [self.conf]
        while todo:
            path = todo.pop(0)
            if path in order:
                continue
            order.append(path)
            text = read_text(path)
            if text is not None:
                todo.extend(includes(text, path))
        return order

    def hits(self, path: str, text: str, target: Network) -> list[Hit]:
        if "drop" not in text and "reject" not in text:
            return []  # nothing here drops anything (Debian's default file): no scan to load
        from unban.owners.nftconf_scan import find_cuts

        found = find_cuts(text, target)
        for hit, cut in found:
            self._cuts[(path, hit)] = cut
        return [hit for hit, _cut in found]

    def rewrite(self, path: str, text: str, hits: Sequence[Hit]) -> str:
        from unban.owners.nftconf_scan import cut_text

        return cut_text(text, [self._cuts[(path, hit)] for hit in hits])

    def by_hand(self, path: str, hit: Hit) -> str:
        if hit.element is None:
            return super().by_hand(path, hit)
        return f"take {hit.element} out of the set on line {hit.line} of {path}, then nft -c -f {self.conf}"

    def check(self, path: str, text: str) -> str:
        config = flattened(self.conf, {path: text})
        done = run(self.name, ["nft", "-c", "-f", "-"], stdin=config, check=False)
        return "" if done.returncode == 0 else f"nft -c: {first_line(done.stderr)}"
