"""The only place that starts programs. argv lists only, never a shell."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO, Callable, Generic, Optional, Sequence, TypeVar

from unban.errors import LayerError, NotRootError

# Tools live in sbin; cron and sudo's secure_path may not have it.
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
)


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def which(name: str) -> Optional[str]:
    return shutil.which(name, path=_SEARCH_PATH)


T = TypeVar("T")


class _Slot(Generic[T]):
    """A result or an error, set once by one thread, waited for by any."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Optional[T] = None
        self._error: Optional[BaseException] = None

    def settle(self, job: Callable[[], T]) -> None:
        try:
            self._value = job()
        except BaseException as exc:  # noqa: BLE001 - raised again in whoever waits
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> T:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class SharedReads:
    """One run of each read-only command (no stdin) while a find reads the system: the layers
    and the path evaluator that ask for the same output (nft's chains, `sshd -T`) share it,
    and threads asking at once wait for the one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[tuple[str, ...], _Slot[subprocess.CompletedProcess[str]]] = {}

    def once(
        self,
        key: tuple[str, ...],
        start: Callable[[], subprocess.CompletedProcess[str]],
    ) -> subprocess.CompletedProcess[str]:
        with self._lock:
            slot = self._results.get(key)
            first = slot is None
            if slot is None:
                slot = self._results[key] = _Slot()
        if first:
            slot.settle(start)
        return slot.result()


_shared: Optional[SharedReads] = None
_ahead: Optional[SharedReads] = None  # `read_ahead`'s, for the next block to take
_shared_lock = threading.Lock()


@contextmanager
def shared_reads() -> Iterator[None]:
    """Within this block (one find: nothing changes the system meanwhile), a read-only command
    runs once and every later asker gets its output. Nested blocks share the outer one. The
    first block takes what `read_ahead` started: nothing changed the system before it."""
    global _shared, _ahead
    with _shared_lock:
        outer = _shared
        if outer is None:
            _shared, _ahead = _ahead or SharedReads(), None
    try:
        yield
    finally:
        if outer is None:
            with _shared_lock:
                _shared = None


def concurrently(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Each job in its own thread (they wait on programs, not on Python); results in order.
    The first job's error that failed, in order, is raised, as a loop would raise it."""
    if len(jobs) < 2:
        return [job() for job in jobs]
    slots: list[_Slot[T]] = []
    threads = []
    for job in jobs:
        slot: _Slot[T] = _Slot()
        thread = threading.Thread(target=slot.settle, args=(job,), daemon=True)
        thread.start()
        slots.append(slot)
        threads.append(thread)
    for thread in threads:
        thread.join()
    return [slot.result() for slot in slots]


def read_ahead(argvs: Sequence[Sequence[str]]) -> None:
    """Start these read-only commands now, each in a thread, for the first find of this
    process to take: the rule dumps, which grow with the rules, run while Python imports the
    layers. Only that find uses them (see `shared_reads`); every later one reads afresh."""
    global _ahead
    reads = SharedReads()
    for argv in argvs:
        binary = which(argv[0])
        if binary is not None:
            start = partial(_started, [binary, *argv[1:]], None, 120.0)
            threading.Thread(target=reads.once, args=(tuple(argv), start), daemon=True).start()
    _ahead = reads


def _started(
    argv: Sequence[str], stdin: Optional[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run argv to its end. Without stdin its output goes to memory files, not pipes: a
    thread reading a pipe needs the interpreter lock for each 32 KiB, and while the main
    thread imports the layers that made a 4 MB `iptables-legacy-save` of 100,000 rules take
    0.46 s instead of 0.19 s."""
    env = {**os.environ, "LC_ALL": "C"}
    if stdin is not None:
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    with _memory_file("stdout") as out, _memory_file("stderr") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        return subprocess.CompletedProcess(list(argv), returncode, _text(out), _text(err))


def _memory_file(name: str) -> BinaryIO:
    return open(os.memfd_create(f"unban-{name}", os.MFD_CLOEXEC), "w+b")


def _text(output: BinaryIO) -> str:
    """What subprocess's text mode would have made of it: the locale's encoding, universal
    newlines."""
    output.seek(0)
    return io.TextIOWrapper(output, newline=None).read()


U = TypeVar("U")


def both(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """`first` and `second` at once (`second` in a thread); `first`'s error wins, as in order."""
    slot: _Slot[U] = _Slot()
    thread = threading.Thread(target=slot.settle, args=(second,), daemon=True)
    thread.start()
    try:
        result = first()
    finally:
        thread.join()
    return result, slot.result()


def run(
    layer: str,
    argv: Sequence[str],
    *,
    stdin: Optional[str] = None,
    check: bool = True,
    timeout: float = 120.0,
) -> Completed:
    """Run argv (no shell) and return its output; raise LayerError naming `layer` on failure."""
    binary = which(argv[0])
    if binary is None:
        raise LayerError(layer, f"'{argv[0]}' is not installed")

    start = partial(_started, [binary, *argv[1:]], stdin, timeout)
    shared = _shared
    try:
        proc = start() if shared is None or stdin is not None else shared.once(tuple(argv), start)
    except subprocess.TimeoutExpired:
        raise LayerError(layer, f"'{' '.join(argv)}' did not finish in {timeout:.0f} s") from None
    except OSError as exc:
        raise LayerError(layer, f"could not run '{argv[0]}': {exc.strerror}") from None
    result = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise LayerError(layer, f"'{' '.join(argv)}' failed: {first_line(proc.stderr)}")
    return result


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError("unban reads and changes the firewall: run it as root (sudo unban ...)")
