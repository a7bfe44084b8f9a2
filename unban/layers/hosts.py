"""/etc/hosts.allow and /etc/hosts.deny as a layer: entries that make sshd refuse an address.

Debian's and Ubuntu's sshd still read both files through libwrap; an entry that refuses the
client gives exactly the article's `kex_exchange_identification: read: Connection reset by
peer`. `find` evaluates the files as libwrap does for daemon `sshd` (unban.tcpwrappers): when
the address is refused, every entry that refuses it before an entry that surely grants it is a
finding (hosts.deny entries; hosts.allow entries with the `deny` option, as sshguard writes
`ALL : ADDR : DENY`). A finding is *targeted* when taking the address's own patterns out of the
entry (`hostsedit.remove_address`: `203.0.113.4`, `[2001:db8::4]`, `203.0.113.4/32`...) makes
the entry stop matching; *broad* otherwise (`ALL`, `203.0.113.`, a /24, a host name pattern).

Changes, one batch per file changed:
- targeted: the entry loses only that address's patterns; an entry left with none is deleted
  with its continuation lines. Every other byte of the file stays.
- broad (only with --broad): a broad pattern also covers other hosts, so it is never deleted;
  instead an entry `sshd: ADDR` goes before the first entry of hosts.allow (after its leading
  comment block), which libwrap reads first.

A step's `command` is what a person could run instead, for the file as it was read: `sed -i
'Nd' FILE` (or `'N,Md'`) when the whole entry goes, `sed -i 'Nc\\NEW' FILE` when a one-line entry
keeps other patterns, `sed -i 'Ni sshd: ADDR' FILE` for the grant; an entry continued over
several lines that keeps other patterns gets `edit FILE lines N-M: ...`, because no short sed
line does that safely. These commands name line numbers: they are right only for the file as
`find` read it. unban itself re-reads the file and checks every line it changes
(`hostsedit.apply_edits`), and raises RuleChangedError, changing nothing, when one moved.

Writing: through a reverter change set (backup, owner, mode and times first; then an atomic
replace keeping owner and mode). `unban me` passes its own change set (`change_set`); otherwise
each batch begins one, which `unban undo` restores. Putting it back takes out only unban's
own edit: lines fail2ban's hostsdeny action appended meanwhile stay (`unban.reverter`).

Only single addresses are evaluated: for a CIDR target `find` reports nothing here (libwrap's
answer differs from address to address inside a network), and `status` says so.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Optional, Union

from unban.address import Network, family_of, show
from unban.errors import LayerError, RuleChangedError
from unban.hostsedit import (
    Edit,
    allow_line,
    apply_edits,
    client_pattern,
    first_entry_index,
    prepend,
    remove_address,
)
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step
from unban.path.model import Match
from unban.reverter import DEFAULT_STATE_DIR, ChangeSet, Reverter, batch_change_set
from unban.tcpwrappers import (
    ALLOW_FILE,
    DENY_FILE,
    Endpoint,
    Entry,
    EntryMatch,
    Request,
    Table,
    depends_on_name,
    evaluate,
    match_entry,
    parse_table,
    read_pattern_file,
    read_tables,
    resolve_client_name,
)

LAYER = "hosts"
FILE_KIND = "hosts"
GRANT_COMMENT = "unban me: let {address} reach sshd (broad entries refuse it below)"

# A payload item: ("edit", hostsedit.Edit) or ("prepend", the lines to put first).
PayloadItem = tuple[str, Union[Edit, str]]


@dataclass(frozen=True)
class _Seen:
    """What `find` learned about one finding, for `plan`."""

    entry: Entry
    edit: Optional[Edit]  # takes the address's own patterns out (targeted findings)
    address: str
    text: str  # the entry's file as `find` read it
    allow_text: str  # hosts.allow as `find` read it (where a grant goes)


# ---------------------------------------------------------------- pure parts


def owner_of_entry(entry: Entry, address: str, deny_path: str) -> str:
    """sshguard (between its markers), fail2ban, or manual.

    fail2ban's hostsdeny action appends `<daemon_list>: <ip>` with daemon_list `ALL` unless a
    jail says otherwise (`ALL: 203.0.113.4`, `ALL: [2001:db8::4]`), and its unban deletes every
    line reading exactly that: a hosts.deny line of that very form is fail2ban's. (A jail with
    another daemon_list makes lines that look hand-made; fail2ban's unban deletes them before
    the hosts batch runs, and `apply` counts an entry that is gone as removed.)
    """
    if entry.owner == "sshguard":
        return "sshguard"
    pattern = client_pattern(address)
    if entry.path == deny_path and len(entry.raw) == 1 and entry.display() == f"ALL: {pattern}":
        return "fail2ban"
    return "manual"


def pattern_network(token: Optional[str], address: str) -> str:
    """The source network a client pattern stands for, as well as it can be said."""
    version = ipaddress.ip_address(address).version
    if token is None:
        return "?"
    if token.upper() == "ALL":
        return "0.0.0.0/0" if version == 4 else "::/0"
    text = token
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        text = inner + rest
    if version == 4 and text.endswith(".") and text[:-1].replace(".", "").isdigit():
        parts = text[:-1].split(".")
        if 1 <= len(parts) <= 3:
            padded = parts + ["0"] * (4 - len(parts))
            return f"{'.'.join(padded)}/{8 * len(parts)}"
    try:
        return show(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return token


def request_for(address: str, name: Optional[str] = None, daemon: str = "sshd") -> Request:
    return Request(client=Endpoint(address, name), daemon=daemon)


def refusing_matches(allow: Table, deny: Table, request: Request) -> list[EntryMatch]:
    """Entries that refuse the request, in libwrap's order, up to one that surely grants it.

    Empty when libwrap grants access. A "maybe" match (host name, ident) that refuses is
    included; a "maybe" grant does not stop the list (it may not grant).
    """
    decision = evaluate(allow, deny, request, read_file=read_pattern_file)
    if decision.allowed is True:
        return []
    refusing: list[EntryMatch] = []
    for found in decision.matches:
        if found.effect == "allow" and found.match is Match.YES:
            break
        if found.effect == "deny":
            refusing.append(found)
    return refusing


def is_targeted_edit(edit: Optional[Edit], request: Request, default_effect: str) -> bool:
    """True when the entry, once `edit` is made, no longer matches the request.

    `default_effect`: "allow" for an entry of hosts.allow, "deny" for hosts.deny."""
    if edit is None:
        return False
    if not edit.new:
        return True
    parsed = parse_table("".join(edit.new), edit.path).entries
    if not parsed:
        return True
    return all(
        match_entry(e, request, default_effect, read_file=read_pattern_file) is None for e in parsed
    )


def to_finding(found: EntryMatch, address: str, targeted: bool, deny_path: str) -> Finding:
    entry = found.entry
    network = show(ipaddress.ip_network(address))
    if not targeted:
        network = pattern_network(found.matched_client, address)
    return Finding(
        layer=LAYER,
        backend="libwrap",
        family=family_of(ipaddress.ip_network(address)),
        table=entry.path,
        chain=None,
        line=entry.line,
        handle=None,
        rule=entry.display(),
        verdict="deny" if found.match is Match.YES else "may deny",
        owner=owner_of_entry(entry, address, deny_path),
        network=network,
        targeted=targeted,
    )


def edit_command(edit: Edit) -> str:
    """The shell command that makes `edit` by hand (see the module docstring)."""
    path = shlex.quote(edit.path)
    span = f"{edit.line}" if edit.line == edit.end_line else f"{edit.line},{edit.end_line}"
    if not edit.new:
        return f"sed -i '{span}d' {path}"
    if len(edit.old) == 1 and len(edit.new) == 1:
        text = edit.new[0].rstrip("\n").replace("\\", "\\\\")
        script = span + "c\\" + text
        return f"sed -i {shlex.quote(script)} {path}"
    return f"edit {edit.path} lines {edit.line}-{edit.end_line}: make them read " + " / ".join(
        repr(line.rstrip("\n")) for line in edit.new
    )


def grant_command(path: str, content: str, address: str) -> str:
    """The command that puts `sshd: ADDR` where `prepend` puts it, in `content` as read."""
    pattern = client_pattern(address)
    lines = content.splitlines(keepends=True)
    at = first_entry_index(lines)
    grant = f"sshd: {pattern}"
    if at >= len(lines):
        return f"echo {shlex.quote(grant)} >> {shlex.quote(path)}"
    return f"sed -i {shlex.quote(f'{at + 1}i {grant}')} {shlex.quote(path)}"


def undo_command(path: str) -> str:
    return f"unban undo  # restores {path} byte for byte from the backup taken first"


def build_batches(
    found: Sequence[tuple[Finding, _Seen]], allow_path: str, contents: Mapping[str, str]
) -> list[Batch]:
    """One batch per file changed: the targeted findings' edits in their own file; the grant
    for broad findings in hosts.allow. `contents`: each file as `find` read it. Pure."""
    per_file: dict[str, tuple[list[Step], list[PayloadItem]]] = {}

    def slot(path: str) -> tuple[list[Step], list[PayloadItem]]:
        return per_file.setdefault(path, ([], []))

    grant: Optional[str] = None
    for finding, seen in found:
        if finding.targeted and seen.edit is not None:
            steps, payload = slot(seen.edit.path)
            steps.append(Step(finding, edit_command(seen.edit), undo_command(seen.edit.path)))
            payload.append(("edit", seen.edit))
            continue
        steps, payload = slot(allow_path)
        if grant is None:
            grant = allow_line(seen.address, GRANT_COMMENT.format(address=seen.address))
            payload.append(("prepend", grant))
        command = grant_command(allow_path, contents.get(allow_path, ""), seen.address)
        steps.append(Step(finding, command, undo_command(allow_path)))
    batches = []
    for path, (steps, payload) in per_file.items():
        ordered: list[PayloadItem] = [("read", contents.get(path, ""))]
        ordered += [p for p in payload if p[0] == "edit"] + [p for p in payload if p[0] != "edit"]
        batches.append(Batch(LAYER, path, tuple(steps), tuple(ordered), ()))
    return batches


def relocate(original: str, current: str, edit: Edit) -> Optional[Edit]:
    """`edit` (made for `original`, the file as `find` read it) for the file as it is now.

    Lines added or deleted elsewhere (fail2ban's own unban deletes its hostsdeny line, which
    moves the entries below it up) only move the entry: the edit follows it. An entry whose
    lines were all deleted is gone: None (nothing left to do). An entry whose lines changed:
    ValueError, and nothing is edited.
    """
    if original == current:
        return edit
    before = original.splitlines(keepends=True)
    after = current.splitlines(keepends=True)
    start, end = edit.line - 1, edit.end_line
    tags: set[str] = set()
    moved: Optional[int] = None
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, _j2 in matcher.get_opcodes():
        if i1 == i2:  # an insertion: inside the entry it changes the entry
            if start < i1 < end:
                tags.add("changed")
            continue
        if i2 <= start or i1 >= end:
            continue
        tags.add(tag)
        if tag == "equal" and i1 <= start and end <= i2:
            moved = j1 + (start - i1)
    if tags == {"equal"} and moved is not None:
        return replace(edit, line=moved + 1, end_line=moved + (end - start))
    if tags == {"delete"}:
        return None
    raise ValueError(f"{edit.path}:{edit.line} changed since it was read")


def edited(content: str, payload: Sequence[PayloadItem]) -> str:
    """`content` with a batch's payload made. ValueError when an edited entry changed. Pure.

    The payload's ("read", text) item is the file as `find` read it (see `relocate`).
    """
    original = next((str(item) for kind, item in payload if kind == "read"), content)
    edits = []
    for kind, item in payload:
        if kind == "edit" and isinstance(item, Edit):
            moved = relocate(original, content, item)
            if moved is not None:
                edits.append(moved)
    text = apply_edits(content, edits)
    for kind, item in payload:
        if kind == "prepend" and isinstance(item, str):
            text = prepend(text, item)
    return text


# ---------------------------------------------------------------- the layer


class HostsLayer:
    """hosts.allow / hosts.deny entries that refuse an address to sshd."""

    name = LAYER

    def __init__(
        self,
        allow_path: str = ALLOW_FILE,
        deny_path: str = DENY_FILE,
        state_dir: str = DEFAULT_STATE_DIR,
        *,
        daemon: str = "sshd",
        change_set: Optional[ChangeSet] = None,
        check_libwrap: bool = True,
        resolve_names: bool = True,
    ) -> None:
        self.allow_path = allow_path
        self.deny_path = deny_path
        self.state_dir = state_dir
        self.daemon = daemon
        self.change_set = change_set  # unban me's change set; None: one per batch
        self.check_libwrap = check_libwrap
        self.resolve_names = resolve_names
        self._libwrap: Optional[bool] = None
        self._seen: dict[Finding, _Seen] = {}
        self._own: dict[Batch, str] = {}

    # -- reading

    def libwrap(self) -> Optional[bool]:
        """Whether sshd reads these files (linked with libwrap); None when that is not known."""
        if not self.check_libwrap:
            return True
        if self._libwrap is None:
            from unban import sshd

            try:
                self._libwrap = sshd.uses_libwrap()
            except LayerError:
                return None  # no sshd here: evaluate the files anyway
        return self._libwrap

    def status(self) -> list[LayerStatus]:
        files = f"{self.allow_path}, {self.deny_path}"
        if not (os.path.exists(self.allow_path) or os.path.exists(self.deny_path)):
            return [LayerStatus(LAYER, False, f"neither {files} exists")]
        if self.libwrap() is False:
            return [
                LayerStatus(LAYER, False, f"sshd is not linked with libwrap: {files} do not apply")
            ]
        return [
            LayerStatus(
                LAYER,
                True,
                f"{files} evaluated as libwrap does for {self.daemon} (single addresses only; "
                "a CIDR target is not evaluated)",
            )
        ]

    def find(self, target: Network) -> list[Finding]:
        if target.num_addresses != 1 or self.libwrap() is False:
            return []
        address = show(target)
        texts = {path: _read_text(path) or "" for path in (self.allow_path, self.deny_path)}
        allow = parse_table(texts[self.allow_path], self.allow_path)
        deny = parse_table(texts[self.deny_path], self.deny_path)
        request = request_for(address, None, self.daemon)
        decision = evaluate(allow, deny, request, read_file=read_pattern_file)
        if decision.allowed is None and self.resolve_names and depends_on_name(decision):
            name = resolve_client_name(address)
            if name is not None:
                request = replace(request, client=Endpoint(address, name))
        findings = []
        for found in refusing_matches(allow, deny, request):
            edit = remove_address(found.entry, address)
            default = "allow" if found.entry.path == self.allow_path else "deny"
            targeted = found.match is Match.YES and is_targeted_edit(edit, request, default)
            finding = to_finding(found, address, targeted, self.deny_path)
            self._seen[finding] = _Seen(
                found.entry,
                edit if targeted else None,
                address,
                texts[found.entry.path],
                texts[self.allow_path],
            )
            findings.append(finding)
        return findings

    def listings(self, query: ListQuery) -> list[Listing]:
        if query.chain or (query.table and query.table not in (self.allow_path, self.deny_path)):
            return []
        allow, deny = read_tables(self.allow_path, self.deny_path)
        listings = []
        for table in (allow, deny):
            if not table.present or (query.table and query.table != table.path):
                continue
            lines = tuple(
                f"{e.line:>4}  {e.display()}" + (f"  (owner {e.owner})" if e.owner else "")
                for e in table.entries
            )
            data = {
                "file": table.path,
                "entries": [
                    {"line": e.line, "end_line": e.end_line, "entry": e.display(), "owner": e.owner}
                    for e in table.entries
                ],
            }
            listings.append(Listing(LAYER, table.path, lines, data))
        return listings

    # -- planning and changing

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        known = [(f, self._seen[f]) for f in findings if f.layer == LAYER and f in self._seen]
        if not known:
            return []
        contents = {seen.entry.path: seen.text for _finding, seen in known}
        contents.setdefault(self.allow_path, known[-1][1].allow_text)
        return build_batches(known, self.allow_path, contents)

    def apply(self, batch: Batch) -> None:
        path = batch.scope
        before = _read_bytes(path)
        content = (before or b"").decode("utf-8", errors="surrogateescape")
        try:
            text = edited(content, batch.payload)
        except ValueError as exc:
            raise RuleChangedError(
                LAYER, f"{exc}; nothing in {path} was changed. Run unban again"
            ) from None
        data = text.encode("utf-8", errors="surrogateescape")
        if data == before:
            return
        kept = partial(self._own.__setitem__, batch)
        try:
            with batch_change_set(
                self.change_set, self.state_dir, f"hosts: edit {path}", kept
            ) as change_set:
                change_set.write(
                    path,
                    data,
                    mode=None if before is not None else 0o644,
                    kind=FILE_KIND,
                    rebase=lambda newer: _edited_bytes(newer, batch.payload, path),
                )
        except OSError as exc:
            raise LayerError(LAYER, f"could not write {path}: {exc.strerror or exc}") from None

    def revert(self, batch: Batch) -> None:
        """Put back a batch applied in a change set of its own (`unban remove`); in `unban
        me`'s change set, that change set puts the file back (only unban's own edit)."""
        change_id = self._own.pop(batch, None)
        if change_id is not None:
            Reverter(self.state_dir).rollback(change_id)


def _edited_bytes(content: bytes, edits: Sequence[PayloadItem], path: str) -> bytes:
    """The batch's edits made again on newer content (lines appended meanwhile stay)."""
    try:
        text = edited(content.decode("utf-8", errors="surrogateescape"), edits)
    except ValueError as exc:
        raise RuleChangedError(
            LAYER, f"{exc}; nothing in {path} was changed. Run unban again"
        ) from None
    return text.encode("utf-8", errors="surrogateescape")


def _read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _read_text(path: str) -> Optional[str]:
    data = _read_bytes(path)
    return None if data is None else data.decode("utf-8", errors="surrogateescape")
