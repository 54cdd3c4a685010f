"""The approval policy: who may approve, how many must, self-approval, expiry and the largest ramp step."""

from __future__ import annotations

import time
from datetime import datetime

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Policy
from bot.errors import PermissionDenied
from bot.models import ChangeRequest
from bot.mrkdwn import pct
from providers.models import Change, ChangeKind, Snapshot


class Approvers:
    """Decides who may approve, resolving user groups through `usergroups.users.list` (cached; Tier 2)."""

    def __init__(self, client: AsyncWebClient, ttl_seconds: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        reply = await self._client.usergroups_users_list(usergroup=group)
        users = frozenset(reply.get("users") or [])
        self._groups[group] = (time.monotonic() + self._ttl, users)
        return users

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
        await self._check_listed(user, policy, "approve")

    async def check_reject(self, user: str, request: ChangeRequest, policy: Policy) -> None:
        if user == request.requested_by:
            raise PermissionDenied("This is your own request: use Cancel to withdraw it.")
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
