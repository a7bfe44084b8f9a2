"""scripts/sandbox: the demo of `unban me` on a real ban, in throwaway namespaces."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from unban._sandbox.fail2ban import Fail2ban, failure_line
from unban._sandbox.netns import CLIENT4, SERVER4, Link, Netns, SandboxError
from unban._sandbox.sshd import Sshd


class Sandbox:
    """Everything scripts/sandbox builds, and its cleanup (in reverse, even half-built).

    A temp dir; a server namespace with sshd and fail2ban in one private mount namespace whose
    /etc is an overlay (so `unban me` there can edit hosts.deny or fail2ban's files without
    touching the host's); a client namespace joined by a veth pair.
    """

    def __init__(self) -> None:
        self.root: Optional[Path] = None
        self.server: Optional[Netns] = None
        self.link: Optional[Link] = None
        self.sshd: Optional[Sshd] = None
        self.fail2ban: Optional[Fail2ban] = None
        self.cleaned: list[str] = []

    def __enter__(self) -> Sandbox:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="unban-sandbox-"))
        self.server = Netns.create("unban-sb-s")
        self.link = Link.create(self.server, "unban-sb-c")
        (self.root / "sshd").mkdir()
        self.sshd = Sshd(self.link, self.root / "sshd")
        self.sshd.start(isolate=True)
        (self.root / "fail2ban").mkdir()
        self.fail2ban = Fail2ban(self.sshd.mount_ns, self.root / "fail2ban")
        self.fail2ban.write_config(jails={"sshd": {}})
        self.fail2ban.start()

    def close(self) -> None:
        """Stop fail2ban and sshd, delete both namespaces, remove the temp dir. Signals wait."""
        import threading

        held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        main = threading.current_thread() is threading.main_thread()
        previous = (
            {signum: signal.signal(signum, signal.SIG_IGN) for signum in held} if main else {}
        )
        try:
            steps: list[tuple[str, Any]] = []
            if self.fail2ban is not None:
                steps.append(("fail2ban-server", self.fail2ban.stop))
            if self.sshd is not None:
                steps.append(("sshd", self.sshd.stop))
            if self.link is not None:
                steps.append((f"namespace {self.link.client.name}", self.link.delete))
            if self.server is not None:
                steps.append((f"namespace {self.server.name}", self.server.delete))
            if self.root is not None:
                root = self.root
                steps.append((f"{root}", lambda: shutil.rmtree(root, ignore_errors=True)))
            for what, step in steps:
                try:
                    step()
                    self.cleaned.append(what)
                except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
                    self.cleaned.append(f"{what} (failed: {exc})")
            self.fail2ban = self.sshd = self.link = self.server = self.root = None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- what the demo shows

    def probe(self) -> tuple[bool, str, list[str]]:
        """`unban probe SERVER4` from the client: (banner came, outcome, output lines)."""
        assert self.link is not None
        proc = self.link.unban_client("probe", SERVER4, "--timeout", "5", timeout=60)
        lines = (proc.stdout + proc.stderr).rstrip("\n").splitlines()
        if "hints:" in lines:  # the demo shows what ssh would; `unban probe` alone gives hints
            lines = lines[: lines.index("hints:")]
        outcome = "error"
        prefix = f"  {SERVER4}: "
        for line in lines:
            if line.startswith(prefix):
                outcome = line[len(prefix) :].split(" ", 1)[0]
                break
        return proc.returncode == 0, outcome, lines

    def wait_rule(self, chain: str, text: str, timeout: float = 20) -> None:
        """Until the ban action has made its rule: fail2ban 0.11 (Debian 11) lists a ban
        before its action has run."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.server_shell("iptables", "-S", chain)):
            if time.monotonic() > deadline:
                raise SandboxError(f"fail2ban's ban action made no rule in {chain} with {text}")
            time.sleep(0.1)

    def server_shell(self, *argv: str) -> list[str]:
        assert self.sshd is not None
        proc = self.sshd.run(*argv, check=False)
        return (proc.stdout + proc.stderr).rstrip("\n").splitlines()


def demo(out: Callable[[str], None] = print, *, verb: Sequence[str] = ("me",)) -> int:
    """The scripts/sandbox walk-through. 0 when the banner failed while banned and came back
    after `unban VERB CLIENT`, 1 otherwise. Cleans up before returning (or raising)."""
    shown_verb = " ".join(verb)

    def section(title: str) -> None:
        out("")
        out(f"== {title}")

    def shell(where: str, command: str, lines: Sequence[str]) -> None:
        out(f"[{where}]$ {command}")
        for line in lines:
            out(f"    {line}")

    box = Sandbox()
    try:
        out("unban sandbox: building throwaway namespaces (the host's /etc, firewall and")
        out("services are not touched) ...")
        box.__enter__()
        assert box.link is not None and box.fail2ban is not None and box.sshd is not None
        out(
            f"server: namespace {box.link.server.name}, {SERVER4}, a real sshd and a real "
            "fail2ban-server (jail sshd, banaction iptables-multiport, maxretry 2)"
        )
        out(f"client: namespace {box.link.client.name}, {CLIENT4}, joined by a veth pair")
        out(f"files:  {box.root} (sshd and fail2ban config, logs, an overlay for /etc)")

        section("1. the client reaches sshd")
        ok, outcome, lines = box.probe()
        shell("client", f"unban probe {SERVER4}", lines)
        if not ok:
            out(f"sandbox: FAILED: sshd did not answer before any ban ({outcome})")
            return 1

        section(f"2. two failed passwords from {CLIENT4}: fail2ban bans it for real")
        box.fail2ban.fail(CLIENT4)
        out(f"appended to {box.fail2ban.authlog} (the log the sshd jail reads):")
        out(f"    {failure_line(CLIENT4).rstrip()}  (twice)")
        box.fail2ban.wait_banned("sshd", CLIENT4)
        box.wait_rule("f2b-sshd", f"-s {CLIENT4}/32")
        out(f"fail2ban banned {CLIENT4} in jail sshd; its ban action added:")
        shell("server", "iptables -S f2b-sshd", box.server_shell("iptables", "-S", "f2b-sshd"))

        section("3. the client is locked out")
        blocked_ok, blocked, lines = box.probe()
        shell("client", f"unban probe {SERVER4}", lines)
        if blocked_ok:
            out("sandbox: FAILED: the ban did not stop the banner")
            return 1

        section(f"4. on the server: unban {shown_verb} {CLIENT4}")
        out("(--fail2ban-conf and --state-dir point unban at the sandbox's fail2ban and a temp")
        out(" state dir; on a real server it is just `sudo unban me ADDRESS`)")
        args = [*box.fail2ban.global_args(), *verb, CLIENT4]
        if tuple(verb) == ("me",):  # check the sandbox's sshd, not the host's config
            args += ["--sshd-config", str(box.sshd.config_path)]
        proc = box.sshd.unban(*args)
        shell(
            "server",
            f"unban {' '.join(args)}",
            (proc.stdout + proc.stderr).rstrip("\n").splitlines(),
        )
        out(f"(exit status {proc.returncode})")

        section("5. the client again")
        back, after, lines = box.probe()
        shell("client", f"unban probe {SERVER4}", lines)
        out("")
        if not back:
            out(f"sandbox: FAILED: the SSH banner did not come back after `unban {shown_verb}`")
            return 1
        out(
            f"sandbox: the SSH banner failed ({blocked}) while {CLIENT4} was banned, and came "
            f"back after `unban {shown_verb} {CLIENT4}`."
        )
        return 0
    finally:
        box.close()
        out(f"cleaned up: {', '.join(box.cleaned)}")
