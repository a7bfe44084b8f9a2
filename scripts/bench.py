#!/usr/bin/env python3
"""Benchmark unban against the system's own tools, measured in the same run. Run as root.

Each case builds its rules in a throwaway network namespace, so the host is never touched:

    sudo .venv/bin/python scripts/bench.py            # 1k, 10k and 100k rules
    sudo .venv/bin/python scripts/bench.py --sizes 1000 --repeat 1

Prints a Markdown table (the one in README) with each ratio unban / system tool.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

BANNED = "203.0.113.4"

STATE_DIR = tempfile.mkdtemp(prefix="unban-bench-state-")


@dataclass
class Timing:
    seconds: float
    max_rss_kb: int


class Namespace:
    def __init__(self) -> None:
        self.name = f"unban-bench-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Namespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, input: str | None = None) -> str:
        proc = subprocess.run(self.argv(*argv), input=input, capture_output=True, text=True)
        if proc.returncode not in (0, 3):
            raise SystemExit(f"{argv} failed: {proc.stderr.strip()}")
        return proc.stdout

    def time(self, *argv: str, input: str | None = None) -> Timing:
        """Wall time and peak memory of one command (ip netns exec execs it in place)."""
        start = time.perf_counter()
        proc = subprocess.Popen(
            self.argv(*argv),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if input is not None:
            assert proc.stdin is not None
            proc.stdin.write(input)
            proc.stdin.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 3):
            err = proc.stderr.read() if proc.stderr else ""
            raise SystemExit(f"{argv} failed ({proc.returncode}): {err.strip()}")
        return Timing(elapsed, usage.ru_maxrss)


def unban(*args: str) -> list[str]:
    """The CLI, with its change sets (remove records one) in a temp dir, not /var/lib/unban."""
    return [sys.executable, "-m", "unban", "--state-dir", STATE_DIR, *args]


def median(ns: Namespace, repeat: int, argv: Sequence[str], input: str | None = None) -> Timing:
    runs = [ns.time(*argv, input=input) for _ in range(repeat)]
    return Timing(statistics.median(r.seconds for r in runs), max(r.max_rss_kb for r in runs))


def chain_restore(size: int) -> str:
    """f2b-sshd with `size` banned hosts, BANNED among them, plus 1,000 hosts in 198.18.0.0/22."""
    lines = ["*filter", ":f2b-sshd - [0:0]", "-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd"]
    block = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(min(1000, size))]
    others = size - len(block) - 1
    lines += [
        f"-A f2b-sshd -s 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32 -j REJECT"
        for i in range(others)
    ]
    lines += [f"-A f2b-sshd -s {h}/32 -j REJECT" for h in block]
    lines.append(f"-A f2b-sshd -s {BANNED}/32 -j REJECT")
    return "\n".join([*lines, "COMMIT", ""])


def delete_input(size: int) -> str:
    block = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(min(1000, size))]
    dels = [f"-D f2b-sshd -s {h}/32 -j REJECT --reject-with icmp-port-unreachable" for h in block]
    return "\n".join(["*filter", *dels, "COMMIT", ""])


LAYER_FIND = """
import sys, time
from unban.address import parse_target
from unban.layers.xtables import XtablesLayer
start = time.perf_counter()
XtablesLayer(backends=[sys.argv[1]], families=["ipv4"]).find(parse_target("203.0.113.4"))
print(time.perf_counter() - start)
"""


def bench_backend(backend: str, size: int, repeat: int) -> list[tuple[str, str, Timing, Timing]]:
    rows = []
    with Namespace() as ns:
        ns.run(f"iptables-{backend}-restore", input=chain_restore(size))
        save = median(ns, repeat, [f"iptables-{backend}-save"])
        find = median(ns, repeat, unban("find", BANNED, "--json"))
        rows.append((f"find, {size:,} rules, {backend}", f"iptables-{backend}-save", find, save))
        layer = Timing(
            min(float(ns.run(sys.executable, "-c", LAYER_FIND, backend)) for _ in range(repeat)), 0
        )
        rows.append(
            (
                "  of which the iptables layer's read and scan, in-process",
                f"iptables-{backend}-save",
                layer,
                save,
            )
        )
    removed = min(1000, size)
    with Namespace() as ns:  # the system tool deleting the same rules
        ns.run(f"iptables-{backend}-restore", input=chain_restore(size))
        restore = ns.time(f"iptables-{backend}-restore", "--noflush", input=delete_input(size))
    with Namespace() as ns:
        ns.run(f"iptables-{backend}-restore", input=chain_restore(size))
        remove = ns.time(*unban("remove", "198.18.0.0/22", "--json"))
        left = ns.run(f"iptables-{backend}-save").count("198.18.")
        assert left == 0, f"{left} rules in 198.18.0.0/22 left"
        rows.append(
            (
                f"remove {removed:,} of {size:,} rules, {backend}",
                f"iptables-{backend}-restore --noflush",
                remove,
                restore,
            )
        )
    return rows


def bench_iptc(size: int) -> tuple[str, str, Timing, Timing]:
    """python-iptables reading the same legacy chain, for the record (why unban reads text)."""
    code = (
        "import iptc\n"
        "t = iptc.Table(iptc.Table.FILTER)\n"
        "n = sum(1 for r in iptc.Chain(t, 'f2b-sshd').rules if r.src)\n"
    )
    with Namespace() as ns:
        ns.run("iptables-legacy-restore", input=chain_restore(size))
        iptc_time = ns.time(sys.executable, "-c", code)
        save = ns.time("iptables-legacy-save")
    return (f"python-iptables reads {size:,} rules", "iptables-legacy-save", iptc_time, save)


def bench_sets(size: int, repeat: int) -> list[tuple[str, str, Timing, Timing]]:
    rows = []
    elements = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(size - 1)] + [BANNED]
    with Namespace() as ns:
        script = [
            "add table inet f2b-table",
            "add set inet f2b-table addr-set-sshd { type ipv4_addr; }",
            "add chain inet f2b-table f2b-chain { type filter hook input priority -1; }",
            "add rule inet f2b-table f2b-chain ip saddr @addr-set-sshd reject",
        ]
        for start in range(0, len(elements), 5000):
            chunk = ", ".join(elements[start : start + 5000])
            script.append(f"add element inet f2b-table addr-set-sshd {{ {chunk} }}")
        ns.run("nft", "-f", "-", input="\n".join(script) + "\n")
        listing = median(ns, repeat, ["nft", "list", "set", "inet", "f2b-table", "addr-set-sshd"])
        find = median(ns, repeat, unban("find", BANNED, "--json"))
        rows.append((f"find in a {size:,}-element nft set", "nft list set", find, listing))
    with Namespace() as ns:
        lines = [f"create f2b-sshd hash:ip maxelem {size * 2}"]
        lines += [f"add f2b-sshd {e}" for e in elements]
        ns.run("ipset", "restore", input="\n".join(lines) + "\n")
        ns.run(
            "iptables-nft",
            "-I",
            "INPUT",
            "-m",
            "set",
            "--match-set",
            "f2b-sshd",
            "src",
            "-j",
            "REJECT",
        )
        listing = median(ns, repeat, ["ipset", "list", "f2b-sshd"])
        find = median(ns, repeat, unban("find", BANNED, "--json"))
        rows.append((f"find in a {size:,}-element ipset", "ipset list f2b-sshd", find, listing))
    return rows


LIBRARY_PROBE = """
import json, socket, subprocess, sys, time
n = int(sys.argv[1])
routes = "".join(f"route add unreachable 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32\\n" for i in range(n))
subprocess.run(["ip", "-batch", "-"], input=routes, text=True, check=True)
subprocess.run(["ipset", "create", "s", "hash:ip"], check=True)
subprocess.run(["ipset", "add", "s", "203.0.113.4"], check=True)
result = {}
start = time.perf_counter()
for family in ("-4", "-6"):
    for kind in ("unreachable", "blackhole", "prohibit"):
        json.loads(subprocess.run(["ip", "-j", family, "route", "show", "table", "all", "type", kind],
                                  capture_output=True, text=True).stdout or "[]")
result["routes_ip"] = time.perf_counter() - start
start = time.perf_counter()
from pyroute2 import IPRoute, IPSet
with IPRoute() as ipr:
    for family in (socket.AF_INET, socket.AF_INET6):
        [m for m in ipr.route("dump", family=family) if m["type"] in (2, 6, 7)]
result["routes_pyroute2"] = time.perf_counter() - start
start = time.perf_counter()
subprocess.run(["ipset", "test", "s", "203.0.113.4"], capture_output=True)
result["ipset_test_binary"] = time.perf_counter() - start
start = time.perf_counter()
with IPSet() as ips:
    ips.test("s", "203.0.113.4")
result["ipset_test_pyroute2"] = time.perf_counter() - start
print(json.dumps(result))
"""


def bench_libraries(size: int) -> list[tuple[str, str, Timing, Timing]]:
    """pyroute2 (a first choice for routes and ipsets) against the binaries unban uses.

    Library times include its import, which a one-shot CLI pays on every run.
    """
    with Namespace() as ns:
        result = json.loads(ns.run(sys.executable, "-c", LIBRARY_PROBE, str(size)))
    return [
        (
            f"pyroute2 reads {size:,} blocking routes",
            "ip -j route show (6 calls)",
            Timing(result["routes_pyroute2"], 0),
            Timing(result["routes_ip"], 0),
        ),
        (
            "pyroute2 IPSet tests one address",
            "ipset test",
            Timing(result["ipset_test_pyroute2"], 0),
            Timing(result["ipset_test_binary"], 0),
        ),
    ]


HELLO = """
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "world") -> None:
    typer.echo(f"hello {name}")
app()
"""


def bench_startup(repeat: int) -> list[tuple[str, str, Timing, Timing]]:
    """Start-up: `unban --help` against a typer hello-world, and `find` on a host with no rules
    against `unban --help` (what find costs beyond starting)."""
    with Namespace() as ns:
        hello = median(ns, repeat, [sys.executable, "-c", HELLO, "--help"])
        helped = median(ns, repeat, unban("--help"))
        found = median(ns, repeat, unban("find", BANNED, "--json"))
    return [
        ("unban --help", "typer hello-world --help", helped, hello),
        ("find, a host with no rules", "unban --help", found, helped),
    ]


def bench_me_one_rule(size: int, repeat: int) -> list[tuple[str, str, Timing, Timing]]:
    """`unban me` lifting the one rule of BANNED among `size` iptables-nft rules, final verdict
    included, against the one `iptables-nft -D` of that rule. Each run gets the ruleset anew.
    No fail2ban config and no exemption: nothing outside the namespace is read or written."""
    ours, theirs = [], []
    empty = os.path.join(STATE_DIR, "no-fail2ban")
    os.makedirs(empty, exist_ok=True)
    spec = ["-s", f"{BANNED}/32", "-j", "REJECT"]
    for _ in range(repeat):
        with Namespace() as ns:
            ns.run("iptables-nft-restore", input=chain_restore(size))
            theirs.append(ns.time("iptables-nft", "-D", "f2b-sshd", *spec))
        with Namespace() as ns:
            ns.run("iptables-nft-restore", input=chain_restore(size))
            ours.append(
                ns.time(*unban("--fail2ban-conf", empty, "me", BANNED, "--no-ignore", "--no-sshd"))
            )
            assert BANNED not in ns.run("iptables-nft-save"), "me left the rule"
    return [
        (
            f"me lifting 1 rule among {size:,}, nft",
            "iptables-nft -D (that rule)",
            Timing(statistics.median(t.seconds for t in ours), max(t.max_rss_kb for t in ours)),
            Timing(statistics.median(t.seconds for t in theirs), 0),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--no-iptc", action="store_true", help="skip the python-iptables reading")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark makes network namespaces")

    rows = bench_startup(max(args.repeat, 5))
    for size in args.sizes:
        for backend in ("legacy", "nft"):
            rows.extend(bench_backend(backend, size, args.repeat))
    biggest = max(args.sizes)
    rows.extend(bench_me_one_rule(biggest, args.repeat))
    rows.extend(bench_sets(biggest, args.repeat))
    if not args.no_iptc:
        rows.append(bench_iptc(biggest))
    rows.extend(bench_libraries(min(biggest, 10000)))

    print("| case | unban | system tool | tool | ratio | peak RSS |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for case, tool, ours, theirs in rows:
        print(
            f"| {case} | {ours.seconds:.3f} s | {theirs.seconds:.3f} s | `{tool}` | "
            f"{ours.seconds / theirs.seconds:.2f}x | "
            f"{f'{ours.max_rss_kb / 1024:.0f} MB' if ours.max_rss_kb else '-'} |"
        )


if __name__ == "__main__":
    main()
