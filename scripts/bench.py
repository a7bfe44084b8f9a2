#!/usr/bin/env python3
"""Benchmark unban against the system's own tools, measured in the same run. Run as root.

Each case builds its rules in a throwaway network namespace, so the host is never touched:

    sudo .venv/bin/python scripts/bench.py            # 1k, 10k and 100k rules
    sudo .venv/bin/python scripts/bench.py --sizes 1000 --repeat 1

Prints a Markdown table (the one in README) with each ratio unban / system tool.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

BANNED = "203.0.113.4"
BANS = 10000

STATE_DIR = tempfile.mkdtemp(prefix="unban-bench-state-")
atexit.register(shutil.rmtree, STATE_DIR, ignore_errors=True)  # the runs' change sets


@dataclass
class Timing:
    seconds: float
    max_rss_kb: int
    cpu_seconds: float = 0.0  # user + system, the programs it waited for included
    ratio: float | None = None  # median of the ratios of runs paired with the tool's


def paired_result(ours: Sequence[Timing], theirs: Sequence[Timing]) -> tuple[Timing, Timing]:
    """Medians of each side, and the median of the ratios pair by pair (run i of ours over
    run i of the tool's, taken one after the other): a machine whose speed drifts during the
    run moves both sides of a pair alike."""
    ratio = statistics.median(a.seconds / b.seconds for a, b in zip(ours, theirs))
    return (
        Timing(
            statistics.median(t.seconds for t in ours),
            max(t.max_rss_kb for t in ours),
            statistics.median(t.cpu_seconds for t in ours),
            ratio,
        ),
        Timing(statistics.median(t.seconds for t in theirs), 0),
    )


class Namespace:
    def __init__(self, name: str = "") -> None:
        self.name = name or f"unban-bench-{uuid.uuid4().hex[:8]}"

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
        return Timing(elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)


def unban(*args: str) -> list[str]:
    """The CLI, with its change sets (remove records one) in a temp dir, not /var/lib/unban."""
    return [sys.executable, "-m", "unban", "--state-dir", STATE_DIR, *args]


def median(ns: Namespace, repeat: int, argv: Sequence[str], input: str | None = None) -> Timing:
    runs = [ns.time(*argv, input=input) for _ in range(repeat)]
    return Timing(statistics.median(r.seconds for r in runs), max(r.max_rss_kb for r in runs))


def paired(
    ns: Namespace, repeat: int, ours: Sequence[str], theirs: Sequence[str]
) -> tuple[Timing, Timing]:
    """Ours and the tool's in turn, `repeat` pairs, after one unpaired warm-up run of each."""
    ns.time(*theirs)
    ns.time(*ours)
    runs = [(ns.time(*ours), ns.time(*theirs)) for _ in range(repeat)]
    return paired_result([a for a, _ in runs], [b for _, b in runs])


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
        save_argv = [f"iptables-{backend}-save"]
        find, save = paired(ns, repeat, unban("find", BANNED, "--json"), save_argv)
        rows.append((f"find, {size:,} rules, {backend}", f"iptables-{backend}-save", find, save))
        listed, save_again = paired(ns, 1, unban("list", "--json"), save_argv)
        rows.append(
            (f"list, {size:,} rules, {backend}", f"iptables-{backend}-save", listed, save_again)
        )
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
        find, listing = paired(
            ns,
            repeat,
            unban("find", BANNED, "--json"),
            ["nft", "list", "set", "inet", "f2b-table", "addr-set-sshd"],
        )
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
        find, listing = paired(
            ns, repeat, unban("find", BANNED, "--json"), ["ipset", "list", "f2b-sshd"]
        )
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
        helped, hello = paired(ns, repeat, unban("--help"), [sys.executable, "-c", HELLO, "--help"])
        found, helped_again = paired(ns, repeat, unban("find", BANNED, "--json"), unban("--help"))
    return [
        ("unban --help", "typer hello-world --help", helped, hello),
        ("find, a host with no rules", "unban --help", found, helped_again),
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
            *paired_result(ours, theirs),
        )
    ]


NO_ACTION = "[Definition]\nactionban =\nactionunban =\nactionstart =\nactionstop =\n"


def bench_fail2ban_bans(bans: int, repeat: int) -> list[tuple[str, str, Timing, Timing]]:
    """`unban me` on a host where a real fail2ban-server holds `bans` bans in its sshd jail,
    against `fail2ban-client unban IP`. The jail's ban action does nothing (banning 10,000
    addresses through iptables would take minutes to set up): both sides pay fail2ban's own
    unban and database, and me also reads every other layer. BANNED is banned again before
    each timed run."""
    from pathlib import Path

    from unban._sandbox import Fail2ban
    from unban._sandbox import Netns as SandboxNetns

    ns = SandboxNetns.create("unban-bench")
    try:
        root = Path(tempfile.mkdtemp(prefix="unban-bench-f2b-"))
        root.chmod(0o755)
        f2b = Fail2ban(ns, root)
        f2b.write_config(
            jails={"sshd": {"banaction": "noaction", "bantime": "1d"}},
            files={"action.d/noaction.conf": NO_ACTION},
        )
        f2b.start()
        others = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(bans - 1)]
        for start in range(0, len(others), 2000):
            f2b.client("set", "sshd", "banip", *others[start : start + 2000])
        ours, theirs = [], []
        client = ["fail2ban-client", "-c", str(f2b.confdir), "unban", BANNED]
        me = [*f2b.global_args(), "me", BANNED, "--no-ignore", "--no-sshd"]
        helper = Namespace(ns.name)  # timing inside the sandbox's namespace
        for _ in range(repeat):
            f2b.client("set", "sshd", "banip", BANNED)
            theirs.append(helper.time(*client))
            f2b.client("set", "sshd", "banip", BANNED)
            ours.append(helper.time(sys.executable, "-m", "unban", *me))
            assert BANNED not in f2b.banned("sshd"), "me left the ban"
        assert len(f2b.banned("sshd")) == bans - 1
        f2b.stop()
    finally:
        ns.delete()
    return [
        (
            f"me with {bans:,} fail2ban bans",
            "fail2ban-client unban IP",
            *paired_result(ours, theirs),
        )
    ]


def bench_heal_idle(repeat: int) -> tuple[str, float, int]:
    """CPU seconds (user + system, its programs included) of `unban heal` when nothing blocks
    the protected address. The sshd layer is left out of the config: on OpenSSH 9.8+ heal
    would otherwise keep the address in the host's PerSourcePenaltyExemptList."""
    work = tempfile.mkdtemp(prefix="unban-bench-heal-")
    os.chmod(work, 0o755)
    config = os.path.join(work, "unban.toml")
    with open(config, "w") as handle:
        handle.write(
            f'protect = ["{BANNED}"]\nlayers = ["firewall", "fail2ban", "hosts", "owners"]\n'
            "ignoreip = false\n"
        )
    empty = os.path.join(work, "no-fail2ban")
    os.makedirs(empty)
    argv = unban("--fail2ban-conf", empty, "heal", "--config", config)
    argv += ["--lock-file", os.path.join(work, "heal.lock")]
    cpu, rss = [], 0
    with Namespace() as ns:
        for _ in range(repeat):
            timing = ns.time(*argv)
            cpu.append(timing.cpu_seconds)
            rss = max(rss, timing.max_rss_kb)
    return "heal, nothing blocked", statistics.median(cpu), rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--no-iptc", action="store_true", help="skip the python-iptables reading")
    parser.add_argument("--bans", type=int, default=BANS, help="fail2ban bans for the me case")
    parser.add_argument("--no-fail2ban", action="store_true", help="skip the fail2ban case")
    parser.add_argument(
        "--only",
        choices=CASES,
        nargs="+",
        help="run only these groups of cases (default: all)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark makes network namespaces")

    # Timed as installed: the package's bytecode written first (PYTHONDONTWRITEBYTECODE
    # would otherwise have every run compile it from source).
    import compileall

    import unban

    compileall.compile_dir(os.path.dirname(unban.__file__), quiet=1)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()
    chosen = set(args.only or CASES)
    if args.no_fail2ban:
        chosen.discard("me-fail2ban")
    if args.no_iptc:
        chosen.discard("iptc")
    rows: list[tuple[str, str, Timing, Timing]] = []
    if "startup" in chosen:
        rows.extend(bench_startup(max(args.repeat, 10)))
    if "backends" in chosen:
        for size in args.sizes:
            for backend in ("legacy", "nft"):
                rows.extend(bench_backend(backend, size, args.repeat))
    biggest = max(args.sizes)
    if "me-nft" in chosen:
        rows.extend(bench_me_one_rule(biggest, args.repeat))
    if "me-fail2ban" in chosen:
        rows.extend(bench_fail2ban_bans(args.bans, args.repeat))
    heal = bench_heal_idle(max(args.repeat, 5)) if "heal" in chosen else None
    if "sets" in chosen:
        rows.extend(bench_sets(biggest, args.repeat))
    if "iptc" in chosen:
        rows.append(bench_iptc(biggest))
    if "libraries" in chosen:
        rows.extend(bench_libraries(min(biggest, 10000)))
    load_after = os.getloadavg()

    print(f"{started}, {os.cpu_count()} cores, load average {load[0]:.1f} at the start and "
          f"{load_after[0]:.1f} at the end\n")  # fmt: skip
    print("| case | unban | system tool | tool | ratio | peak RSS |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for case, tool, ours, theirs in rows:
        print(
            f"| {case} | {ours.seconds:.3f} s | {theirs.seconds:.3f} s | `{tool}` | "
            f"{ratio_of(ours, theirs):.2f}x | "
            f"{f'{ours.max_rss_kb / 1024:.0f} MB' if ours.max_rss_kb else '-'} |"
        )
    if heal is not None:
        print(f"| {heal[0]} | {heal[1]:.3f} s of CPU | | | | {heal[2] / 1024:.0f} MB |")
    print()
    print(targets(rows, heal[1] if heal is not None else None, biggest, args.bans))


# The groups of cases `--only` picks from, in the order they run.
CASES = ("startup", "backends", "me-nft", "me-fail2ban", "heal", "sets", "iptc", "libraries")


# The targets: (case, the ratio it must stay within). Peak memory: under 300 MB.
TARGETS = (
    ("unban --help", 1.2),
    ("find, a host with no rules", 1.1),
    ("find, {n:,} rules, legacy", 1.5),
    ("find, {n:,} rules, nft", 1.5),
    ("me lifting 1 rule among {n:,}, nft", 2.0),
    ("me with {bans:,} fail2ban bans", 3.0),
)


COMMANDS = ("find", "list", "remove", "me")  # the rows that time an unban command


def ratio_of(ours: Timing, theirs: Timing) -> float:
    return ours.ratio if ours.ratio is not None else ours.seconds / theirs.seconds


def targets(
    rows: Sequence[tuple[str, str, Timing, Timing]],
    heal_cpu: float | None,
    size: int,
    bans: int,
) -> str:
    """Each target of the issue with its measured ratio and whether it was met."""
    by_case = {case: (ours, theirs) for case, _tool, ours, theirs in rows}
    lines = ["| target | measured | met |", "| --- | ---: | --- |"]
    for pattern, bound in TARGETS:
        case = pattern.format(n=size, bans=bans)
        if case not in by_case:
            continue
        ours, theirs = by_case[case]
        ratio = ratio_of(ours, theirs)
        lines.append(
            f"| {case}: within {bound}x | {ratio:.2f}x | {'yes' if ratio <= bound else 'no'} |"
        )
    if heal_cpu is not None:
        lines.append(f"| heal, nothing blocked: under 0.2 s of CPU | {heal_cpu:.3f} s | "
                     f"{'yes' if heal_cpu < 0.2 else 'no'} |")  # fmt: skip
    peak = max(
        (
            ours.max_rss_kb
            for case, _t, ours, _th in rows
            if f"{size:,}" in case and case.startswith(COMMANDS)
        ),
        default=0,
    )
    lines.append(f"| peak memory at {size:,} rules: under 300 MB | {peak / 1024:.0f} MB | "
                 f"{'yes' if peak < 300 * 1024 else 'no'} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
