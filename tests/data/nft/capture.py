"""Capture `nft -j -t list table` and `nft -a -s -t list table` for every table of corpus.nft.

Run as root: python3 tests/data/nft/capture.py (makes and deletes a network namespace; the
ingress chains need an interface eth9, a veth pair in there).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    ns = f"unban-cap-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:

        def nft(*args: str, stdin: str = "") -> str:
            return subprocess.run(
                ["ip", "netns", "exec", ns, "nft", *args],
                input=stdin,
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "link",
                "add",
                "eth9",
                "type",
                "veth",
                "peer",
                "name",
                "eth8",
            ],
            check=True,
        )
        nft("-f", "-", stdin=(HERE / "corpus.nft").read_text())
        tables = json.loads(nft("-j", "list", "tables"))["nftables"]
        docs, texts = {}, []
        for item in tables:
            if "table" in item:
                family, name = item["table"]["family"], item["table"]["name"]
                docs[f"{family} {name}"] = json.loads(
                    nft("-j", "-t", "list", "table", family, name)
                )
                texts.append(nft("-a", "-s", "-t", "list", "table", family, name))
        (HERE / "corpus.json").write_text(json.dumps(docs, indent=1) + "\n")
        (HERE / "corpus.txt").write_text("".join(texts))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
