"""scripts/sandbox end to end: a real ban makes the SSH banner fail, `unban` brings it back, and
nothing is left behind (namespaces, processes, temp dir), also when it is stopped half-way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SANDBOX = REPO / "scripts" / "sandbox"


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def left_behind(output: str) -> list[str]:
    """Namespaces, temp dir and processes of this sandbox run that still exist."""
    names = set(re.findall(r"namespace (unban-sb-[sc]-[0-9a-f]{8})", output))
    assert len(names) == 2, output
    left = sorted(names & namespaces())
    match = re.search(r"^files:  (/\S+)", output, re.MULTILINE)
    assert match, output
    root = match.group(1)
    if os.path.exists(root):
        left.append(root)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if root in cmdline:
            left.append(f"pid {pid}: {cmdline}")
    return left


def test_the_banner_fails_while_banned_and_comes_back() -> None:
    proc = subprocess.run([str(SANDBOX)], capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert proc.stderr == ""
    locked = out.split("== 3. the client is locked out", 1)[1].split("== 4.", 1)[0]
    assert "203.0.113.1: refused" in locked
    assert "ssh prints: ssh: connect to host 203.0.113.1 port 22: Connection refused" in locked
    assert "-A f2b-sshd -s 203.0.113.4/32 -j REJECT" in out
    back = out.split("== 5. the client again", 1)[1]
    assert "203.0.113.1: banner" in back and "SSH-2.0-OpenSSH_" in back
    assert re.search(
        r"^sandbox: the SSH banner failed \(refused\) while 203\.0\.113\.4 was banned, and came "
        r"back after `unban \w+ 203\.0\.113\.4`\.$",
        out,
        re.MULTILINE,
    ), out
    assert out.rstrip().splitlines()[-1].startswith("cleaned up: fail2ban-server, sshd, namespace")
    assert left_behind(out) == []


def test_sigterm_half_way_still_cleans_up() -> None:
    proc = subprocess.Popen(
        [str(SANDBOX)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("== 3."):  # banned for real, fail2ban and sshd running
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out + err
    assert err == "sandbox: interrupted\n"
    assert "cleaned up: fail2ban-server, sshd, namespace" in out
    assert left_behind(out) == []
