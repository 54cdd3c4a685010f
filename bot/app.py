"""Composition root: wires settings, store, providers, Slack client and listeners into runnable apps."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response

from bot.checks import readiness
from bot.config import Settings
from bot.intake import Intake
from bot.metrics import CONTENT_TYPE, Metrics
from bot.policy import Approvers
from bot.store import Store
from bot.threads import Threads
from bot.workflow import Workflow
from providers.base import Provider
from providers.registry import Deps, driver

log = logging.getLogger("expbot")
Register = Callable[[AsyncApp, Workflow], None]
SWEEP_SECONDS = 30.0
DELIVER_SECONDS = 1.0


def build_providers(settings: Settings, store: Store) -> dict[str, Provider]:
    """One adapter per enabled provider that this version implements (sandbox is always on), from the registry."""
    built: dict[str, Provider] = {}
    for name in settings.enabled:
        found = driver(name)
        if found is None:
            continue
        secrets = {k: v.get_secret_value() for k, v in settings.secrets.get(name, {}).items()}
        options = settings.providers.get(name) or found.settings_model()
        built[name] = found.build(options, Deps(records=store, secrets=secrets))
    return built


@dataclass
class Runtime:
    """Everything one expbot process runs with."""

    settings: Settings
    store: Store
    client: AsyncWebClient
    workflow: Workflow
    app: AsyncApp
    metrics: Metrics
    intake: Intake | None = None  # the front door of /slack/events, set by asgi()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Deliver what Slack has not taken yet and recover interrupted requests; then keep doing both."""
        session = aiohttp.ClientSession()  # one connection pool for every Web API call (no handshake per call)
        self.client.session = session
        await self.workflow.release_orphans()
        await self.workflow.experiments.outbox.drain()
        await self.workflow.recover()
        # What start-up made lives as long as the process: keep it out of every later collection. No gc.collect()
        # first: start-up leaves almost no cyclic garbage (about 20 objects), and a full collection costs ~40 ms.
        gc.freeze()
        gc.enable()  # `expbot serve` and `socket` start with the collector off (commands/cli.py)
        tasks = [asyncio.create_task(self._every(SWEEP_SECONDS, self.workflow.recover, "recovering or expiring"))]
        deliver = self.workflow.experiments.outbox.drain
        tasks.append(asyncio.create_task(self._every(DELIVER_SECONDS, deliver, "delivering to Slack")))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.workflow.aclose()
            self.client.session = None
            await session.close()

    async def _every(self, seconds: float, work: Callable[[], Awaitable[object]], what: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception:  # a background loop must outlive one bad round; the error is logged
                log.exception("%s failed", what)

    def asgi(self) -> Starlette:
        """HTTP mode: `/slack/events` (behind the intake: size, signature, shape), `/healthz`, `/readyz`, `/metrics`."""
        assert self.settings.signing_secret is not None
        handler = AsyncSlackRequestHandler(self.app)

        async def events(request: Request) -> Response:
            kind = str(getattr(request.state, "slack_kind", "unknown"))  # what the intake found the body to be
            start = time.perf_counter()
            response = await handler.handle(request)
            self.metrics.ack_seconds.labels(kind).observe(time.perf_counter() - start)
            self.metrics.slack_requests.labels(kind, str(response.status_code)).inc()
            return response

        self.intake = intake = Intake(request_response(events), self.settings.signing_secret.get_secret_value())
        self.metrics.watch_intake(lambda: intake.counts.rejected)

        async def healthz(_: Request) -> Response:
            return JSONResponse({"ok": True})

        def outbox_depth() -> tuple[int, float | None]:
            stats = self.store.outbox_stats()
            return stats.depth, stats.oldest_age

        async def readyz(_: Request) -> Response:
            ready, body = await readiness(self.store, self.client, outbox_depth)
            return JSONResponse(body, status_code=200 if ready else 503)

        async def metrics(_: Request) -> Response:
            return Response(self.metrics.render(), media_type=CONTENT_TYPE)

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with self.running():
                yield

        return Starlette(
            routes=[
                Route("/slack/events", self.intake, methods=["POST"]),
                Route("/healthz", healthz),
                Route("/readyz", readyz),
                Route("/metrics", metrics),
            ],
            lifespan=lifespan,
        )

    async def socket(self) -> None:
        """Socket Mode: connect with the app-level token and serve until stopped."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        assert self.settings.app_token is not None
        handler = AsyncSocketModeHandler(self.app, self.settings.app_token.get_secret_value())
        async with self.running():
            try:
                await handler.start_async()  # type: ignore[no-untyped-call]
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]


class _DropUnusedTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that it is unused when a client is given; it is, by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _bolt_logger() -> logging.Logger:
    bolt = logging.getLogger("expbot.bolt")
    if not any(isinstance(f, _DropUnusedTokenWarning) for f in bolt.filters):
        bolt.addFilter(_DropUnusedTokenWarning())
    return bolt


class _Counted(AsyncRetryHandler):
    """Counts each retry of the slack_sdk handler it is mixed into, under `reason`."""

    reason = ""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    async def prepare_for_next_attempt_async(self, **kwargs: Any) -> None:
        self.metrics.slack_api_retries.labels(self.reason).inc()
        await super().prepare_for_next_attempt_async(**kwargs)


class _CountedRateLimitRetries(_Counted, AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (honours Retry-After)."""

    reason = "ratelimited"


class _CountedConnectionRetries(_Counted, AsyncConnectionErrorRetryHandler):
    """slack_sdk's connection-error handler."""

    reason = "connection"


def build(settings: Settings, register: Register, socket_mode: bool = False) -> Runtime:
    store = Store(settings.db_path)
    metrics = Metrics(store)
    client = AsyncWebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.api_url,
        retry_handlers=[_CountedConnectionRetries(metrics), _CountedRateLimitRetries(metrics, max_retry_count=2)],
    )
    providers = build_providers(settings, store)
    workflow = Workflow(settings, store, providers, Threads(client), Approvers(client), metrics=metrics)
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    # HTTP requests are verified by bot/intake.py (slack_sdk's SignatureVerifier) before Bolt sees them, so Bolt
    # need not verify again; Socket Mode envelopes come over the app-level token's WebSocket.
    # `name` spares Bolt an inspect.stack() (tens of ms at start-up); its logger drops the warning that Bolt's own
    # read of SLACK_BOT_TOKEN is unused, which is true and expected: our client carries the token.
    app = AsyncApp(
        name="expbot",
        client=client,
        signing_secret=secret or "socket-mode",
        request_verification_enabled=False,
        logger=_bolt_logger(),
    )
    register(app, workflow)
    return Runtime(settings, store, client, workflow, app, metrics)
