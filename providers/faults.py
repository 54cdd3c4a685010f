"""Configurable slowness and failure for in-process providers: a latency per call and a fault per write."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

from pydantic import BeforeValidator

from providers.errors import Conflict, OutcomeUnknown, ProviderError, RateLimited, Stale, Unavailable

T = TypeVar("T")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")
FaultKind = Literal["none", "conflict", "stale", "server_error", "rate_limited", "timeout_after_write", "dropped"]


def _seconds(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration like 400ms or 2s")
    number = float(match.group(1))
    return number / 1000 if match.group(2) == "ms" else number


Latency = Annotated[float, BeforeValidator(_seconds)]
"""A duration written "400ms", "2s" or as seconds."""


@dataclass
class _Injected:
    kind: FaultKind
    times: int
    skip: int


class FaultPlan:
    """Decides whether a write fails and how: a configured fault at a rate, or faults injected one at a time."""

    Kind = FaultKind

    def __init__(self, provider: str, kind: FaultKind = "none", rate: float = 1.0, rng: random.Random | None = None):
        self.provider, self.kind, self.rate = provider, kind, rate
        self._rng = rng or random.Random()
        self._queue: list[_Injected] = []
        self.writes = 0

    def inject(self, kind: FaultKind, times: int = 1, skip: int = 0) -> None:
        """Let `skip` writes through, then fail the next `times` writes with `kind`."""
        self._queue.append(_Injected(kind, times, skip))

    async def wait(self, latency: float) -> None:
        if latency > 0:
            await asyncio.sleep(latency)

    def _next(self) -> FaultKind:
        if self._queue:
            head = self._queue[0]
            if head.skip > 0:
                head.skip -= 1
                return "none"
            head.times -= 1
            if head.times <= 0:
                self._queue.pop(0)
            return head.kind
        if self.kind != "none" and self._rng.random() < self.rate:
            return self.kind
        return "none"

    async def write(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Carry out one write, failing it the way the plan says (a timeout fails *after* the write)."""
        self.writes += 1
        kind = self._next()
        if kind == "timeout_after_write":
            await fn()
            raise OutcomeUnknown(self.provider, "the write timed out after it was sent; it may have been carried out")
        if kind != "none":
            raise self.error(kind)
        return await fn()

    def error(self, kind: FaultKind) -> ProviderError:
        p = self.provider
        errors: dict[str, ProviderError] = {
            "conflict": Conflict(p, "the experiment is in a state that does not allow this", status=409, code="state"),
            "stale": Stale(p, "Optimistic lock error. Try again later.", status=409, code="optimistic_locking_error"),
            "server_error": Unavailable(p, "Internal Server Error", status=503, code="server_error"),
            "rate_limited": RateLimited(p, "Too Many Requests", status=429, code="rate_limited", retry_after=30),
            "dropped": OutcomeUnknown(p, "the connection dropped before an answer came back"),
        }
        return errors[kind]
