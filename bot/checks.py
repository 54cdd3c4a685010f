"""What `expbot check` prints and `/readyz` reports: the database, Slack's token, scopes and channel, the providers."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.store import Store
from providers.base import Provider
from providers.errors import ProviderError

if TYPE_CHECKING:  # httpx and the HTTP client load only with an adapter that uses them (start-up time)
    from providers.http import Quota

REQUIRED_SCOPES = ("commands", "chat:write", "chat:write.public", "usergroups:read", "users:read")
"""The bot scopes the app needs (manifest.yml's `oauth_config.scopes.bot`)."""
AUTH_TTL, AUTH_RETRY = 60.0, 10.0  # seconds readiness() reuses a good / a failed Slack auth answer
SLACK_TIMEOUT, PROVIDER_TIMEOUT = 10.0, 30.0
NETWORK_ERRORS = (SlackClientError, aiohttp.ClientError, OSError, ValueError)
_FIXES = {
    "token_revoked": "the bot token was revoked; reinstall the app and set SLACK_BOT_TOKEN to its new bot token",
    "invalid_auth": "Slack does not accept SLACK_BOT_TOKEN; copy the Bot User OAuth Token (xoxb-…) from the app's "
    "OAuth & Permissions page",
    "not_authed": "no token reached Slack; set SLACK_BOT_TOKEN",
    "account_inactive": "the bot user or its workspace is deactivated; reinstall the app",
    "token_expired": "the token expired (token rotation is on); set a fresh bot token or turn rotation off",
}
OutboxDepth = Callable[[], tuple[int, float | None]]


@dataclass(frozen=True)
class CheckRow:
    """One line of the check table: what was checked, whether it passed (None: skipped) and what to know or do."""

    name: str
    ok: bool | None
    detail: str

    @property
    def mark(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]


def outbox_row(store: Store) -> CheckRow:
    """Slack messages still waiting, and those given up after an error retrying cannot fix."""
    stats = store.outbox_stats()
    age = f", the oldest {stats.oldest_age:.0f}s old" if stats.oldest_age is not None else ""
    detail = f"{stats.depth} message(s) waiting{age}; {stats.dead} given up"
    if stats.dead:
        last = next((r.last_error for r in reversed(store.outbox_rows("dead"))), None)
        detail += f" (last: {last}); see the log, fix the cause, then ask for the change again"
    return CheckRow("slack outbox", not stats.dead, detail)


def database_row(store: Store) -> CheckRow:
    """The database answers a trivial read."""
    try:
        counts = store.request_counts()
    except sqlite3.Error as exc:
        return CheckRow("database", False, f"{store.path} does not answer ({type(exc).__name__}: {exc})")
    return CheckRow("database", True, f"{store.path} answers ({sum(counts.values())} change request(s))")


async def slack_auth(client: AsyncWebClient) -> tuple[CheckRow, frozenset[str] | None]:
    """`auth.test`: the token is valid, its team and bot user; and the scopes Slack lists for it, if it does."""
    try:
        resp = await client.auth_test()
    except SlackApiError as err:
        code = str(err.response.get("error") or err.response.status_code)
        return CheckRow("slack auth", False, f"{code}: {_FIXES.get(code, 'Slack refused the bot token')}"), None
    except NETWORK_ERRORS as exc:
        return CheckRow("slack auth", False, f"cannot reach Slack at {client.base_url} ({_why(exc)})"), None
    detail = f"team {resp.get('team')} ({resp.get('team_id')}), bot user @{resp.get('user')} ({resp.get('user_id')})"
    header = next((str(v) for k, v in resp.headers.items() if k.lower() == "x-oauth-scopes"), None)
    scopes = None if header is None else frozenset(s.strip() for s in header.split(",") if s.strip())
    return CheckRow("slack auth", True, detail), scopes


def scopes_row(scopes: frozenset[str] | None) -> CheckRow:
    """Every scope in REQUIRED_SCOPES was granted to the token."""
    if scopes is None:
        return CheckRow("slack scopes", None, "Slack did not list the token's scopes (no X-OAuth-Scopes header)")
    missing = [s for s in REQUIRED_SCOPES if s not in scopes]
    if missing:
        return CheckRow(
            "slack scopes",
            False,
            f"missing {', '.join(missing)}: add under OAuth & Permissions > Bot Token Scopes "
            "(or update the app from manifest.yml), then reinstall the app",
        )
    return CheckRow("slack scopes", True, ", ".join(REQUIRED_SCOPES))


async def channel_row(client: AsyncWebClient, channel: str | None) -> CheckRow:
    """`[slack] channel` exists and the bot can see it (`conversations.info`)."""
    if channel is None:
        return CheckRow("status channel", None, "[slack] channel not set; cards go where each command is typed")
    try:
        info = (await client.conversations_info(channel=channel))["channel"]
    except SlackApiError as err:
        code = str(err.response.get("error"))
        if code == "missing_scope":
            return CheckRow("status channel", None, f"cannot look up {channel} without the channels:read scope")
        if code == "channel_not_found":
            return CheckRow(
                "status channel",
                False,
                f"{channel} not found: check [slack] channel; a private channel needs the bot invited",
            )
        return CheckRow("status channel", False, f"{channel}: {code}")
    except NETWORK_ERRORS as exc:
        return CheckRow("status channel", False, f"cannot reach Slack ({_why(exc)})")
    if info.get("is_archived"):
        return CheckRow("status channel", False, f"#{info.get('name')} ({channel}) is archived; pick another channel")
    return CheckRow("status channel", True, f"#{info.get('name')} ({channel})")


async def provider_rows(providers: Mapping[str, Provider], enabled: Iterable[str]) -> list[CheckRow]:
    """`verify()` of each enabled provider, side by side; one without an adapter in this version is skipped."""

    async def one(name: str) -> CheckRow:
        provider = providers.get(name)
        if provider is None:
            return CheckRow(f"provider {name}", None, "credentials present; adapter not in this version yet")
        try:
            line = await asyncio.wait_for(provider.verify(), PROVIDER_TIMEOUT)
        except ProviderError as err:
            status = f" (HTTP {err.status})" if err.status else ""
            return CheckRow(f"provider {name}", False, f"{err.detail}{status}")
        except TimeoutError:
            return CheckRow(f"provider {name}", False, f"no answer within {PROVIDER_TIMEOUT:g} s")
        except Exception as exc:  # an adapter's bug is one failed row, not a traceback that hides the others
            return CheckRow(f"provider {name}", False, f"unexpected error ({_why(exc)})")
        quota = last_quota(provider)
        return CheckRow(f"provider {name}", True, line + (f"; rate limit: {describe(quota)}" if quota else ""))

    return list(await asyncio.gather(*(one(name) for name in enabled)))


def last_quota(provider: Provider) -> Quota | None:
    """The rate-limit budget the provider's HTTP client saw last, if it keeps one."""
    from providers.http import HttpClient

    clients = [v for v in getattr(provider, "__dict__", {}).values() if isinstance(v, HttpClient)]
    return next((c.last_quota for c in clients if c.last_quota is not None), None)


def describe(quota: Quota) -> str:
    if quota.remaining is None:
        return quota.raw
    left = f"{quota.remaining} of {quota.limit} left" if quota.limit is not None else f"{quota.remaining} left"
    return left + (f" until {quota.reset_at:%H:%M:%S} UTC" if quota.reset_at else "")


async def run_checks(settings: Settings) -> list[CheckRow]:
    """Every check of `expbot check`, in table order; no row carries a secret."""
    from bot.app import build_providers  # bot.app imports this module for /readyz

    client = AsyncWebClient(
        token=settings.bot_token.get_secret_value(), base_url=settings.api_url, timeout=int(SLACK_TIMEOUT)
    )
    store, opened = _open(settings)
    rows = [opened]
    auth, scopes = await slack_auth(client)
    rows.append(auth)
    if auth.ok:
        rows += [scopes_row(scopes), await channel_row(client, settings.channel)]
    else:
        rows += [CheckRow(n, None, "needs a bot token Slack accepts") for n in ("slack scopes", "status channel")]
    if store is None:
        rows += [CheckRow(f"provider {n}", None, "needs the database") for n in settings.enabled]
    else:
        rows.append(outbox_row(store))
        providers = build_providers(settings, store)
        try:
            rows += await provider_rows(providers, settings.enabled)
        finally:
            for provider in providers.values():
                await provider.aclose()
            store.close()
    return redact(rows, _secrets(settings))


def _open(settings: Settings) -> tuple[Store | None, CheckRow]:
    """The database, without creating it: a file not there yet is checked in memory (the sandbox starts empty)."""
    path = settings.db_path
    if not path.exists():
        if not os.access(path.parent, os.W_OK):
            return None, CheckRow("database", False, f"{path} cannot be created: {path.parent} is not writable")
        return Store(":memory:"), CheckRow("database", True, f"{path} does not exist yet; expbot creates it on start")
    try:
        store = Store(settings.db_path)
    except sqlite3.Error as exc:
        return None, CheckRow("database", False, f"{settings.db_path} cannot be opened ({_why(exc)})")
    return store, database_row(store)


def redact(rows: list[CheckRow], secrets: Iterable[str]) -> list[CheckRow]:
    """Rows with every secret value replaced by `***` (a provider's error text may quote what it was sent)."""
    values = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)
    out = []
    for row in rows:
        detail = row.detail
        for value in values:
            detail = detail.replace(value, "***")
        out.append(replace(row, detail=detail))
    return out


def _secrets(settings: Settings) -> list[str]:
    found = [s.get_secret_value() for s in (settings.bot_token, settings.signing_secret, settings.app_token) if s]
    return found + [v.get_secret_value() for group in settings.secrets.values() for v in group.values()]


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_auth_cache: WeakKeyDictionary[AsyncWebClient, tuple[float, CheckRow]] = WeakKeyDictionary()


async def cached_auth(client: AsyncWebClient, clock: Callable[[], float] = time.monotonic) -> tuple[CheckRow, float]:
    """`slack_auth` reused for AUTH_TTL s (AUTH_RETRY s after a failure); also how old the answer is."""
    cached = _auth_cache.get(client)
    if cached is not None and clock() - cached[0] < (AUTH_TTL if cached[1].ok else AUTH_RETRY):
        return cached[1], clock() - cached[0]
    try:
        row, _ = await asyncio.wait_for(slack_auth(client), SLACK_TIMEOUT)
    except TimeoutError:
        row = CheckRow("slack auth", False, f"no answer from Slack within {SLACK_TIMEOUT:g} s")
    _auth_cache[client] = (clock(), row)
    return row, 0.0


async def readiness(
    store: Store,
    client: AsyncWebClient,
    outbox_depth: OutboxDepth | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, dict[str, Any]]:
    """For `/readyz`: the database answers, Slack accepts the token (cached), and the outbox's depth if given."""
    db = database_row(store)
    auth, age = await cached_auth(client, clock)
    body: dict[str, Any] = {
        "database": {"ok": db.ok, "detail": db.detail},
        "slack": {"ok": auth.ok, "detail": auth.detail, "checked_s_ago": round(age, 1)},
    }
    ready = bool(db.ok and auth.ok)
    if outbox_depth is not None:
        try:
            depth, oldest = outbox_depth()
        except Exception as exc:  # the hook reads the database; a failure means not ready, never a 500
            body["outbox"] = {"ok": False, "detail": _why(exc)}
            ready = False
        else:
            body["outbox"] = {"ok": True, "depth": depth, "oldest_age_s": oldest}
    return ready, {"ok": ready, **body}
