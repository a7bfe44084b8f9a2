"""Boot-time rules files as owners: the lines that keep a block, taken out and put back.

A file owner (rules.v4, ipsets, nftables.conf) finds `Hit`s in its files; `plan` makes one
batch per file whose payload is the line edits (`LineEdit`) that take the chosen hits out and
whose undo payload is their inverse. Every other byte of the file stays. Both are plain tuples,
so `unban undo` can rebuild them from the change set's JSON in a later process.

An edit is found by its lines, not only by its number: `apply_edits` makes it at its line when
the lines there (and the lines on either side) still read as they did, else at the one place
where they read so; when there is none, or more than one, it raises ValueError and nothing is
written. So an undo puts back
only what unban took out, even after other lines of the file changed.

Writing: the file is refused (its findings stay, declined by `plan`, so the run ends "still
refused") when it is a symlink, not a regular file, writable by group or others, or fails its
own tool's check before unban touches it. The result must pass the same check (`iptables-restore
--test`, `nft -c`, ...) before it replaces the file atomically, keeping owner and mode, after a
backup in a change set (`change_set`, or one per batch that `unban rollback` restores).
"""

from __future__ import annotations

import difflib
import os
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Optional

from unban.address import Network
from unban.errors import LayerError, RuleChangedError
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step
from unban.reverter import DEFAULT_STATE_DIR, ChangeSet, Reverter, atomic_write, batch_change_set

# (first line, 1-based; the lines there; the lines they become; the line before them and the
# line after them, "" at the start or the end of the file)
LineEdit = tuple[int, tuple[str, ...], tuple[str, ...], str, str]


@dataclass(frozen=True)
class Hit:
    """One place in a file that keeps a block on (part of) the target."""

    line: int  # 1-based, where the rule or element is
    rule: str  # the rule (or the set's element line) as the file shows it
    network: str
    targeted: bool
    family: str
    table: str = ""
    chain: Optional[str] = None
    set_name: Optional[str] = None
    element: Optional[str] = None
    verdict: str = "drop"
    # False: in a chain a new SYN to sshd never passes (FORWARD, OUTPUT, POSTROUTING); None:
    # not judged. `unban me` leaves the False ones alone, as it does their kernel copies.
    on_path: Optional[bool] = None


@dataclass(frozen=True)
class _Seen:
    path: str
    text: str  # the file as `find` read it
    hit: Hit
    problem: str  # why the file is not changed ("" when it can be)


# ---------------------------------------------------------------- pure parts


def unsafe_reason(path: str) -> str:
    """Why unban must not rewrite `path`, or "" (as the other config files are refused)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symlink (to {os.readlink(path)})"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    if info.st_uid not in (0, os.geteuid()):
        return f"{path} is owned by uid {info.st_uid}, not root"
    return ""


def line_edits(before: str, after: str) -> tuple[LineEdit, ...]:
    """The line edits that make `after` of `before`. Pure."""
    old = before.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    edits = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            before_line = old[i1 - 1] if i1 > 0 else ""
            after_line = old[i2] if i2 < len(old) else ""
            edits.append((i1 + 1, tuple(old[i1:i2]), tuple(new[j1:j2]), before_line, after_line))
    return tuple(edits)


def inverse(edits: Sequence[LineEdit]) -> tuple[LineEdit, ...]:
    """The edits that undo `edits`, numbered for the file after them."""
    shift = 0
    out = []
    for start, old, new, before_line, after_line in sorted(edits):
        out.append((start + shift, new, old, before_line, after_line))
        shift += len(new) - len(old)
    return tuple(out)


def _place(lines: Sequence[str], edit: LineEdit) -> int:
    """The 0-based index where `edit` applies in `lines`; ValueError when nowhere (or unsure)."""
    start, old, _new, before_line, after_line = edit

    def fits(at: int) -> bool:
        end = at + len(old)
        if tuple(lines[at:end]) != old:
            return False
        if (lines[at - 1] if at > 0 else "") != before_line:
            return False
        return (lines[end] if end < len(lines) else "") == after_line

    if 0 <= start - 1 <= len(lines) and fits(start - 1):
        return start - 1
    places = [at for at in range(len(lines) + 1) if fits(at)]
    if len(places) != 1:
        what = "".join(old).strip() or f"the lines after {before_line.strip()!r}"
        raise ValueError(f"line {start} ({what}) is not where it was")
    return places[0]


def apply_edits(text: str, edits: Sequence[LineEdit]) -> str:
    """`text` with `edits` made, each found by its lines (see the module docstring). Pure."""
    lines = text.splitlines(keepends=True)
    placed = [(_place(lines, edit), edit) for edit in edits]
    for at, (_start, old, new, _before, _after) in sorted(placed, key=lambda p: p[0], reverse=True):
        lines[at : at + len(old)] = list(new)
    return "".join(lines)


def edit_command(path: str, edit: LineEdit) -> str:
    """The sed command that makes `edit` by hand, for the file as it was read."""
    start, old, new, _before, _after = edit
    quoted = shlex.quote(path)
    end = start + len(old) - 1
    span = f"{start}" if end == start else f"{start},{end}"
    texts = [line.rstrip("\n").replace("\\", "\\\\") for line in new]
    if not old:
        return f"sed -i {shlex.quote(f'{start}i ' + chr(92) + chr(10).join(texts))} {quoted}"
    if not new:
        return f"sed -i '{span}d' {quoted}"
    return f"sed -i {shlex.quote(span + 'c' + chr(92) + (chr(92) + chr(10)).join(texts))} {quoted}"


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------- the owner


class FileOwner:
    """The Layer protocol for a set of rules files; subclasses say what a hit is and how a file
    is checked (`files`, `hits`, `rewrite`, `check`, `when`)."""

    name = ""
    owner = ""
    when = "at the next boot"  # when a block kept here comes back

    def __init__(self, state_dir: str = DEFAULT_STATE_DIR) -> None:
        self.state_dir = state_dir
        # A caller's change set to back files up into (unban me's: me._recording_into);
        # None: each batch begins its own.
        self.change_set: Optional[ChangeSet] = None
        self._seen: dict[Finding, _Seen] = {}
        self._own: dict[Batch, str] = {}

    # -- what a subclass says

    def files(self) -> list[str]:
        raise NotImplementedError

    def hits(self, path: str, text: str, target: Network) -> list[Hit]:
        raise NotImplementedError

    def rewrite(self, path: str, text: str, hits: Sequence[Hit]) -> str:
        """`text` without `hits`; by default their lines are deleted."""
        gone = {hit.line for hit in hits}
        lines = text.splitlines(keepends=True)
        return "".join(line for number, line in enumerate(lines, 1) if number not in gone)

    def check(self, path: str, text: str) -> str:
        """The file's own tool's complaint about `text` as `path`, or "" when it is valid."""
        raise NotImplementedError

    def by_hand(self, path: str, hit: Hit) -> str:
        """How a person takes `hit` out of `path` (its line goes)."""
        return f"sed -i '{hit.line}d' {shlex.quote(path)}"

    # -- reading

    def status(self) -> list[LayerStatus]:
        present = [path for path in self.files() if os.path.lexists(path)]
        if not present:
            return [LayerStatus(self.name, False, "no rules file here")]
        return [LayerStatus(self.name, True, ", ".join(present))]

    def listings(self, query: ListQuery) -> list[Listing]:
        return []

    def find(self, target: Network) -> list[Finding]:
        findings = []
        for path in self.files():
            text = read_text(path)
            if text is None:
                continue
            hits = self.hits(path, text, target)
            if not hits:
                continue
            problem = unsafe_reason(path) or self._own_check(path, text)
            for hit in hits:
                finding = self._finding(path, hit, problem)
                self._seen[finding] = _Seen(path, text, hit, problem)
                findings.append(finding)
        return findings

    def _own_check(self, path: str, text: str) -> str:
        complaint = self.check(path, text)
        return f"{path} fails its own check before any change ({complaint})" if complaint else ""

    def _finding(self, path: str, hit: Hit, problem: str) -> Finding:
        rule = hit.rule
        if problem:
            rule += (
                f"  [not changed: {problem}; it comes back {self.when}; "
                f"clear it by hand: {self.by_hand(path, hit)}]"
            )
        return Finding(
            layer=self.name,
            backend=self.owner,
            family=hit.family,
            table=path,
            chain=hit.chain,
            line=hit.line,
            handle=None,
            rule=rule,
            verdict=hit.verdict,
            owner=self.owner,
            network=hit.network,
            targeted=hit.targeted,
            set_name=hit.set_name,
            element=hit.element,
            source=f"{path}:{hit.line}",
            on_path=hit.on_path,
        )

    # -- planning and changing

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        per_file: dict[str, list[tuple[Finding, _Seen]]] = {}
        for finding in findings:
            seen = self._seen.get(finding)
            if seen is not None and not seen.problem:
                per_file.setdefault(seen.path, []).append((finding, seen))
        batches = []
        for path, found in per_file.items():
            text = found[0][1].text
            after = self.rewrite(path, text, [seen.hit for _f, seen in found])
            edits = line_edits(text, after)
            undo = inverse(edits)
            steps = []
            for finding, seen in found:
                at = _covering(edits, seen.hit.line)
                command = f"# {path}: nothing to change"
                undo_command = "unban undo"
                if at is not None:
                    command = edit_command(path, edits[at])
                    undo_command = edit_command(path, undo[at])
                steps.append(Step(finding, command, undo_command))
            payload = tuple(("edit", *e) for e in edits)
            undo_payload = tuple(("edit", *e) for e in undo)
            batches.append(Batch(self.name, path, tuple(steps), payload, undo_payload))
        return batches

    def apply(self, batch: Batch) -> None:
        path = batch.scope
        self._write(batch, path, _edits(batch.payload), "take the block out")

    def revert(self, batch: Batch) -> None:
        change_id = self._own.pop(batch, None)
        if change_id is not None:
            Reverter(self.state_dir).rollback(change_id)
            return
        text = read_text(batch.scope) or ""
        try:
            apply_edits(text, _edits(batch.payload))
        except ValueError:
            pass
        else:
            return  # the lines are back already (the change set's backup, or an earlier undo)
        self._write(batch, batch.scope, _edits(batch.undo_payload), "put the block back", own=False)

    def _write(
        self, batch: Batch, path: str, edits: Sequence[LineEdit], what: str, *, own: bool = True
    ) -> None:
        problem = unsafe_reason(path)
        if problem:
            raise LayerError(self.name, f"cannot {what} in {path}: {problem}")
        text = read_text(path) or ""
        try:
            after = apply_edits(text, edits)
        except ValueError as exc:
            raise RuleChangedError(
                self.name, f"{path}: {exc}; nothing in it was changed. Run unban again"
            ) from None
        if after == text:
            return
        complaint = self.check(path, after)
        if complaint:
            raise LayerError(
                self.name, f"{path} would fail its own check ({complaint}); it was not changed"
            )
        data = after.encode("utf-8", errors="surrogateescape")
        kept = partial(self._own.__setitem__, batch)
        try:
            if self.change_set is None and not own:
                atomic_write(path, data)  # a revert outside any run: nothing of its own to undo
                return
            description = f"{self.name}: edit {path}"
            with batch_change_set(self.change_set, self.state_dir, description, kept) as change_set:
                change_set.write(path, data, kind=self.name)
        except OSError as exc:
            raise LayerError(self.name, f"could not write {path}: {exc.strerror or exc}") from None


def _edits(payload: Sequence[object]) -> list[LineEdit]:
    edits: list[LineEdit] = []
    for item in payload:
        if isinstance(item, tuple) and item and item[0] == "edit":
            _kind, start, old, new, before_line, after_line = item
            edits.append((int(start), tuple(old), tuple(new), str(before_line), str(after_line)))
    return edits


def _covering(edits: Sequence[LineEdit], line: int) -> Optional[int]:
    """The index of the edit that changes `line`."""
    for index, (start, old, _new, _before, _after) in enumerate(edits):
        if start <= line < start + max(len(old), 1):
            return index
    return None
