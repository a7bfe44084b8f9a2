"""probe's pacing and hints for OpenSSH 9.8+ (PerSourcePenalties), with a fake attempt."""

from __future__ import annotations

from unban.probe import PENALTY_PACE, Attempt, hints, probe

ADDR = ("203.0.113.1", 22)


def run(banner: str, count: int = 4) -> tuple[list[float], tuple[str, ...]]:
    waits: list[float] = []

    def attempt(_sockaddr: tuple[object, ...], _family: int, _timeout: float) -> Attempt:
        return Attempt("203.0.113.1", "banner", "ok", 0.01, banner=banner)

    report = probe(
        "203.0.113.1",
        count=count,
        attempt_fn=attempt,
        resolver=lambda host, port: [(2, ADDR)],
        sleep=waits.append,
    )
    return waits, report.hints


def test_openssh_10_attempts_are_paced_and_warned_about() -> None:
    waits, said = run("SSH-2.0-OpenSSH_10.0p2 Debian-7")
    assert waits == [PENALTY_PACE] * 3
    assert any("PerSourcePenalties noauth" in hint for hint in said)


def test_older_servers_keep_the_short_pause() -> None:
    waits, said = run("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
    assert waits == [0.3] * 3
    assert not any("PerSourcePenalties noauth" in hint for hint in said)


def test_not_allowed_at_this_time_names_penalties_and_maxstartups() -> None:
    refused = Attempt(
        "203.0.113.1", "closed", "closed", 0.01, before_banner=("Not allowed at this time",)
    )
    said = hints([refused], "203.0.113.1", 22)
    assert any("'Not allowed at this time' (OpenSSH 10)" in hint for hint in said)
    assert any("PerSourcePenalties penalty" in hint for hint in said)
