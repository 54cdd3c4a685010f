"""The `/experiment` grammar (DESIGN section 2): text in, a typed command out, or a `UsageError`."""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict

from bot.errors import UsageError
from bot.mrkdwn import code as _code
from bot.texts import USAGE
from providers.models import Change, ChangeKind, Status


class Command(BaseModel):
    model_config = ConfigDict(frozen=True)


class Help(Command):
    pass


class New(Command):
    provider: str | None = None


class Track(Command):
    provider: str
    remote_id: str


class ListExperiments(Command):
    provider: str | None = None
    status: Status | None = None


class Show(Command):
    ref: str


class Audit(Command):
    ref: str


class RequestChange(Command):
    ref: str
    change: Change


_SIMPLE = {
    "start": ChangeKind.START,
    "pause": ChangeKind.PAUSE,
    "resume": ChangeKind.RESUME,
    "stop": ChangeKind.STOP,
    "archive": ChangeKind.ARCHIVE,
    "restore": ChangeKind.RESTORE,
}
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d{1,2})?)%?$")
_PAIR = re.compile(r"^([A-Za-z0-9_.-]+)=(\d{1,3}(?:\.\d{1,2})?)%?$")


def _arity(verb: str, args: list[str], least: int, most: int | None) -> None:
    if len(args) < least:
        raise UsageError(f"`{verb}` needs more arguments.", USAGE[verb])
    if most is not None and len(args) > most:
        extra = " ".join(args[most:])
        raise UsageError(f"`{verb}` got more arguments than it takes: {_code(extra)}.", USAGE[verb])


def parse(text: str) -> Command:
    words = text.split()
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    if verb in ("help", "-h", "--help"):
        return Help()
    if verb not in USAGE:
        raise UsageError(f"I don't know {_code(verb)}. Try `/experiment help`.", "/experiment <subcommand> …")
    if verb == "new":
        _arity(verb, args, 0, 1)
        return New(provider=args[0].lower() if args else None)
    if verb == "track":
        _arity(verb, args, 2, 2)
        return Track(provider=args[0].lower(), remote_id=args[1])
    if verb == "list":
        return _list(args)
    if verb in ("show", "audit"):
        _arity(verb, args, 1, 1)
        return Show(ref=args[0]) if verb == "show" else Audit(ref=args[0])
    if verb in _SIMPLE:
        _arity(verb, args, 1, 1)
        return RequestChange(ref=args[0], change=Change(kind=_SIMPLE[verb]))
    if verb == "ramp":
        _arity(verb, args, 2, 2)
        match = _PERCENT.match(args[1])
        if not match or float(match.group(1)) > 100:
            raise UsageError(f"{_code(args[1])} is not a percentage from 0 to 100.", USAGE[verb])
        return RequestChange(ref=args[0], change=Change(kind=ChangeKind.EXPOSURE, exposure=float(match.group(1))))
    if verb == "split":
        _arity(verb, args, 2, None)
        return RequestChange(ref=args[0], change=Change(kind=ChangeKind.WEIGHTS, weights=_weights(args[1:])))
    _arity(verb, args, 2, 2)
    return RequestChange(ref=args[0], change=Change(kind=ChangeKind.SHIP, variant=args[1]))


def _list(args: list[str]) -> ListExperiments:
    _arity("list", args, 0, 2)
    provider, status = None, None
    for arg in args:
        if arg.lower() in {s.value for s in Status}:
            status = Status(arg.lower())
        elif provider is None:
            provider = arg.lower()
        else:
            raise UsageError(f"{_code(arg)} is not a status ({', '.join(s.value for s in Status)}).", USAGE["list"])
    return ListExperiments(provider=provider, status=status)


def _weights(pairs: list[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for pair in pairs:
        match = _PAIR.match(pair)
        if not match or float(match.group(2)) > 100:
            raise UsageError(f"{_code(pair)} is not `<variant>=<weight>` with a weight from 0 to 100.", USAGE["split"])
        if match.group(1) in weights:
            raise UsageError(f"{_code(match.group(1))} is given twice.", USAGE["split"])
        weights[match.group(1)] = float(match.group(2))
    total = sum(weights.values())
    if not math.isclose(total, 100, abs_tol=0.01 * len(weights)):
        raise UsageError(f"The weights add up to {round(total, 2):g}; they must add up to 100.", USAGE["split"])
    return weights
