"""A fleet for Ansible: managed hosts reached over real SSH from a controller namespace.

Each managed host is a server namespace with a real sshd (key auth for root, a temp key), in a
private mount namespace whose /etc is an overlay (`Sshd(isolate=True)`: whatever unban or the
role writes under /etc lands in a temp dir), joined to its own client namespace (Link:
server 203.0.113.1, client 203.0.113.4) and, by a second veth pair, to the controller namespace
(host i: controller 198.51.100.(4i+1), server 198.51.100.(4i+2), a /30 each). ansible-playbook
runs in the controller namespace, so neither it nor sshd touches the host's network; the client
namespace is where "open" is judged (it reads sshd's banner). Every host has its own fail2ban
config dir and state dir (temp), so unban there never reads the host's /etc/fail2ban or
/var/lib/unban, nor the host's fail2ban socket.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tests.integration.ban_daemons import require_installed
from unban._sandbox import REPO, SERVER4, Fail2ban, Link, Netns, Sshd

COLLECTION_SOURCE = REPO / "ansible_collections" / "unban" / "fleet"
# The unban the managed hosts run: this checkout's, from the venv running the tests.
UNBAN = Path(sys.executable).with_name("unban")

# Reads sshd's version line from the client: exit 0 with the banner, 1 with why not.
READ_BANNER = (
    "import socket, sys\n"
    "try:\n"
    "    s = socket.create_connection((sys.argv[1], 22), timeout=3)\n"
    "    s.settimeout(3)\n"
    "    line = s.recv(256)\n"
    "except OSError as exc:\n"
    "    print(type(exc).__name__, exc); sys.exit(1)\n"
    "print(line.decode('ascii', 'replace').strip())\n"
    "sys.exit(0 if line.startswith(b'SSH-') else 1)\n"
)

RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


@dataclass
class Host:
    """One managed host: its namespaces, sshd, fail2ban files and inventory variables."""

    name: str
    server: Netns
    link: Link
    sshd: Sshd
    fail2ban: Fail2ban
    address: str  # where the controller reaches its sshd

    @property
    def upper(self) -> Path:
        """What was written to /etc in the host's overlay."""
        return self.sshd.root / "etc-upper"

    def inventory_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": self.address,
            "unban_fail2ban_conf": str(self.fail2ban.confdir),
            "unban_state_dir": str(self.fail2ban.state_dir),
            "unban_sshd_config": str(self.sshd.config_path),
            "unban_sshd_log": str(self.sshd.log_path),
        }

    def banner(self) -> tuple[bool, str]:
        """Does the client read sshd's banner? (and what it read, or why not)"""
        proc = self.link.client.run(
            sys.executable, "-c", READ_BANNER, SERVER4, check=False, timeout=30
        )
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def kernel_state(self) -> dict[str, Any]:
        """Rules, sets and bans, without counters or timestamps, to compare before/after."""
        counters = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+")
        state: dict[str, Any] = {}
        for argv in (["iptables-nft-save"], ["iptables-legacy-save"], ["nft", "list", "ruleset"]):
            out = self.sshd.run(*argv).stdout
            lines = [
                counters.sub("", line) for line in out.splitlines() if not line.startswith("#")
            ]
            state[argv[0]] = lines
        if self.fail2ban.running():
            state["fail2ban"] = self.fail2ban.banned("sshd")
        return state

    def files_state(self) -> dict[str, bytes]:
        """Every file under the fail2ban config dir, the state dir and the /etc overlay."""
        result = {}
        for top in (self.fail2ban.confdir, self.fail2ban.state_dir, self.upper):
            if top.exists():
                for path in sorted(top.rglob("*")):
                    if path.is_file():
                        result[str(path)] = path.read_bytes()
        return result


@dataclass
class Fleet:
    """The controller namespace, the managed hosts, and how to run ansible-playbook there."""

    root: Path
    controller: Netns
    hosts: list[Host] = field(default_factory=list)

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def collections(self) -> Path:
        return self.root / "collections"

    def write_inventory(self) -> Path:
        inventory = {
            "all": {
                "hosts": {host.name: host.inventory_vars() for host in self.hosts},
                "vars": {
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(self.key),
                    "ansible_ssh_common_args": (
                        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
                    ),
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_remote_tmp": str(self.root / "remote-tmp"),
                    "unban_executable": str(UNBAN),
                },
            }
        }
        path = self.root / "inventory.yml"
        path.write_text(json.dumps(inventory, indent=2) + "\n")  # JSON is YAML
        return path

    def environment(self) -> dict[str, str]:
        config = self.root / "ansible.cfg"
        config.write_text("[defaults]\n")
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.root),
            "ANSIBLE_CONFIG": str(config),
            "ANSIBLE_HOME": str(self.root / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.root / "local-tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.root / "cp"),
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_FORKS": str(max(1, len(self.hosts))),
        }

    def playbook(
        self, playbook: Path, *options: str, extra: Optional[Mapping[str, str]] = None
    ) -> Run:
        """ansible-playbook in the controller namespace; the recap per host."""
        env = [f"{key}={value}" for key, value in self.environment().items()]
        argv = ["env", "-i", *env, "ansible-playbook", "-i", str(self.write_inventory())]
        for key, value in (extra or {}).items():
            argv += ["-e", f"{key}={value}"]
        argv += [*options, str(playbook)]
        proc = self.controller.run(*argv, check=False, timeout=300)
        recap = {
            match[0]: {
                "ok": int(match[1]),
                "changed": int(match[2]),
                "unreachable": int(match[3]),
                "failed": int(match[4]),
            }
            for match in RECAP.findall(proc.stdout)
        }
        return Run(proc.returncode, proc.stdout, proc.stderr, recap)

    def install_collection(self) -> Path:
        """`ansible-galaxy collection build` of the repo's collection, installed from the tarball."""
        built = self.root / "built"
        built.mkdir(exist_ok=True)
        subprocess.run(
            ["ansible-galaxy", "collection", "build", "--force", "--output-path", str(built),
             str(COLLECTION_SOURCE)],
            check=True, capture_output=True, text=True, env=self.environment(), timeout=120,
        )  # fmt: skip
        (tarball,) = built.glob("unban-fleet-*.tar.gz")
        subprocess.run(
            ["ansible-galaxy", "collection", "install", "--force", "-p", str(self.collections),
             str(tarball)],
            check=True, capture_output=True, text=True, env=self.environment(), timeout=120,
        )  # fmt: skip
        return tarball


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    recap: dict[str, dict[str, int]]

    def output(self) -> str:
        return f"exit {self.returncode}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}"


def _veth(controller: Netns, server: Netns, index: int) -> str:
    """The management link of host `index`; returns the server's address on it."""
    ours, theirs = f"um{uuid.uuid4().hex[:8]}", f"ua{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", ours, "type", "veth", "peer", "name", theirs], check=True)
    subprocess.run(["ip", "link", "set", ours, "netns", server.name], check=True)
    subprocess.run(["ip", "link", "set", theirs, "netns", controller.name], check=True)
    server_address = f"198.51.100.{4 * index + 2}"
    server.run("ip", "addr", "add", f"{server_address}/30", "dev", ours)
    server.run("ip", "link", "set", ours, "up")
    controller.run("ip", "addr", "add", f"198.51.100.{4 * index + 1}/30", "dev", theirs)
    controller.run("ip", "link", "set", theirs, "up")
    return server_address


def require_ansible() -> None:
    """Skip where this release's archive has no ansible-core (Debian 11: 50-ansible.sh installs
    it only where it has); fail where it has it but a tool is missing."""
    require_installed(
        {
            "ansible-playbook": "ansible-core",
            "ansible-galaxy": "ansible-core",
            "ssh": "openssh-client",
        }
    )


def build_fleet(root: Path, names: Sequence[str]) -> Iterator[Fleet]:
    """A controller and one managed host per name; everything is stopped and deleted after."""
    if not UNBAN.exists():
        raise AssertionError(f"{UNBAN} is missing: the tests need the venv's unban")
    require_ansible()
    fleet = Fleet(root, Netns.create("unban-actl"))
    servers: list[Netns] = []
    links: list[Link] = []
    started: list[Any] = []  # sshd and fail2ban servers, stopped in reverse
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fleet.key)],
            check=True, capture_output=True,
        )  # fmt: skip
        for index, name in enumerate(names):
            server = Netns.create("unban-as")
            servers.append(server)
            link = Link.create(server, "unban-ac")
            links.append(link)
            address = _veth(fleet.controller, server, index)
            home = root / name
            (home / "sshd").mkdir(parents=True)
            (home / "f2b").mkdir()
            authorized = home / "authorized_keys"
            shutil.copyfile(f"{fleet.key}.pub", authorized)
            sshd = Sshd(link, home / "sshd")
            config = "\n".join(
                [
                    "PermitRootLogin prohibit-password",
                    f"AuthorizedKeysFile {authorized}",
                    "StrictModes no",  # the key lives under a temp dir
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                ]
            )
            started.append(sshd)
            sshd.start(config, listen=(SERVER4, address), isolate=True)
            fail2ban = Fail2ban(sshd.mount_ns, home / "f2b")
            fail2ban.write_config(jails={"sshd": {}})
            fleet.hosts.append(Host(name, server, link, sshd, fail2ban, address))
        fleet.install_collection()
        yield fleet
    finally:
        for host in fleet.hosts:
            host.fail2ban.stop()
        for thing in reversed(started):
            thing.stop()
        for link in links:
            link.delete()
        for server in servers:
            server.delete()
        fleet.controller.delete()
