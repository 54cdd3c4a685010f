"""Carrying out an approved request: re-check the fingerprint, apply the plan, read back, report; and recovery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.errors import explain
from bot.models import ChangeRequest, Experiment, RequestStatus
from bot.store import Store
from bot.threads import Threads
from bot.views import change_table
from providers.base import Provider, ProviderError, Snapshot

RefreshCard = Callable[[Experiment, Snapshot | None], Awaitable[Experiment]]
APPROVED = (RequestStatus.APPROVED,)
APPLYING = (RequestStatus.APPLYING,)


class Applier:
    """Moves approved requests to applied, failed or stale, and never applies one twice."""

    def __init__(
        self, store: Store, providers: dict[str, Provider], threads: Threads, refresh_card: RefreshCard
    ) -> None:
        self.store = store
        self.providers = providers
        self.threads = threads
        self.refresh_card = refresh_card

    async def read(self, exp: Experiment, actor: str) -> Snapshot:
        """Read the experiment from its provider, with an audit row for the call."""
        provider = self.providers[exp.provider]
        try:
            snap = await provider.get(exp.remote_id)
        except ProviderError as err:
            self.store.audit(
                actor,
                "provider.call",
                exp.id,
                detail={"call": f"get {exp.remote_id}", "status": err.status or "error", "error": err.detail},
            )
            raise
        self.store.audit(
            actor,
            "provider.call",
            exp.id,
            detail={"call": f"get {exp.remote_id}", "status": "ok", "fingerprint": snap.fingerprint},
        )
        return snap

    async def apply(self, request_id: int, actor: str) -> None:
        """Apply an approved request, unless the experiment changed since it was approved."""
        req, exp = self._load(request_id)
        try:
            snap = await self.read(exp, actor)
        except ProviderError as err:
            await self._finish(
                req, exp, APPROVED, RequestStatus.FAILED, f"could not re-read the experiment: {explain(err)}", None
            )
            return
        if snap.fingerprint != req.fingerprint:
            what = change_table(req.before, snap)
            await self._finish(
                req,
                exp,
                APPROVED,
                RequestStatus.STALE,
                "the experiment changed after the request was made",
                snap,
                note=f"Request #{req.id} is *stale*: the experiment changed after it was "
                f"requested, so nothing was sent.\n{what}\nAsk again if it is still wanted.",
            )
            return
        if not self.store.transition(req.id, APPROVED, RequestStatus.APPLYING, actor):
            return
        await self._run(req, exp, actor)

    async def _run(self, req: ChangeRequest, exp: Experiment, actor: str) -> None:
        provider = self.providers[exp.provider]
        try:
            after = await provider.apply(exp.remote_id, req.plan)
        except ProviderError as err:
            # One row for the plan: the provider's error does not say which of its calls went through.
            calls = "; ".join(call.render() for call in req.plan)
            self.store.audit(
                actor,
                "provider.call",
                exp.id,
                req.id,
                {"call": calls, "status": err.status or "error", "error": err.detail},
            )
            fresh = await self._try_read(exp, actor)
            await self._finish(
                req,
                exp,
                APPLYING,
                RequestStatus.FAILED,
                explain(err),
                fresh,
                note=f"Request #{req.id} *failed*: {explain(err)}",
            )
            return
        for call in req.plan:
            self.store.audit(actor, "provider.call", exp.id, req.id, {"call": call.render(), "status": "ok"})
        await self._finish(req, exp, APPLYING, RequestStatus.APPLIED, req.change.describe(), after)

    async def _finish(
        self,
        req: ChangeRequest,
        exp: Experiment,
        from_: tuple[RequestStatus, ...],
        to: RequestStatus,
        outcome: str,
        snap: Snapshot | None,
        note: str | None = None,
    ) -> None:
        if not self.store.transition(
            req.id, from_, to, "expbot", outcome=outcome, detail={"fingerprint": snap.fingerprint} if snap else None
        ):
            return
        exp = await self.refresh_card(exp, snap)
        done, _ = self._load(req.id)
        await self.threads.update_request(exp, done)
        if note:
            await self.threads.say(exp, note)
        verb = {
            RequestStatus.APPLIED: "was applied",
            RequestStatus.FAILED: "failed",
            RequestStatus.STALE: "went stale (nothing was sent)",
        }.get(to, to.value)
        await self.threads.dm(
            req.requested_by,
            f"Your request #{req.id} ({req.change.describe()} on {exp.ref}, {exp.name}) {verb}: {outcome}",
        )

    async def _try_read(self, exp: Experiment, actor: str) -> Snapshot | None:
        try:
            return await self.read(exp, actor)
        except ProviderError:
            return None

    def _load(self, request_id: int) -> tuple[ChangeRequest, Experiment]:
        req = self.store.request(request_id)
        assert req is not None
        exp = self.store.experiment(req.experiment_id)
        assert exp is not None
        return req, exp

    async def recover(self) -> None:
        """Finish what a crash or restart interrupted: nothing stays approved or applying."""
        for req in self.store.requests(APPROVED):
            await self.apply(req.id, "expbot")
        for req in self.store.requests(APPLYING):
            _, exp = self._load(req.id)
            try:
                snap = await self.read(exp, "expbot")
            except ProviderError as err:
                await self._finish(
                    req, exp, APPLYING, RequestStatus.FAILED, f"could not confirm after a restart: {explain(err)}", None
                )
                continue
            if req.change.took_effect(snap):
                await self._finish(
                    req,
                    exp,
                    APPLYING,
                    RequestStatus.APPLIED,
                    f"{req.change.describe()} (confirmed after a restart)",
                    snap,
                )
            elif snap.fingerprint == req.fingerprint:
                await self._run(req, exp, "expbot")
            else:
                await self._finish(
                    req,
                    exp,
                    APPLYING,
                    RequestStatus.FAILED,
                    "the experiment changed while expbot was down; ask again",
                    snap,
                )
