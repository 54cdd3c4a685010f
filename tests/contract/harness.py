"""What the contract suite needs from each provider's test set-up: the adapter, a draft, and levers on its fake."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from providers.base import Provider
from providers.models import Change, ChangeKind, Snapshot


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
