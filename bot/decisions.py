"""Use cases on change requests: ask for a change, approve, reject, cancel, expire."""

from __future__ import annotations

import asyncio
import logging

from bot import texts
from bot.apply import Applier
from bot.config import Settings
from bot.errors import PermissionDenied, UsageError
from bot.experiments import Experiments
from bot.logs import event
from bot.models import ChangeRequest, Experiment, OutboxItem, RequestStatus
from bot.policy import Approvers, check_step, expires_at
from bot.store import Store, now
from bot.threads import Threads
from providers.models import Change, Snapshot
from providers.plan import Plan

PENDING = (RequestStatus.PENDING,)
NOT_ITS_MESSAGE = "That button does not belong to this request's message; nothing was changed."
log = logging.getLogger("expbot")


class Decisions:
    """Change requests from the ask to the decision; applying is the `Applier`'s."""

    def __init__(
        self, settings: Settings, experiments: Experiments, threads: Threads, approvers: Approvers, applier: Applier
    ) -> None:
        self.settings, self.experiments, self.threads = settings, experiments, threads
        self.store: Store = experiments.store
        self.approvers, self.applier = approvers, applier

    def plan_check(self, exp: Experiment, snap: Snapshot, change: Change) -> None:
        """Refuse what the policy's step limit or the provider's own rules refuse, before any call."""
        if change.kind.moves_traffic:
            check_step(self.settings.policy_for(exp.provider), snap, change)
        self.experiments.provider_of(exp).check(snap, change)

    async def request_change(self, exp: Experiment, change: Change, user: str) -> ChangeRequest:
        """Post a change request in the experiment's thread. Nothing is sent to the provider before approval;
        a provider action that moves no traffic is carried out at once, through the same journal and audit."""
        policy = self.settings.policy_for(exp.provider)
        await self.approvers.check_member(user, policy)
        snap = await self.experiments.read(exp, user)
        if snap.fingerprint != exp.snapshot.fingerprint or exp.card_ts is None:
            exp = await self.experiments.refresh_card(exp.id, tell=exp.card_ts is None)
        self.plan_check(exp, snap, change)
        plan: Plan = await self.experiments.provider_of(exp).plan(snap, change)
        required = policy.required if change.kind.moves_traffic else 0
        created = now()
        req_id = await self.store.add_request(exp, change, snap, plan, user, required, expires_at(policy, created))
        req = self._request(req_id)
        try:
            ts = await self.threads.post_request(exp, self.experiments.request_message(req, exp))
        except Exception:  # an approver could never see it: withdraw it, then let the user know why
            await self.store.transition(
                req.id, PENDING, RequestStatus.CANCELLED, "expbot", outcome="the request could not be posted in Slack"
            )
            raise
        await self.store.set_request_message(req.id, exp.channel, ts)
        event(log, "request.created", f"request #{req.id}: {change.describe()}", experiment=exp.id, request=req.id)
        if not required and await self.store.transition(
            req.id, PENDING, RequestStatus.APPROVED, user, {"approvals": []}
        ):
            await self.applier.apply(req.id, user)
        return self._request(req.id)

    def _request(self, request_id: int) -> ChangeRequest:
        req = self.store.request(request_id)
        if req is None:
            raise UsageError(f"There is no change request #{request_id}.")
        return req

    async def check_clicked_on(
        self, request_id: int, channel: str | None, ts: str | None, user: str, shown: frozenset[int]
    ) -> None:
        """A decision button must be the one on that request's own message; anything else changes nothing.

        A click mends a message instead when the clicked message, as Slack sent it along, carries that request's
        buttons (`shown`) in its channel: a post Slack took but never answered. If the request was withdrawn for
        it (its ts unknown), the message becomes the request's and shows it withdrawn; if a retry posted it again,
        this copy is replaced by a line pointing to the request's own message.
        """
        req = self.store.request(request_id)
        if req is None or channel != req.channel or not ts:
            raise UsageError(NOT_ITS_MESSAGE)
        if req.message_ts == ts:
            return
        if req.id in shown and req.message_ts is None:
            if await self.store.adopt_request_message(req.id, channel, ts, user):
                await self.experiments.outbox.drain([OutboxItem.request(req.id).key])
                raise PermissionDenied(
                    f"Request #{req.id} was withdrawn: {req.outcome or req.status.value}; nothing was changed."
                )
        elif req.id in shown:
            await self.experiments.outbox.send([OutboxItem.request_copy(req.id, channel, ts)])
            raise UsageError(
                f"That is a second copy of request #{req.id}: decide it on its own message. Nothing was changed."
            )
        raise UsageError(NOT_ITS_MESSAGE)

    def _pending(self, request_id: int) -> tuple[ChangeRequest, Experiment]:
        req = self._request(request_id)
        exp = self.store.experiment(req.experiment_id)
        assert exp is not None
        if req.status is not RequestStatus.PENDING:
            raise PermissionDenied(f"Request #{req.id} is already {req.status.value}; nothing was changed.")
        return req, exp

    async def approve(self, request_id: int, user: str) -> None:
        req, exp = self._pending(request_id)
        if now() >= req.expires_at:
            await self._expire(req, exp)
            raise PermissionDenied(f"Request #{req.id} expired before your approval; ask for the change again.")
        await self.approvers.check_approve(user, req, self.settings.policy_for(exp.provider))
        if not await self.store.add_approval(req.id, user):
            raise PermissionDenied(
                f"Your approval of request #{req.id} was already counted, or it is no longer pending."
            )
        req = self._request(req.id)
        outbox = self.experiments.outbox
        if len(req.approvals) < req.required:
            await outbox.send([OutboxItem.request(req.id)])
            return
        approvers = [a.user for a in req.approvals]
        edit = [OutboxItem.request(req.id)]
        if await self.store.transition(
            req.id,
            PENDING,
            RequestStatus.APPROVED,
            user,
            {"approvals": approvers},
            deliver=edit,
            decided_by=",".join(approvers),
        ):
            # The thread hears "approved, applying" while the change is applied: the provider call never waits
            # for Slack (a slow or rate-limited Slack, or another message being sent). Whatever that edit finds
            # when it goes out is what it shows, so it can never show less than the truth.
            telling = asyncio.create_task(outbox.drain([edit[0].key]))
            try:
                await self.applier.apply(req.id, user)
            finally:
                await telling

    async def reject(self, request_id: int, user: str) -> None:
        req, exp = self._pending(request_id)
        await self.approvers.check_reject(user, req, self.settings.policy_for(exp.provider))
        await self._decide(req, exp, RequestStatus.REJECTED, user)

    async def cancel(self, request_id: int, user: str) -> None:
        req, exp = self._pending(request_id)
        if user != req.requested_by:
            raise PermissionDenied(f"Only <@{req.requested_by}>, who asked for it, can cancel request #{req.id}.")
        await self._decide(req, exp, RequestStatus.CANCELLED, user)

    async def _decide(self, req: ChangeRequest, exp: Experiment, to: RequestStatus, user: str) -> None:
        items = [OutboxItem.request(req.id)]
        if to is RequestStatus.REJECTED:
            items.append(OutboxItem.dm(req.requested_by, f"{req.id}:{to.value}", texts.rejected_dm(req, exp, user)))
        if not await self.store.transition(req.id, PENDING, to, user, deliver=items):
            raise PermissionDenied(f"Request #{req.id} was decided a moment ago; nothing was changed.")
        await self.experiments.outbox.drain([i.key for i in items])

    async def expire_due(self) -> int:
        """Edit every pending request past its expiry to say so. Returns how many expired."""
        count = 0
        for req in self.store.requests(PENDING):
            exp = self.store.experiment(req.experiment_id)
            if exp is not None and now() >= req.expires_at and await self._expire(req, exp):
                count += 1
        return count

    async def _expire(self, req: ChangeRequest, exp: Experiment) -> bool:
        outcome = "no decision in time; ask again if it is still wanted"
        items = [
            OutboxItem.request(req.id),
            OutboxItem.dm(req.requested_by, f"{req.id}:expired", texts.expired_dm(req, exp)),
        ]
        if not await self.store.transition(
            req.id, PENDING, RequestStatus.EXPIRED, "expbot", outcome=outcome, deliver=items
        ):
            return False
        await self.experiments.outbox.drain([i.key for i in items])
        return True
