#!/usr/bin/env python3
"""The nft lookups unban.path.nft_lookups chooses between, at 100,000 elements. Run as root:

    sudo .venv/bin/python scripts/bench_nft_lookups.py [--size N] [--repeat R]

Each kind of set (hash, interval, verdict map, concatenation) is the only set of the ruleset
of a throwaway network namespace while it is measured (nft caches every element of a table,
so other big sets would make every command slower). Prints milliseconds, median of R runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import uuid

KINDS = {
    "hash": ("set s { type ipv4_addr; }", "ip saddr @s drop", "", "10.1.2.3"),
    "interval": ("set s { type ipv4_addr; flags interval; }", "ip saddr @s drop", "", "10.1.2.3"),
    "map": ("map s { type ipv4_addr : verdict; }", "ip saddr vmap @s", " : drop", "10.1.2.3"),
    "concat": (
        "set s { type ipv4_addr . inet_service; }",
        "ip saddr . tcp dport @s drop",
        " . 22",
        "10.1.2.3 . 22",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ns = f"unban-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)

    def nft(*argv: str, stdin: str = "") -> tuple[float, int]:
        start = time.perf_counter()
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", *argv], input=stdin, capture_output=True, text=True
        )
        return time.perf_counter() - start, proc.returncode

    try:
        addresses = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(args.size)]
        print("| set | lookup | ms | rc |\n| --- | --- | --- | --- |")
        for kind, (decl, rule, suffix, key) in KINDS.items():
            nft("flush", "ruleset")
            chain = f"chain in {{ type filter hook input priority 0; {rule}; }}"
            nft("-f", "-", stdin=f"table ip b {{ {decl}; {chain}; }}\n")
            for start in range(0, args.size, 20000):
                chunk = ", ".join(a + suffix for a in addresses[start : start + 20000])
                nft("-f", "-", stdin=f"add element ip b s {{ {chunk} }}\n")
            absent = "192.0.2.1" + (" . 22" if kind == "concat" else "")
            for name, argv in (
                ("-c delete element, present", ["-c", "delete", "element", "ip", "b", "s"]),
                ("-c delete element, absent", ["-c", "delete", "element", "ip", "b", "s"]),
                ("get element, present", ["get", "element", "ip", "b", "s"]),
                ("-j -t list table", ["-j", "-t", "list", "table", "ip", "b"]),
            ):
                element = absent if "absent" in name else key
                full = argv if "list" in argv else [*argv, f"{{ {element} }}"]
                runs = [nft(*full) for _ in range(args.repeat)]
                ms = statistics.median(t for t, _rc in runs) * 1000
                print(f"| {kind} | `nft {name}` | {ms:.0f} | {runs[-1][1]} |")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
