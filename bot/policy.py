"""The approval policy: who may approve, how many must, self-approval, expiry and the largest ramp step."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Policy
from bot.errors import PermissionDenied
from bot.models import ChangeRequest
from bot.mrkdwn import pct
from providers.models import Change, ChangeKind, Snapshot

_MEMBERSHIP = frozenset({"deleted", "is_bot", "is_restricted", "is_ultra_restricted", "team_id"})
CACHE_LIMIT = 1000
"""Cached people (or groups) past which the expired entries are dropped."""
T = TypeVar("T")


class Approvers:
    """Decides who may act: members of the installing workspace (`users.info`, cached), listed approvers and
    user groups (`usergroups.users.list`, cached; Tier 2)."""

    def __init__(self, client: AsyncWebClient, ttl_seconds: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._users: dict[str, tuple[float, dict[str, Any]]] = {}
        self._team: str | None = None

    async def _cached(self, cache: dict[str, tuple[float, T]], key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """`fetch()`'s answer, kept for the TTL; past CACHE_LIMIT entries the expired ones are dropped."""
        stamp = time.monotonic()
        hit = cache.get(key)
        if hit and hit[0] > stamp:
            return hit[1]
        value = await fetch()
        if len(cache) >= CACHE_LIMIT:  # only people and groups that act are cached; a big workspace stays bounded
            for stale in [k for k, (until, _) in cache.items() if until <= stamp]:
                del cache[stale]
        cache[key] = (stamp + self._ttl, value)
        return value

    async def _user(self, user: str) -> dict[str, Any]:
        """The fields of `users.info` the policy reads (a whole profile is kilobytes), cached for the TTL."""

        async def fetch() -> dict[str, Any]:
            reply = await self._client.users_info(user=user)
            return {key: value for key, value in (reply.get("user") or {}).items() if key in _MEMBERSHIP}

        return await self._cached(self._users, user, fetch)

    async def _installing_team(self) -> str:
        if self._team is None:
            reply = await self._client.auth_test()
            self._team = str(reply.get("team_id") or "")
        return self._team

    async def check_member(self, user: str, policy: Policy) -> None:
        """Raise `PermissionDenied` unless `user` is a member of the installing workspace who may act: not a bot,
        not deactivated, not a guest (unless `allow_guests`), not from another workspace (unless `allow_external`)."""
        info = await self._user(user)
        if info.get("deleted") or info.get("is_bot"):
            raise PermissionDenied("Deactivated accounts and bots cannot request or decide changes.")
        if info.get("is_restricted") or info.get("is_ultra_restricted"):
            if not policy.allow_guests:
                raise PermissionDenied("Guests cannot request or decide changes here (`allow_guests` is off).")
        team = str(info.get("team_id") or "")
        if team != await self._installing_team() and not policy.allow_external:
            raise PermissionDenied(
                "Only members of this workspace can request or decide changes here; people from other "
                "workspaces (Slack Connect) cannot (`allow_external` is off)."
            )

    async def members(self, group: str) -> frozenset[str]:
        async def fetch() -> frozenset[str]:
            reply = await self._client.usergroups_users_list(usergroup=group)
            return frozenset(reply.get("users") or [])

        return await self._cached(self._groups, group, fetch)

    async def is_eligible(self, user: str, policy: Policy) -> bool:
        if not policy.approvers or user in policy.approvers:
            return True
        for group in (a for a in policy.approvers if a.startswith("S")):
            if user in await self.members(group):
                return True
        return False

    async def check_approve(self, user: str, request: ChangeRequest, policy: Policy) -> None:
        """Raise `PermissionDenied` unless `user` may approve `request` now."""
        if user == request.requested_by and not policy.allow_self_approval:
            raise PermissionDenied("You asked for this change, so someone else has to approve it.")
        if any(a.user == user for a in request.approvals):
            raise PermissionDenied("You have already approved this request.")
        await self.check_member(user, policy)
        await self._check_listed(user, policy, "approve")

    async def check_reject(self, user: str, request: ChangeRequest, policy: Policy) -> None:
        if user == request.requested_by:
            raise PermissionDenied("This is your own request: use Cancel to withdraw it.")
        await self.check_member(user, policy)
        await self._check_listed(user, policy, "reject")

    async def _check_listed(self, user: str, policy: Policy, verb: str) -> None:
        if not await self.is_eligible(user, policy):
            who = ", ".join(f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in policy.approvers)
            raise PermissionDenied(f"Only approvers can {verb} changes to this experiment: {who}.")


def check_step(policy: Policy, before: Snapshot, change: Change) -> None:
    """Refuse a ramp that raises exposure by more than `max_step` points in one request."""
    if change.kind is not ChangeKind.EXPOSURE or policy.max_step is None or change.exposure is None:
        return
    step = change.exposure - (before.exposure or 0)
    if step > policy.max_step:
        raise PermissionDenied(
            f"A ramp may raise exposure by at most {policy.max_step} points per request "
            f"({pct(before.exposure or 0)} → {pct(change.exposure)} is {round(step, 2):g}). Ramp in smaller steps."
        )


def expires_at(policy: Policy, created: datetime) -> datetime:
    return created + policy.expiry
