"""Composition root: wires settings, store, providers, Slack client and listeners into runnable apps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, request_response

from bot.config import Settings
from bot.intake import Intake
from bot.policy import Approvers
from bot.store import Store
from bot.threads import Threads
from bot.workflow import Workflow
from providers.base import Provider
from providers.registry import Deps, driver

log = logging.getLogger("expbot")
Register = Callable[[AsyncApp, Workflow], None]
SWEEP_SECONDS = 30.0


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
    intake: Intake | None = None  # the front door of /slack/events, set by asgi()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Recover interrupted requests, then keep recovering orphans and expiring overdue ones in the background."""
        await self.workflow.recover()
        sweeper = asyncio.create_task(self._sweep())
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await self.workflow.aclose()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.workflow.recover()
            except Exception:  # the sweeper must outlive one bad round; the error is logged
                log.exception("recovering or expiring requests failed")

    def asgi(self) -> Starlette:
        """HTTP mode: `/slack/events` (behind the intake: size, signature, shape), `/healthz`, `/metrics`."""
        assert self.settings.signing_secret is not None
        handler = AsyncSlackRequestHandler(self.app)

        async def events(request: Request) -> Response:
            return await handler.handle(request)

        self.intake = Intake(request_response(events), self.settings.signing_secret.get_secret_value())

        async def healthz(_: Request) -> Response:
            self.store.request_counts()
            return JSONResponse({"ok": True})

        async def metrics(_: Request) -> Response:
            lines = [
                f'expbot_requests{{status="{status}"}} {count}' for status, count in self.store.request_counts().items()
            ]
            lines.append(f"expbot_experiments {len(self.store.experiments())}")
            return PlainTextResponse("\n".join(lines) + "\n")

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with self.running():
                yield

        return Starlette(
            routes=[
                Route("/slack/events", self.intake, methods=["POST"]),
                Route("/healthz", healthz),
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


def build(settings: Settings, register: Register, socket_mode: bool = False) -> Runtime:
    store = Store(settings.db_path)
    client = AsyncWebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.api_url,
        retry_handlers=[AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    providers = build_providers(settings, store)
    workflow = Workflow(settings, store, providers, Threads(client), Approvers(client))
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    app = AsyncApp(
        client=client, signing_secret=secret or "socket-mode", request_verification_enabled=not socket_mode, logger=log
    )
    register(app, workflow)
    return Runtime(settings, store, client, workflow, app)
