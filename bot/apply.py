"""Carrying out approved requests step by step with a journal, one per experiment at a time; and recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from bot import texts
from bot.errors import explain
from bot.experiments import Experiments
from bot.models import ChangeRequest, Experiment, JournalEntry, OutboxItem, RequestStatus
from bot.store import Store, now
from providers.base import Provider
from providers.errors import OutcomeUnknown, ProviderError, Stale
from providers.models import Snapshot
from providers.plan import Answer, ApplyContext, MissingValue, Step, resolve

log = logging.getLogger("expbot")
APPROVED = (RequestStatus.APPROVED,)
APPLYING = (RequestStatus.APPLYING,)
LEASE_TTL = timedelta(seconds=60)


class StepFailed(Exception):
    """A step of the plan failed; `error` is what the provider said, `sent` whether anything went through."""

    def __init__(self, index: int, error: ProviderError, sent: bool) -> None:
        super().__init__(str(error))
        self.index, self.error, self.sent = index, error, sent


class Applier:
    """Moves approved requests to applied, failed or stale, never applies one twice, never repeats a done step."""

    def __init__(self, experiments: Experiments, poll: float = 0.05) -> None:
        self.experiments = experiments
        self.store: Store = experiments.store
        self.owner = experiments.owner
        self.metrics = experiments.metrics
        self.poll = poll
        self._deliver: dict[int, list[str]] = {}
        """Outbox keys to send once the experiment's lease is let go, by experiment (one holder at a time)."""

    # -- the experiment's lease ----------------------------------------------------------------
    async def _take(self, exp_id: int, request_id: int, wait: bool) -> bool:
        """Own the experiment for this request; with `wait`, until the change in flight on it is done."""
        delay = self.poll
        while not await self.store.take_lease(exp_id, request_id, self.owner, LEASE_TTL):
            req = self.store.request(request_id)
            if not wait or req is None or req.status.final:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        return True

    @contextlib.asynccontextmanager
    async def _holding(self, exp_id: int) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await asyncio.sleep(LEASE_TTL.total_seconds() / 3)
                await self.store.renew_lease(exp_id, self.owner, LEASE_TTL)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.store.release_lease(exp_id, self.owner)
            # Only now tell Slack: the next change on this experiment never waits for Slack to take these (a Slack
            # failure is retried by the outbox, never "try again").
            await self.experiments.outbox.drain(self._deliver.pop(exp_id, []))

    # -- applying ------------------------------------------------------------------------------
    async def apply(self, request_id: int, actor: str, wait: bool = True) -> None:
        """Apply an approved request unless the experiment changed since the approvers saw it."""
        req, exp = self._load(request_id)
        if not await self._take(exp.id, req.id, wait):
            return
        async with self._holding(exp.id):
            req, exp = self._load(request_id)
            if req.status is not RequestStatus.APPROVED:
                return  # another process finished it while we waited
            try:
                snap = await self.experiments.read(exp, actor)
            except ProviderError as err:
                await self._finish(
                    req, APPROVED, RequestStatus.FAILED, f"could not re-read the experiment: {explain(err)}"
                )
                return
            if snap.fingerprint != req.fingerprint:
                note = texts.stale_note(req, snap)
                await self._finish(
                    req, APPROVED, RequestStatus.STALE, "the experiment changed after the request was made", note
                )
                return
            if await self.store.transition(req.id, APPROVED, RequestStatus.APPLYING, actor):
                await self._run(self._load(req.id)[0], exp, snap, actor)

    async def _run(self, req: ChangeRequest, exp: Experiment, before: Snapshot, actor: str) -> None:
        provider = self.experiments.provider_of(exp)
        ctx = ApplyContext(
            request_id=req.id, requester=req.requested_by, approvers=[a.user for a in req.approvals], now=now()
        )
        answers: list[Answer] = []
        journal = self.store.journal(req.id)
        try:
            for i, step in enumerate(req.plan.steps):
                answers.append(await self._step(provider, req, i, step, journal.get(i), answers, ctx, before, actor))
        except StepFailed as failed:
            await self._failed(req, exp, failed, actor)
            return
        after = await self.experiments.try_read(exp, actor)
        outcome = req.change.describe() + (" (confirmed after a restart)" if journal else "")
        await self._finish(req, APPLYING, RequestStatus.APPLIED, outcome)
        if after is None:
            log.warning("request %s applied but the experiment could not be read back", req.id)

    async def _step(
        self,
        provider: Provider,
        req: ChangeRequest,
        i: int,
        step: Step,
        entry: JournalEntry | None,
        answers: list[Answer],
        ctx: ApplyContext,
        before: Snapshot,
        actor: str,
    ) -> Answer:
        """One step: skipped if the journal says done, confirmed if left sent, else sent (and confirmed on doubt)."""
        if entry is not None and entry.status == "done" and entry.answer is not None:
            return entry.answer
        try:
            resolved = resolve(step, answers, ctx)
        except MissingValue as err:
            error = ProviderError(provider.name, f"step {i + 1} needs {err} from an earlier answer, which is missing")
            raise StepFailed(i, error, sent=bool(answers)) from None
        if entry is not None and not step.repeatable:  # left "sent" by a crash: find out, never re-send blindly
            found = await self._confirm(provider, req, i, resolved, before, actor, sent=bool(answers))
            if found is not None:
                return found
        await self.store.step_sent(req.id, i, resolved)
        try:
            with self.metrics.provider_call(provider.name):
                answer = await provider.apply(resolved)
        except OutcomeUnknown as err:
            answer = await self._after_doubt(provider, req, i, resolved, before, actor, err, bool(answers))
        except ProviderError as err:
            await self.store.step_finished(req.id, i, "failed", None, _said(err), actor)
            raise StepFailed(i, err, sent=bool(answers)) from None
        await self.store.step_finished(req.id, i, "done", answer, actor=actor)
        return answer

    async def _after_doubt(
        self,
        provider: Provider,
        req: ChangeRequest,
        i: int,
        step: Step,
        before: Snapshot,
        actor: str,
        err: OutcomeUnknown,
        sent: bool,
    ) -> Answer:
        """A write whose answer was lost: read the provider to find out; send once more only if it did not happen."""
        found = None if step.repeatable else await self._confirm(provider, req, i, step, before, actor, sent)
        if found is not None:
            return found
        try:
            with self.metrics.provider_call(provider.name):
                return await provider.apply(step)
        except ProviderError as again:
            status = "unknown" if isinstance(again, OutcomeUnknown) else "failed"
            await self.store.step_finished(req.id, i, status, None, _said(again), actor)
            raise StepFailed(i, again, sent=sent or isinstance(again, OutcomeUnknown)) from None

    async def _confirm(
        self, provider: Provider, req: ChangeRequest, i: int, step: Step, before: Snapshot, actor: str, sent: bool
    ) -> Answer | None:
        try:
            with self.metrics.provider_call(provider.name):
                found = await provider.confirm(step, before)
        except ProviderError as err:
            await self.store.step_finished(req.id, i, "unknown", None, _said(err), actor)
            doubt = OutcomeUnknown(provider.name, f"{err.detail}; expbot could not tell whether it went through")
            raise StepFailed(i, doubt, sent=True) from None
        if found is not None:
            await self.store.step_finished(req.id, i, "done", found, actor=actor)
        return found

    async def _failed(self, req: ChangeRequest, exp: Experiment, failed: StepFailed, actor: str) -> None:
        await self.experiments.try_read(exp, actor)
        if isinstance(failed.error, Stale) and not failed.sent:
            why = texts.refused_as_stale(failed.error.detail)
            await self._finish(req, APPLYING, RequestStatus.STALE, why, texts.stale_refusal_note(req, why))
            return
        report = texts.step_report(req.plan, self.store.journal(req.id))
        why = explain(failed.error)
        await self._finish(req, APPLYING, RequestStatus.FAILED, why, texts.failed_note(req, why, report))

    async def _finish(
        self,
        req: ChangeRequest,
        from_: tuple[RequestStatus, ...],
        to: RequestStatus,
        outcome: str,
        note: str | None = None,
    ) -> None:
        _, exp = self._load(req.id)
        key = f"{req.id}:{to.value}"
        items = [OutboxItem.card(exp.id), OutboxItem.request(req.id)]
        if note:
            items.append(OutboxItem.note(exp.id, key, note))
        items.append(OutboxItem.dm(req.requested_by, key, texts.outcome_dm(req, exp, to, outcome)))
        if await self.store.transition(req.id, from_, to, "expbot", outcome=outcome, deliver=items):
            self._deliver.setdefault(exp.id, []).extend(i.key for i in items)  # sent when the lease is let go

    def _load(self, request_id: int) -> tuple[ChangeRequest, Experiment]:
        req = self.store.request(request_id)
        assert req is not None
        exp = self.store.experiment(req.experiment_id)
        assert exp is not None
        return req, exp

    # -- recovery ------------------------------------------------------------------------------
    async def recover(self) -> None:
        """Finish what a crash interrupted, taking only requests whose experiment nobody holds."""
        for req in self.store.requests(APPROVED):
            await self.apply(req.id, "expbot", wait=False)
        for req in self.store.requests(APPLYING):
            if await self.store.take_lease(req.experiment_id, req.id, self.owner, LEASE_TTL):
                async with self._holding(req.experiment_id):
                    await self._resume(req.id)

    async def _resume(self, request_id: int) -> None:
        req, exp = self._load(request_id)
        if req.status is not RequestStatus.APPLYING:
            return
        try:
            snap = await self.experiments.read(exp, "expbot")
        except ProviderError as err:
            await self._finish(
                req, APPLYING, RequestStatus.FAILED, f"could not confirm after a restart: {explain(err)}"
            )
            return
        if self.store.journal(req.id):
            await self._run(req, exp, snap, "expbot")  # resumes from the journal
        elif self.experiments.provider_of(exp).took_effect(req.before, req.change, snap):
            await self._finish(
                req, APPLYING, RequestStatus.APPLIED, f"{req.change.describe()} (confirmed after a restart)"
            )
        elif snap.fingerprint == req.fingerprint:
            await self._run(req, exp, snap, "expbot")
        else:
            why = "the experiment changed while expbot was down; nothing was sent, ask again"
            await self._finish(req, APPLYING, RequestStatus.STALE, why)


def _said(err: ProviderError) -> str:
    return f"{err.status} {err.detail}" if err.status else err.detail
