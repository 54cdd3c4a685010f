"""Pacing of every Auth0 call to the tenant's rate limit, shared by all the tasks of one provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from providers.http import Sleep


class Pacer:
    """Spaces calls at least `1 / per_second` apart, whichever task makes them (a token bucket of size one).

    Auth0 development tenants allow 2 requests per second with a burst of 2: calls spaced evenly never see a 429.
    """

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("the request rate must be positive")
        self.interval, self._clock, self._sleep = 1.0 / per_second, clock, sleep
        self._lock = asyncio.Lock()
        self._next_at = 0.0
        self.waited = 0

    async def wait(self) -> None:
        """Return when this call may be sent; calls are let through one by one, in the order they came."""
        async with self._lock:
            now = self._clock()
            if now < self._next_at:
                self.waited += 1
                await self._sleep(self._next_at - now)
                now = max(now, self._clock())
            self._next_at = max(now, self._next_at) + self.interval


class PacedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that waits for the pacer before each request (retries and token fetches included)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, pacer: Pacer, *, owns: bool = True) -> None:
        self.inner, self.pacer, self._owns = inner, pacer, owns

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.pacer.wait()
        return await self.inner.handle_async_request(request)

    def borrowed(self) -> PacedTransport:
        """The same pacing and connections for another client, which must not close them when it is done."""
        return PacedTransport(self.inner, self.pacer, owns=False)

    async def aclose(self) -> None:
        if self._owns:
            await self.inner.aclose()
