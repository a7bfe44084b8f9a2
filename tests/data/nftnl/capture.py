"""Capture the kernel's netlink answers that tests/unit/test_nftnl.py parses: a rule dump of a
three-rule iptables-nft chain, and the answers to a batch naming a past generation (ERESTART),
to one deleting a handle that is not there (ENOENT), to one that commits (an ack), and to one
deleting a missing handle and then one that is there (ENOENT, then the last one's ack).

Run as root from the checkout: python3 tests/data/nftnl/capture.py (makes and deletes a network
namespace; the generation ids in the files are that namespace's: 5 when the chain is built).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).parent
BUILD = [
    ["iptables-nft", "-N", "f2b-sshd"],
    *(
        ["iptables-nft", "-A", "f2b-sshd", "-s", f"198.51.100.{i}/32", "-j", "REJECT"]
        for i in (1, 2, 3)
    ),
]


def answers(sock: socket.socket) -> list[bytes]:
    out = []
    sock.settimeout(0.2)
    try:
        while True:
            out.append(sock.recv(65536))
    except socket.timeout:
        return out


def write(name: str, datagrams: list[bytes]) -> None:
    (HERE / name).write_text("".join(d.hex() + "\n" for d in datagrams))


def capture() -> None:
    from unban import nftgen, nftnl

    generation = nftgen.generation()
    assert generation == 5, generation
    with nftnl._socket() as sock:
        sock.send(nftnl.dump_request(2, 1, "filter", "f2b-sshd"))
        write("dump-3-rules.hex", answers(sock))
        stale, _ = nftnl.batch_message(2, "filter", [("f2b-sshd", 5)], 4, first_seq=2)
        write("batch-genid-4.hex", [stale])
        sock.send(stale)
        write("reply-erestart.hex", answers(sock))
        missing, _ = nftnl.batch_message(2, "filter", [("f2b-sshd", 999)], 5, first_seq=5)
        sock.send(missing)
        write("reply-enoent.hex", answers(sock))
        second, _ = nftnl.batch_message(2, "filter", [("f2b-sshd", 3)], 5, first_seq=9)
        sock.send(second)
        write("reply-ack.hex", answers(sock))
        # generation 6 now: a missing handle, then one that is there (the batch is aborted)
        both, _ = nftnl.batch_message(
            2, "filter", [("f2b-sshd", 999), ("f2b-sshd", 4)], 6, first_seq=12
        )
        sock.send(both)
        write("reply-enoent-then-ack.hex", answers(sock))


def main() -> None:
    name = f"unban-nftnl-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in BUILD:
            subprocess.run(["ip", "netns", "exec", name, *argv], check=True)
        here = "import sys; sys.path.insert(0, '.'); from tests.data.nftnl.capture import capture; capture()"
        subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c", here], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


if __name__ == "__main__":
    main()
