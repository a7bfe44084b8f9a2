"""`unban me` with a failure injected for real in the middle, run where sshd runs.

    python -m tests.integration.me_inject '{"address": "203.0.113.4", "confdir": "...",
        "state_dir": "...", "sshd_config": "...", "after": "done: removed route",
        "argv": ["sed", "-i", "s/x/y/", "/etc/hosts.deny"]}'

Runs `unban.me.run_me` in this process; when the first step line starting with `after` is
reported (that batch is applied), runs `argv` once (no shell): it changes what a later batch
targets behind unban's back, so that batch fails for real. Prints one JSON object: the exit
status, the error message or the summary, and every line reported.
"""

from __future__ import annotations

import json
import subprocess
import sys

from unban.address import parse_target
from unban.errors import UnbanError
from unban.me import run_me


def main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    lines: list[str] = []
    fired: list[str] = []

    def event(line: str) -> None:
        lines.append(line)
        if not fired and line.startswith(spec["after"]):
            proc = subprocess.run(spec["argv"], capture_output=True, text=True, check=False)
            fired.append(f"{spec['argv']} -> {proc.returncode} {proc.stderr.strip()}")

    out: dict[str, object] = {"lines": lines, "fired": fired}
    try:
        result = run_me(
            parse_target(spec["address"]),
            sshd_config=spec.get("sshd_config"),
            on_event=event,
            confdir=spec["confdir"],
            state_dir=spec["state_dir"],
        )
    except UnbanError as exc:
        out.update(exit_status=int(exc.exit_status), error=str(exc))
    else:
        out.update(exit_status=int(result.status), summary=result.summary)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
