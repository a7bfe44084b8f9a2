"""The iptables layer's delete of iptables-nft rules by nft handle (unban.nftnl), against the
real kernel in a throwaway namespace, when something commits between the find and the delete:
the kernel refuses the batch that names the find's generation, and the fallback still deletes
exactly the rule found, never the one that slid into its place."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from tests.integration.conftest import Netns

BLOCK = "-s 203.0.113.4/32 -j REJECT --reject-with icmp-port-unreachable"
OTHERS = [
    f"-s 198.51.100.{i}/32 -j REJECT --reject-with icmp-port-unreachable" for i in range(1, 41)
]

# In the namespace: find and plan the address's rule, run the commands that commit meanwhile,
# then apply, recording what each delete by handle answered. With "kernel_only", unban's own
# reads of the generation id around its chain dump are told nothing moved, so only the
# kernel's check of the batch's generation stands between the stale position and a wrong rule.
# With "take", the find takes the handles beside its save (as `me` does): no dump, no read
# of the id at the delete, only the kernel's check. With "lose", the batch's answer is lost.
LIFT = r"""
import json, subprocess, sys
from unban import nftnl
from unban.address import parse_target
from unban.layers import xtables

spec = json.loads(sys.argv[1])
layer = xtables.XtablesLayer(backends=["nft"], families=["ipv4"], take_handles=spec["take"])
found = layer.find(parse_target("203.0.113.4"))
(batch,) = layer.plan(found)
known = layer._generation
for argv in spec["between"]:
    subprocess.run(argv, check=True)
if spec["kernel_only"]:
    nftnl.generation = lambda: known
if spec["lose"]:  # the batch goes out, and its answer is never read
    def lost(sock, seqs):
        raise OSError(105, "No buffer space available")
    nftnl._read_acks = lost
answers = []
guarded = xtables.delete_at

def recorded(*args):
    answers.append(guarded(*args))
    return answers[-1]

xtables.delete_at = recorded
layer.apply(batch)
print(json.dumps({"lines": [f.line for f in found], "generation": known, "answers": answers}))
"""


def chain(netns: Netns) -> list[str]:
    save = netns.run("iptables-nft-save", "-t", "filter").stdout
    return [
        line[len("-A f2b-sshd ") :] for line in save.splitlines() if line.startswith("-A f2b-sshd ")
    ]


def lifted(
    netns: Netns,
    between: list[list[str]],
    *,
    kernel_only: bool = False,
    take: bool = False,
    lose: bool = False,
) -> dict[str, Any]:
    netns.run("iptables-nft", "-N", "f2b-sshd")
    lines = ["*filter", *(f"-A f2b-sshd {rule}" for rule in [*OTHERS[:20], BLOCK, *OTHERS[20:]])]
    netns.run("iptables-nft-restore", "--noflush", input="\n".join([*lines, "COMMIT", ""]))
    spec = {"between": between, "kernel_only": kernel_only, "take": take, "lose": lose}
    proc = netns.run(sys.executable, "-c", LIFT, json.dumps(spec))
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["lines"] == [21] and result["generation"], result
    return result


def slide(tmp_path: Path) -> list[list[str]]:
    """Rule 5 goes and one more is appended, in one commit: the chain keeps its 41 rules, and
    the find's rule 21 (index 20) is now rule 20; index 20 holds the next, 198.51.100.21."""
    path = tmp_path / "slide"
    path.write_text(
        f"*filter\n-D f2b-sshd {OTHERS[4]}\n-A f2b-sshd -s 192.0.2.9/32 -j DROP\nCOMMIT\n"
    )
    return [["iptables-nft-restore", "--noflush", str(path)]]


def test_the_kernel_refuses_a_batch_of_a_past_generation_and_the_right_rule_goes(
    netns: Netns, tmp_path: Path
) -> None:
    result = lifted(netns, slide(tmp_path), kernel_only=True)
    assert result["answers"] == [False]  # ERESTART: nothing committed by the batch
    expected = [r for r in OTHERS if r != OTHERS[4]] + ["-s 192.0.2.9/32 -j DROP"]
    assert chain(netns) == expected  # 198.51.100.21 is still there; the block is not


def test_a_commit_after_the_find_sends_no_batch_and_the_right_rule_goes(netns: Netns) -> None:
    insert = ["iptables-nft", "-I", "f2b-sshd", "1", "-s", "192.0.2.7/32", "-j", "DROP"]
    result = lifted(netns, [insert])
    assert result["answers"] == [False]  # the generation had moved: no batch sent
    assert chain(netns) == ["-s 192.0.2.7/32 -j DROP", *OTHERS]


def test_at_the_find_s_generation_the_rule_goes_by_handle_in_one_commit(netns: Netns) -> None:
    result = lifted(netns, [])
    assert result["answers"] == [True]
    assert chain(netns) == OTHERS


def test_handles_taken_by_the_find_are_refused_by_the_kernel_once_stale(
    netns: Netns, tmp_path: Path
) -> None:
    result = lifted(netns, slide(tmp_path), take=True)
    assert result["answers"] == [False]
    expected = [r for r in OTHERS if r != OTHERS[4]] + ["-s 192.0.2.9/32 -j DROP"]
    assert chain(netns) == expected


def test_handles_taken_by_the_find_delete_its_rule_in_one_commit(netns: Netns) -> None:
    result = lifted(netns, [], take=True)
    assert result["answers"] == [True]
    assert chain(netns) == OTHERS


def test_a_thousand_rules_go_in_one_batch_of_deletes_by_handle(
    netns: Netns, tmp_path: Path
) -> None:
    hosts = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    netns.run("iptables-nft", "-N", "f2b-sshd")
    lines = [
        "*filter",
        *(f"-A f2b-sshd -s {h}/32 -j REJECT" for h in [*hosts[:500], "203.0.113.9", *hosts[500:]]),
    ]
    netns.run("iptables-nft-restore", "--noflush", input="\n".join([*lines, "COMMIT", ""]))
    execs = tmp_path / "exec.log"
    trace = ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(execs)]
    env = ["env", f"UNBAN_STATE_DIR={tmp_path / 'state'}"]
    removed = netns.run(
        *trace, *env, sys.executable, "-m", "unban", "remove", "198.18.0.0/22", check=False
    )
    assert removed.returncode == 0, removed.stdout + removed.stderr
    log = execs.read_text()
    # one netlink batch: no `iptables-nft -D`, no `nft -a list chain`, no `nft -f -`
    assert not re.findall(r'execve\("[^"]*/iptables-nft"', log), log
    assert not re.findall(r'execve\("[^"]*/nft", \[[^]]*"-(a|f)"', log), log
    assert chain(netns) == ["-s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable"]


def test_a_lost_answer_is_told_by_the_rules_still_there(netns: Netns) -> None:
    committed = lifted(netns, [], take=True, lose=True)
    assert committed["answers"] == [True]  # its rule is gone: the batch committed
    assert chain(netns) == OTHERS


def test_a_lost_answer_to_a_refused_batch_is_no_delete(netns: Netns, tmp_path: Path) -> None:
    refused = lifted(netns, slide(tmp_path), take=True, lose=True)
    assert refused["answers"] == [False]  # its rule is still there: the batch did not commit
    expected = [r for r in OTHERS if r != OTHERS[4]] + ["-s 192.0.2.9/32 -j DROP"]
    assert chain(netns) == expected
