"""The /experiment grammar: every subcommand, and clear usage errors for bad input."""

from __future__ import annotations

import pytest

from bot.errors import UsageError
from commands.grammar import Audit, Help, ListExperiments, New, RequestChange, Show, Track, parse
from providers.models import ChangeKind, Status


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help()),
        ("help", Help()),
        ("new", New()),
        ("new Sandbox", New(provider="sandbox")),
        ("track sandbox sbx-4", Track(provider="sandbox", remote_id="sbx-4")),
        ("list", ListExperiments()),
        ("list sandbox running", ListExperiments(provider="sandbox", status=Status.RUNNING)),
        ("list paused", ListExperiments(status=Status.PAUSED)),
        ("show exp-1", Show(ref="exp-1")),
        ("audit exp-1", Audit(ref="exp-1")),
    ],
)
def test_parses_commands(text: str, expected: object) -> None:
    assert parse(text) == expected


def test_parses_changes() -> None:
    ramp = parse("ramp exp-1 25%")
    assert isinstance(ramp, RequestChange) and ramp.change.kind is ChangeKind.EXPOSURE and ramp.change.exposure == 25
    split = parse("split exp-2 control=40 treatment=60")
    assert isinstance(split, RequestChange) and split.change.weights == {"control": 40, "treatment": 60}
    ship = parse("ship exp-3 treatment")
    assert isinstance(ship, RequestChange) and ship.change.variant == "treatment"
    for verb in ("start", "pause", "resume", "stop"):
        cmd = parse(f"{verb} exp-1")
        assert isinstance(cmd, RequestChange) and cmd.change.kind.value == verb


@pytest.mark.parametrize(
    ("text", "message", "usage"),
    [
        ("frobnicate", "don't know `frobnicate`", "/experiment <subcommand>"),
        ("ramp exp-1", "needs more arguments", "/experiment ramp <ref> <percent>"),
        ("ramp exp-1 150", "`150` is not a percentage", "/experiment ramp <ref> <percent>"),
        ("ramp exp-1 lots", "`lots` is not a percentage", "/experiment ramp <ref> <percent>"),
        ("ramp exp-1 20 30", "more arguments than it takes: `30`", "/experiment ramp"),
        ("split exp-1 a=50 b=40", "add up to 90", "/experiment split"),
        ("split exp-1 a=50 a=50", "`a` is given twice", "/experiment split"),
        ("split exp-1 a:50", "`a:50` is not", "/experiment split"),
        ("ship exp-1", "needs more arguments", "/experiment ship <ref> <variant>"),
        ("track sandbox", "needs more arguments", "/experiment track"),
        ("list sandbox running extra", "more arguments", "/experiment list"),
        ("start", "needs more arguments", "/experiment start <ref>"),
    ],
)
def test_bad_input_names_the_problem_and_the_usage(text: str, message: str, usage: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text)
    assert message in err.value.message
    assert err.value.usage is not None and err.value.usage.startswith(usage)
