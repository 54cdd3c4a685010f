"""What the contract suite needs from each provider's test set-up: the adapter, a draft, and levers on its fake."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from providers.base import Provider
from providers.models import Change, ChangeKind, Snapshot
from providers.plan import Answer, ApplyContext, Plan, resolve


@dataclass
class Harness:
    """One provider wired to its fake (a real server on loopback, or the sandbox's own records).

    `walk` is a lifecycle the provider supports, in order, starting from a fresh draft; `multi_step` is a change
    (valid right after `walk`'s first change) whose plan has at least two steps, the first not safe to repeat or
    confirmable; `tamper` changes the experiment behind expbot's back; `fail_write(kind, skip)` makes the fake
    fail the write after `skip` good ones (kind: conflict, stale, server_error, timeout_after_write, dropped);
    `await writes()` counts the writes the fake carried out.
    """

    name: str
    provider: Provider
    draft: BaseModel
    walk: list[Change]
    multi_step: Change
    tamper: Callable[[Snapshot], Any]
    fail_write: Callable[[str, int], None]
    writes: Callable[[], Awaitable[int]]
    refused_on_draft: list[Change] = field(default_factory=lambda: [Change(kind=ChangeKind.PAUSE)])


HarnessFactory = Callable[[Any], AbstractAsyncContextManager[Harness]]
"""Given pytest's `tmp_path`, an async context manager that yields a ready harness and tears its fake down."""

CTX = ApplyContext(request_id=1, requester="U1", approvers=["U2"], now=datetime(2026, 1, 1, tzinfo=UTC))
"""The apply-time values tests fill plans with."""


async def send_plan(provider: Provider, plan: Plan, ctx: ApplyContext = CTX) -> list[Answer]:
    """Send a plan's steps in order the way the core does, each filled in from the earlier answers."""
    answers: list[Answer] = []
    for step in plan.steps:
        answers.append(await provider.apply(resolve(step, answers, ctx)))
    return answers
