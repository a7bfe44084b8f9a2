"""A real sshd in the server namespace, in its own mount namespace, with its own config,
host key, pidfile and log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

from unban._sandbox.netns import SERVER4, SERVER6, Link, MountNs, SandboxError, json_document

SSHD = "/usr/sbin/sshd"


class Sshd:
    """One real sshd in the server namespace, in its own mount namespace.

    The mount namespace belongs to a holder process, started with
    `ip netns exec SERVER unshare -m --propagation private sleep infinity`. Bind mounts
    (`hosts_deny=`, `hosts_allow=`: temp files over /etc/hosts.deny and /etc/hosts.allow) are
    made there, and sshd and the unban CLI run there too (`nsenter -t HOLDER -m -n`): they see
    the same /etc, and the host's /etc is never touched.
    """

    def __init__(self, link: Link, root: Path) -> None:
        self.link = link
        self.root = root
        self.config_path = root / "sshd_config"
        self.log_path = root / "sshd.log"
        self.pidfile = root / "sshd.pid"
        self.hostkey = root / "ssh_host_ed25519_key"
        self._holder: Optional[subprocess.Popen[bytes]] = None

    @property
    def mount_ns(self) -> MountNs:
        """The server namespace as sshd sees it (for fail2ban or the CLI beside it)."""
        assert self._holder is not None, "sshd is not started"
        return MountNs(self.link.server, self._holder.pid)

    # -- setup

    def start(
        self,
        config: str = "",
        *,
        hosts_deny: Optional[str] = None,
        hosts_allow: Optional[str] = None,
        listen: tuple[str, ...] = (SERVER4, SERVER6),
        isolate: bool = False,
    ) -> None:
        if not Path(SSHD).exists():
            raise SandboxError("openssh-server is not installed (Debian package openssh-server)")
        private_run = isolate and not os.path.isdir("/run/sshd")
        if not private_run:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.hostkey)],
            check=True,
            capture_output=True,
        )
        lines = [
            "Port 22",
            *(f"ListenAddress {address}" for address in listen),
            f"HostKey {self.hostkey}",
            f"PidFile {self.pidfile}",
            "UsePAM no",
            config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.log_path.touch()
        self._holder = subprocess.Popen(
            self.link.server.argv(
                ["unshare", "-m", "--propagation", "private", "sleep", "infinity"]
            )
        )
        self._wait_for_namespace()
        if isolate:
            upper, work = self.root / "etc-upper", self.root / "etc-work"
            upper.mkdir()
            work.mkdir()
            self.run(
                "mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir=/etc,upperdir={upper},workdir={work}", "/etc",
            )  # fmt: skip
        if private_run:
            self.run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
            self.run("mkdir", "-m", "0755", "/run/sshd")
        for name, text in (("hosts.deny", hosts_deny), ("hosts.allow", hosts_allow)):
            if text is not None:
                self.bind(name, text)
        self.run(SSHD, "-f", str(self.config_path), "-E", str(self.log_path))
        self._wait_listening()

    def bind(self, name: str, text: str) -> Path:
        """Put `text` over /etc/NAME, inside this server's mount namespace only."""
        source = self.root / name
        source.write_text(text)
        target = f"/etc/{name}"
        if not Path(target).exists():
            raise SandboxError(f"{target} is missing on this host: nothing to bind-mount over")
        self.run("mount", "--bind", str(source), target)
        return source

    def _wait_for_namespace(self) -> None:
        assert self._holder is not None
        own = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + 10
        while True:
            try:
                if os.readlink(f"/proc/{self._holder.pid}/ns/mnt") != own:
                    comm = Path(f"/proc/{self._holder.pid}/comm").read_text().strip()
                    if comm == "sleep":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SandboxError("the mount-namespace holder did not start")
            time.sleep(0.02)

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            out = self.run("ss", "-Htln", "( sport = :22 )", check=False).stdout
            if out.strip() and self.pidfile.exists():
                return
            if time.monotonic() > deadline:
                raise SandboxError(f"sshd did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            self._holder = None

    # -- running things where sshd runs

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.mount_ns.run(*argv, check=check, timeout=timeout)

    def unban(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.mount_ns.unban(*args, timeout=timeout)

    def unban_json(self, *args: str) -> Any:
        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json_document(proc)

    def doctor(self, address: str, *args: str, global_args: tuple[str, ...] = ()) -> Any:
        """`unban doctor ADDRESS --json` against this sshd's config and log."""
        proc = self.unban(
            *global_args,
            "doctor",
            address,
            "--sshd-config",
            str(self.config_path),
            "--log",
            str(self.log_path),
            *args,
            "--json",
        )
        assert proc.returncode in (0, 3), proc.stderr
        result = json_document(proc)
        result["returncode"] = proc.returncode
        return result
