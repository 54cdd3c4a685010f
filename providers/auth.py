"""Credentials for provider calls as httpx.Auth: API keys, App Store Connect JWTs, Auth0 client credentials."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from datetime import timedelta

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from providers.errors import ProviderError, RateLimited, Unauthorized, Unavailable
from providers.http import HttpClient, Sleep, parse_auth0_error

APPLE_AUDIENCE = "appstoreconnect-v1"
APPLE_MAX_LIFETIME = timedelta(minutes=20)  # Apple rejects longer-lived tokens for experiments


class BearerKey(httpx.Auth):
    """`Authorization: Bearer <key>` (Amplitude's management API key)."""

    def __init__(self, key: str) -> None:
        if not key.strip():
            raise ValueError("the API key is empty")
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request

    def __repr__(self) -> str:
        return "BearerKey(key=<hidden>)"


class RawToken(httpx.Auth):
    """`Authorization: <token>` with no "Bearer", plus default headers such as `LD-API-Version` (LaunchDarkly).

    A header the request already carries (e.g. `LD-API-Version: beta` on an experiment call) wins over the default.
    """

    def __init__(self, token: str, extra_headers: Mapping[str, str] | None = None) -> None:
        if not token.strip():
            raise ValueError("the access token is empty")
        self._token, self._extra = token, dict(extra_headers or {})

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._token
        for name, value in self._extra.items():
            request.headers.setdefault(name, value)
        yield request

    def __repr__(self) -> str:
        return f"RawToken(token=<hidden>, extra_headers={self._extra!r})"


def load_ec_key(private_key_pem: str | bytes) -> ec.EllipticCurvePrivateKey:
    """The App Store Connect .p8 key, or a ValueError that says what is wrong (never echoing the key)."""
    data = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the App Store Connect key is not an unencrypted PEM private key (the .p8 file)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(
            f"the App Store Connect key must be an EC private key (the .p8 file), not {type(key).__name__}"
        )
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"the App Store Connect key must be on curve P-256 for ES256, not {key.curve.name}")
    return key


class AppStoreJwt(httpx.Auth):
    """`Authorization: Bearer <ES256 JWT>` minted locally, reused until shortly before it expires.

    On a 401 the token is minted once more and the request sent once more.
    """

    def __init__(
        self,
        issuer_id: str,
        key_id: str,
        private_key_pem: str | bytes,
        *,
        lifetime: timedelta = APPLE_MAX_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = load_ec_key(private_key_pem)
        seconds = int(min(lifetime, APPLE_MAX_LIFETIME).total_seconds())
        if seconds <= 0:
            raise ValueError("the App Store Connect token lifetime must be positive")
        self.issuer_id, self.key_id, self._lifetime, self._clock = issuer_id, key_id, seconds, clock
        self._margin = min(60, seconds // 4)  # renew this long before expiry, so no request carries a dying token
        self._token: str | None = None
        self._renew_at = 0.0

    def _current(self, *, fresh: bool = False) -> str:
        now = self._clock()
        if self._token is None or fresh or now >= self._renew_at:
            iat = int(now)
            claims = {"iss": self.issuer_id, "iat": iat, "exp": iat + self._lifetime, "aud": APPLE_AUDIENCE}
            headers = {"alg": "ES256", "kid": self.key_id, "typ": "JWT"}
            self._token = jwt.encode(claims, self._key, algorithm="ES256", headers=headers)
            self._renew_at = iat + self._lifetime - self._margin
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._current()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._current(fresh=True)}"
            yield request

    def __repr__(self) -> str:
        return f"AppStoreJwt(issuer_id={self.issuer_id!r}, key_id={self.key_id!r}, key=<hidden>)"


class ClientCredentials(httpx.Auth):
    """Auth0 machine-to-machine token (client-credentials grant), cached and shared by concurrent calls.

    One token request serves every task waiting on the lock; on a 401 the token is fetched once more (unless another
    task already did) and the request sent once more. Only the token endpoint ever sees the client secret.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        audience: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        provider: str = "auth0",
    ) -> None:
        self.token_url, self.client_id, self.audience, self.provider = token_url, client_id, audience, provider
        self._secret, self._clock, self._transport, self._sleep = client_secret, clock, transport, sleep
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("ClientCredentials fetches tokens asynchronously: use it with httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._current()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self._current(rejected=token)}"
            yield request

    async def _current(self, rejected: str | None = None) -> str:
        async with self._lock:
            if self._token is not None and self._token != rejected and self._clock() < self._renew_at:
                return self._token
            self._token, expires_in = await self._fetch()
            self._renew_at = self._clock() + expires_in - min(60.0, expires_in / 2)
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        grant = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
            "audience": self.audience,
        }
        async with HttpClient(
            self.provider, self.token_url, parse_error=parse_auth0_error, transport=self._transport, sleep=self._sleep
        ) as client:
            try:
                answer = await client.send_json("POST", self.token_url, grant, repeatable=True)
            except (RateLimited, Unavailable):
                raise
            except ProviderError as exc:  # Auth0 refused the credentials: say so in its own words
                raise Unauthorized(self.provider, exc.detail, status=exc.status, code=exc.code) from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        expires_in = answer.get("expires_in") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise Unauthorized(self.provider, "the token endpoint answered without an access_token")
        return token, float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 3600.0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, client_secret=<hidden>)"
