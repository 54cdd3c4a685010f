"""Use cases on experiments: find, read, create, track, list, and keep each experiment's one card current."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from bot import texts, views
from bot.config import Settings
from bot.errors import UsageError
from bot.metrics import Metrics
from bot.models import AuditEvent, ChangeRequest, Experiment, ExperimentSummary, OutboxItem, RequestStatus
from bot.mrkdwn import code
from bot.outbox import Outbox
from bot.store import Store, now
from bot.texts import USAGE
from bot.threads import Threads
from providers.base import Capabilities, Provider
from providers.errors import ProviderError
from providers.models import Snapshot, Status

LIST_LIMIT = 40
OPEN = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.APPLYING)


class AlreadyTracked(UsageError):
    """The experiment has a card already; the answer links to it."""

    def __init__(self, exp: Experiment, link: str | None) -> None:
        super().__init__(texts.already_tracked(exp, link))
        self.experiment = exp


class Experiments:
    """Tracked experiments and their cards; every provider read is audited and stored unless a newer one is."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        providers: dict[str, Provider],
        threads: Threads,
        owner: str,
        metrics: Metrics,
    ) -> None:
        self.settings, self.store, self.providers, self.threads, self.owner = settings, store, providers, threads, owner
        self.metrics = metrics
        self.outbox = Outbox(store, threads, self.card_message, self.request_message, owner, self._delivered)

    def _delivered(self, kind: str, result: str, error: str | None) -> None:
        self.metrics.outbox.labels(kind, result).inc()
        if error:
            self.metrics.slack_api_errors.labels(error).inc()

    # -- lookups -------------------------------------------------------------------------------
    @property
    def labels(self) -> dict[str, str]:
        return {name: p.label for name, p in self.providers.items()}

    def provider(self, name: str, usage: str = USAGE["new"]) -> Provider:
        found = self.providers.get(name.lower())
        if found is None:
            raise UsageError(f"Unknown or disabled provider `{name}`. Enabled: {', '.join(self.providers)}.", usage)
        return found

    def find(self, ref: str, usage: str) -> Experiment:
        """By expbot ref (`exp-12`), by `provider:id`, or by a provider's own id when only one experiment has it."""
        ref = ref.strip()
        name, sep, rest = ref.partition(":")
        if sep and name.lower() in self.providers:
            if found := self._by_remote(name.lower(), self.providers[name.lower()], rest):
                return found[0]
            raise UsageError(
                f"No tracked {name.lower()} experiment {code(rest)}. `/experiment list` shows them.", usage
            )
        if ref.lower().startswith("exp-") and ref[4:].isdigit() and len(ref) <= 16:
            exp = self.store.experiment(int(ref[4:]))
            if exp is not None:
                return exp
        matches = {e.id: e for p_name, p in self.providers.items() for e in self._by_remote(p_name, p, ref)}
        if len(matches) == 1:
            return next(iter(matches.values()))
        if len(matches) > 1:
            choices = ", ".join(f"`{e.provider}:{e.remote_id}` ({e.ref})" for e in matches.values())
            raise UsageError(f"{code(ref)} is the id of several experiments: say which, e.g. {choices}.", usage)
        raise UsageError(f"No tracked experiment {code(ref)}. `/experiment list` shows them.", usage)

    def _by_remote(self, name: str, provider: Provider, remote_id: str) -> list[Experiment]:
        found = self.store.experiment_by_remote(name, provider.canonical_id(remote_id))
        return [found] if found else []

    def by_id(self, experiment_id: int) -> Experiment:
        exp = self.store.experiment(experiment_id)
        if exp is None:
            raise UsageError("This experiment is no longer tracked.")
        return exp

    def open_requests(self, exp: Experiment) -> list[ChangeRequest]:
        return self.store.requests(OPEN, exp.id)

    def audit_events(self, exp: Experiment) -> list[AuditEvent]:
        return self.store.audit_events(exp.id)

    def provider_of(self, exp: Experiment) -> Provider:
        return self.providers[exp.provider]

    def capabilities(self, exp: Experiment) -> Capabilities:
        return self.provider_of(exp).capabilities(exp.snapshot)

    def list(
        self, provider: str | None, status: Status | None, limit: int = LIST_LIMIT
    ) -> tuple[list[ExperimentSummary], int]:
        """The experiments to list (at most `limit`) and how many match in all."""
        return self.store.summaries(provider, status.value if status else None, limit)

    # -- messages rendered from the store's latest state -----------------------------------------
    def card_message(self, exp: Experiment) -> views.Message:
        return views.card(exp, self.capabilities(exp), self.labels.get(exp.provider, exp.provider))

    def request_message(self, req: ChangeRequest, exp: Experiment) -> views.Message:
        return views.request_message(req, exp, self.provider_of(exp).preview(req.before, req.change))

    # -- reading ---------------------------------------------------------------------------------
    async def read(self, exp: Experiment, actor: str) -> Snapshot:
        """Read the experiment from its provider (one audit row) and store it unless a newer read is stored."""
        started = now()
        provider = self.provider_of(exp)
        try:
            with self.metrics.provider_call(provider.name):
                snap = await provider.get(exp.remote_id)
        except ProviderError as err:
            await self._audit_call(actor, exp.id, f"get {exp.remote_id}", err)
            raise
        await self._audit_call(actor, exp.id, f"get {exp.remote_id}", fingerprint=snap.fingerprint)
        await self.store.save_snapshot(exp.id, snap, started)
        return snap

    async def _audit_call(
        self, actor: str, experiment_id: int | None, call: str, err: ProviderError | None = None, **ok: Any
    ) -> None:
        """One audit row for a provider call: its outcome, and the provider's words when it failed."""
        detail = {"call": call} | (
            {"status": err.status or "error", "error": err.detail} if err else {"status": "ok", **ok}
        )
        await self.store.audit(actor, "provider.call", experiment_id, detail=detail)

    async def try_read(self, exp: Experiment, actor: str) -> Snapshot | None:
        try:
            return await self.read(exp, actor)
        except ProviderError:
            return None

    async def refresh_card(self, experiment_id: int, tell: bool = False) -> Experiment:
        """Edit the card from the store's latest state, or post it if it never made it to Slack (through the
        outbox: one sender at a time, retried until Slack takes it). With `tell`, a refusal retrying cannot fix
        (expbot not in the channel …) is raised so the user hears why; otherwise it is logged and counted."""
        refused = await self.outbox.send([OutboxItem.card(experiment_id)])
        if tell and refused:
            raise next(iter(refused.values()))
        return self._get(experiment_id)

    def _get(self, experiment_id: int) -> Experiment:
        exp = self.store.experiment(experiment_id)
        assert exp is not None
        return exp

    # -- creating and tracking ------------------------------------------------------------------
    async def create(self, provider_name: str, draft: BaseModel, channel: str, user: str) -> Experiment:
        provider = self.provider(provider_name)
        started = now()
        try:
            with self.metrics.provider_call(provider.name):
                created = await provider.create(draft)
        except ProviderError as err:
            await self._audit_call(user, None, f"create on {provider.name}", err)
            raise
        snap = created.snapshot
        call: dict[str, Any] = {
            "call": f"create {snap.remote_id}",
            "status": "ok",
            "draft": draft.model_dump(mode="json"),
        }
        if created.missing:
            call["missing"] = created.missing
        return await self._track(provider, snap, channel, user, "experiment.created", started, call, created.missing)

    async def check_untracked(self, provider_name: str, remote_id: str) -> Provider:
        """The provider to track `remote_id` on; `AlreadyTracked` (with a link to its card) if it has one."""
        provider = self.provider(provider_name, USAGE["track"])
        existing = self.store.experiment_by_remote(provider.name, provider.canonical_id(remote_id))
        if existing is not None:
            link = await self.threads.permalink(existing.channel, existing.card_ts) if existing.card_ts else None
            raise AlreadyTracked(existing, link)
        return provider

    async def track(self, provider_name: str, remote_id: str, channel: str, user: str) -> Experiment:
        provider = await self.check_untracked(provider_name, remote_id)
        started = now()
        with self.metrics.provider_call(provider.name):
            snap = await provider.get(provider.canonical_id(remote_id))
        return await self._track(provider, snap, channel, user, "experiment.tracked", started)

    async def _track(
        self,
        provider: Provider,
        snap: Snapshot,
        channel: str,
        user: str,
        action: str,
        read_at: Any,
        call: dict[str, Any] | None = None,
        missing: Sequence[str] = (),
    ) -> Experiment:
        snap = snap.model_copy(update={"remote_id": provider.canonical_id(snap.remote_id)})
        exp, new = await self.store.add_experiment(provider.name, snap, self.settings.channel or channel, user, read_at)
        if not new:  # tracked meanwhile under another spelling or by another process: one card only
            link = await self.threads.permalink(exp.channel, exp.card_ts) if exp.card_ts else None
            raise AlreadyTracked(exp, link)
        if call is not None:
            await self.store.audit(user, "provider.call", exp.id, detail=call)
        detail = {"provider": provider.name, "remote_id": snap.remote_id, "fingerprint": snap.fingerprint}
        await self.store.audit(user, action, exp.id, detail=detail)
        notes = [OutboxItem.note(exp.id, "created", texts.missing_note(list(missing)))] if missing else []
        await self.store.enqueue(notes)  # queued before the card, so it is never lost if the card must wait
        exp = await self.refresh_card(exp.id, tell=True)
        await self.outbox.drain([n.key for n in notes])
        return exp
