"""The progress line: shown only after DELAY, erased before stdout, never when disabled."""

from __future__ import annotations

import io
import time

import pytest

from unban import progress
from unban.progress import CLEAR, Progress


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.1)
    monkeypatch.setattr(progress, "TICK", 0.02)


def test_a_slow_step_gets_a_line_that_goes_before_the_next_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    with Progress(True, stream=stream) as shown:
        shown.step("reading every layer")
        time.sleep(0.3)
        shown.echo("plan for 203.0.113.4", "applying the plan")
        assert stream.getvalue().endswith(CLEAR)  # erased before the stdout line
        shown.idle()
    text = stream.getvalue()
    assert f"{CLEAR}unban: reading every layer... 0 s" in text
    assert "applying the plan" not in text  # it was quick
    assert capsys.readouterr().out == "plan for 203.0.113.4\n"


def test_a_quick_step_prints_nothing() -> None:
    stream = io.StringIO()
    with Progress(True, stream=stream) as shown:
        shown.step("reading every layer")
    assert stream.getvalue() == ""


def test_disabled_prints_nothing_however_slow() -> None:
    stream = io.StringIO()
    with Progress(False, stream=stream) as shown:
        shown.step("reading every layer")
        time.sleep(0.3)
    assert stream.getvalue() == ""
