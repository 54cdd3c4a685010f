"""The use cases in one place for the listeners: experiments and cards, decisions on requests, applying."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from bot.apply import Applier
from bot.config import Settings
from bot.decisions import Decisions
from bot.experiments import Experiments
from bot.logs import event
from bot.metrics import Metrics
from bot.models import RequestStatus
from bot.policy import Approvers
from bot.store import Store
from bot.threads import Threads
from providers.base import Provider

log = logging.getLogger("expbot")


class Workflow:
    """Everything a user can do, independent of how Slack delivered the request."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        providers: dict[str, Provider],
        threads: Threads,
        approvers: Approvers,
        owner: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings, self.store, self.providers, self.threads = settings, store, providers, threads
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.metrics = metrics or Metrics()
        self.experiments = Experiments(settings, store, providers, threads, self.owner, self.metrics)
        self.applier = Applier(self.experiments)
        self.decisions = Decisions(settings, self.experiments, threads, approvers, self.applier)
        store.on_transition = self._transitioned

    def _transitioned(self, experiment_id: int, request_id: int, to: RequestStatus) -> None:
        self.metrics.transitions.labels(to.value).inc()
        event(
            log,
            f"request.{to.value}",
            f"request #{request_id} {to.value}",
            experiment=experiment_id,
            request=request_id,
        )

    async def release_orphans(self) -> None:
        """Free what processes of this host that died still hold (leases, outbox claims)."""
        freed = await self.store.release_orphans(socket.gethostname(), _alive)
        if freed:
            log.warning("freed the leases and Slack deliveries of %d process(es) that are gone", freed)

    async def recover(self) -> None:
        """On start-up and then periodically: finish requests left approved or applying, expire what is overdue."""
        await self.applier.recover()
        await self.decisions.expire_due()

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
