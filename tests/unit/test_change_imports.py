"""What only a change needs is imported when a run makes one: a heal run that finds nothing
(the one a timer starts every few minutes) and `me --no-sshd` load none of it."""

from __future__ import annotations

import subprocess
import sys

# Loaded by a run that changes something, never by one that only reads.
CHANGE_ONLY = (
    "unban.transaction",
    "unban.journal",
    "unban.undo",
    "unban.steptext",
    "unban.exemptions",
    "unban.fail2ban.ignoreip",
)

READ_ONLY_RUN = """
import sys
from unban import engine, heal, me
from unban.settings import Settings
layers = engine.default_layers(Settings("/nonexistent", "/nonexistent"), without_sshd=True)
assert [layer.name for layer in layers if layer.name == "sshd"] == []
assert me.select_layers(layers, ["firewall", "fail2ban", "hosts", "owners"]) == layers
from unban.address import parse_target
result = me.run_me(
    parse_target("203.0.113.4"), layers=[], ignore=False, check_sshd=False,
    confdir="/nonexistent", state_dir="/nonexistent",
)
assert heal.from_me(result).status == heal.CLEAR
print(" ".join(sorted(sys.modules)))
"""


def test_reading_layers_loads_nothing_only_a_change_needs() -> None:
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", READ_ONLY_RUN], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "unban.layers.fail2ban" in loaded and "unban.heal" in loaded
    assert sorted(loaded.intersection(CHANGE_ONLY)) == []
    assert "unban.layers.sshd_penalty" not in loaded


def test_every_layer_by_default() -> None:
    from unban import engine
    from unban.settings import Settings

    names = [layer.name for layer in engine.default_layers(Settings())]
    assert names[0] == "fail2ban" and names[-1] == "sshd"
