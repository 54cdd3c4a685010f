"""Use cases: create, track, request a change, approve, reject, cancel and expire requests."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import BaseModel

from bot.apply import Applier
from bot.config import Settings
from bot.errors import PermissionDenied, UsageError
from bot.models import ChangeRequest, Experiment, RequestStatus
from bot.policy import Approvers, check_step, expires_at
from bot.store import Store, now
from bot.threads import Threads
from bot.views import USAGE
from providers.base import Call, Change, ChangeKind, Provider, ProviderError, Snapshot, Status

PENDING = (RequestStatus.PENDING,)


class Workflow:
    """Everything a user can do, independent of how Slack delivered the request."""

    def __init__(
        self, settings: Settings, store: Store, providers: dict[str, Provider], threads: Threads, approvers: Approvers
    ) -> None:
        self.settings = settings
        self.store = store
        self.providers = providers
        self.threads = threads
        self.approvers = approvers
        self.applier = Applier(store, providers, threads, self.refresh_card)

    # -- lookups -------------------------------------------------------------------------------
    @property
    def labels(self) -> dict[str, str]:
        return {name: p.label for name, p in self.providers.items()}

    def provider(self, name: str, usage: str = USAGE["new"]) -> Provider:
        found = self.providers.get(name.lower())
        if found is None:
            raise UsageError(f"Unknown or disabled provider `{name}`. Enabled: {', '.join(self.providers)}.", usage)
        return found

    def experiment(self, ref: str, usage: str) -> Experiment:
        exp = self.store.find_experiment(ref)
        if exp is None:
            raise UsageError(f"No tracked experiment `{ref}`. `/experiment list` shows them.", usage)
        return exp

    def allowed(self, exp: Experiment) -> frozenset[ChangeKind]:
        return self.providers[exp.provider].capabilities.allowed(exp.snapshot.status)

    def channel_for(self, typed_in: str) -> str:
        return self.settings.channel or typed_in

    # -- experiments ---------------------------------------------------------------------------
    async def create(self, provider_name: str, draft: BaseModel, channel: str, user: str) -> Experiment:
        provider = self.provider(provider_name)
        try:
            snap = await provider.create(draft)
        except ProviderError as err:
            self.store.audit(
                user,
                "provider.call",
                detail={"call": f"create on {provider.name}", "status": err.status or "error", "error": err.detail},
            )
            raise
        created = {"call": f"create {snap.remote_id}", "status": "ok", "draft": draft.model_dump(mode="json")}
        return await self._track(provider, snap, channel, user, "experiment.created", created)

    def check_untracked(self, provider_name: str, remote_id: str) -> Provider:
        provider = self.provider(provider_name, USAGE["track"])
        existing = [e for e in self.store.experiments(provider.name) if e.remote_id == remote_id]
        if existing:
            raise UsageError(f"`{remote_id}` is already tracked as `{existing[0].ref}`.", USAGE["track"])
        return provider

    async def track(self, provider_name: str, remote_id: str, channel: str, user: str) -> Experiment:
        provider = self.check_untracked(provider_name, remote_id)
        snap = await provider.get(remote_id)
        return await self._track(provider, snap, channel, user, "experiment.tracked")

    async def _track(
        self,
        provider: Provider,
        snap: Snapshot,
        channel: str,
        user: str,
        action: str,
        call: dict[str, Any] | None = None,
    ) -> Experiment:
        exp, _ = self.store.add_experiment(provider.name, snap, self.channel_for(channel), user)
        if call is not None:
            self.store.audit(user, "provider.call", exp.id, detail=call)
        self.store.audit(
            user,
            action,
            exp.id,
            detail={"provider": provider.name, "remote_id": snap.remote_id, "fingerprint": snap.fingerprint},
        )
        return await self._post_card(exp)

    async def refresh_card(self, exp: Experiment, snap: Snapshot | None = None) -> Experiment:
        """Store `snap` (if given) and edit the card in place; post it if it never made it to Slack."""
        if snap is not None:
            self.store.save_snapshot(exp.id, snap)
            exp = self.store.experiment(exp.id) or exp
        if exp.card_ts is None:
            return await self._post_card(exp)
        await self.threads.update_card(exp, self.allowed(exp), self.labels[exp.provider])
        return exp

    async def _post_card(self, exp: Experiment) -> Experiment:
        card_channel, ts = await self.threads.post_card(exp, self.allowed(exp), self.labels[exp.provider])
        self.store.set_card(exp.id, card_channel, ts)
        found = self.store.experiment(exp.id)
        assert found is not None
        return found

    def list(self, provider: str | None, status: Status | None) -> list[Experiment]:
        return [e for e in self.store.experiments(provider) if status is None or e.snapshot.status is status]

    # -- change requests -----------------------------------------------------------------------
    async def request_change(self, exp: Experiment, change: Change, user: str) -> ChangeRequest:
        """Post a change request in the experiment's thread. Nothing is sent to the provider."""
        snap = await self.applier.read(exp, user)
        if snap.fingerprint != exp.snapshot.fingerprint or exp.card_ts is None:
            exp = await self.refresh_card(exp, snap)
        policy = self.settings.policy_for(exp.provider)
        plan = self.plan(exp, snap, change)
        created = now()
        req = self.store.add_request(exp, change, snap, plan, user, policy.required, expires_at(policy, created))
        try:
            ts = await self.threads.post_request(exp, req)
        except Exception:  # an approver could never see it: withdraw it, then let the user know why
            self.store.transition(
                req.id, PENDING, RequestStatus.CANCELLED, "expbot", outcome="the request could not be posted in Slack"
            )
            raise
        self.store.set_request_message(req.id, exp.channel, ts)
        return self._request(req.id)

    def plan(self, exp: Experiment, snap: Snapshot, change: Change) -> builtins.list[Call]:
        """The calls `change` needs, after the policy's step limit and the provider's own rules."""
        check_step(self.settings.policy_for(exp.provider), snap, change)
        return self.providers[exp.provider].plan(snap, change)

    def _request(self, request_id: int) -> ChangeRequest:
        req = self.store.request(request_id)
        if req is None:
            raise UsageError(f"There is no change request #{request_id}.")
        return req

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
        if not self.store.add_approval(req.id, user):
            raise PermissionDenied(
                f"Your approval of request #{req.id} was already counted, or it is no longer pending."
            )
        req = self._request(req.id)
        if len(req.approvals) < req.required:
            await self.threads.update_request(exp, req)
            return
        if self.store.transition(
            req.id, PENDING, RequestStatus.APPROVED, user, {"approvals": [a.user for a in req.approvals]}
        ):
            await self.applier.apply(req.id, user)

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
        if not self.store.transition(req.id, PENDING, to, user):
            raise PermissionDenied(f"Request #{req.id} was decided a moment ago; nothing was changed.")
        await self.threads.update_request(exp, self._request(req.id))
        if to is RequestStatus.REJECTED:
            await self.threads.dm(
                req.requested_by, f"<@{user}> rejected your request #{req.id} ({req.change.describe()} on {exp.ref})."
            )

    async def expire_due(self) -> int:
        """Edit every pending request past its expiry to say so. Returns how many expired."""
        count = 0
        for req in self.store.requests(PENDING):
            exp = self.store.experiment(req.experiment_id)
            if exp is not None and now() >= req.expires_at and await self._expire(req, exp):
                count += 1
        return count

    async def _expire(self, req: ChangeRequest, exp: Experiment) -> bool:
        if not self.store.transition(
            req.id,
            PENDING,
            RequestStatus.EXPIRED,
            "expbot",
            outcome="no decision in time; ask again if it is still wanted",
        ):
            return False
        await self.threads.update_request(exp, self._request(req.id))
        await self.threads.dm(
            req.requested_by,
            f"Your request #{req.id} ({req.change.describe()} on {exp.ref}) "
            "expired without a decision; ask again if it is still wanted.",
        )
        return True

    async def recover(self) -> None:
        """On start-up: finish requests left approved or applying, expire what is overdue."""
        await self.applier.recover()
        await self.expire_due()
