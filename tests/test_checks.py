"""The checks behind `expbot check` and `/readyz`: typed rows for Slack, scopes, channel, providers; readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from bot import checks
from bot.checks import CheckRow, channel_row, provider_rows, readiness, redact, run_checks, scopes_row, slack_auth
from bot.config import load_settings
from bot.store import Store
from commands.cli import table
from providers.errors import Unauthorized
from providers.http import HttpClient, Quota
from providers.registry import Deps
from providers.sandbox import SandboxProvider
from tests.conftest import TOKEN, env_for
from tests.slackfake.web_api import FakeSlack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.api_url)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "expbot.db")
    yield opened
    opened.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stub:
    """A provider with only what `provider_rows` uses: `verify`, and an HTTP client that saw a quota."""

    def __init__(self, answer: str | Exception, quota: Quota | None = None) -> None:
        self.answer = answer
        self.http = HttpClient("stub", "https://stub.test")
        self.http.last_quota = quota

    async def verify(self) -> str:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_required_scopes_are_the_manifests() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(checks.REQUIRED_SCOPES)


async def test_slack_auth_reports_team_bot_user_and_scopes(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.scopes = ["commands", "chat:write"]
    row, scopes = await slack_auth(client)
    assert row == CheckRow("slack auth", True, "team Fake (T0TEST), bot user @expbot (UBOT)")
    assert scopes == {"commands", "chat:write"}
    slack.scopes = None
    assert (await slack_auth(client))[1] is None


async def test_slack_auth_failures_say_what_to_do(slack: FakeSlack) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    row, scopes = await slack_auth(wrong)
    assert row.ok is False and scopes is None
    assert row.detail.startswith("invalid_auth: Slack does not accept SLACK_BOT_TOKEN; copy the Bot User OAuth Token")
    nowhere = AsyncWebClient(token=TOKEN, base_url="http://127.0.0.1:9/api/", timeout=2)
    row, _ = await slack_auth(nowhere)
    assert row.ok is False and row.detail.startswith("cannot reach Slack at http://127.0.0.1:9/api/ (")


def test_scopes_row() -> None:
    assert scopes_row(None).ok is None
    assert scopes_row(frozenset(checks.REQUIRED_SCOPES)).ok is True
    missing = scopes_row(frozenset({"commands", "chat:write"}))
    assert missing.ok is False
    assert missing.detail.startswith("missing chat:write.public, usergroups:read, users:read: add under OAuth")


async def test_channel_row(slack: FakeSlack, client: AsyncWebClient) -> None:
    assert (await channel_row(client, None)).ok is None
    assert await channel_row(client, "C0OK") == CheckRow("status channel", True, "#c0ok (C0OK)")
    slack.channels_not_found.add("C0GONE")
    assert (await channel_row(client, "C0GONE")).ok is False
    slack.fail_next("conversations.info", error="missing_scope")
    assert await channel_row(client, "C0OK") == CheckRow(
        "status channel", None, "cannot look up C0OK without the channels:read scope"
    )


async def test_provider_rows(store: Store) -> None:
    reset = datetime(2030, 1, 1, 12, 30, tzinfo=UTC)
    quota = Quota("stub", 100, 97, reset, "X-RateLimit-Remaining: 97")
    providers = {
        "sandbox": SandboxProvider(Deps(records=store)),
        "good": Stub("project web reachable", quota),
        "denied": Stub(Unauthorized("denied", "the API key was refused", status=401)),
    }
    rows = await provider_rows(providers, ["sandbox", "good", "denied", "launchdarkly"])  # type: ignore[arg-type]
    assert rows == [
        CheckRow("provider sandbox", True, "0 experiment(s) visible"),
        CheckRow("provider good", True, "project web reachable; rate limit: 97 of 100 left until 12:30:00 UTC"),
        CheckRow("provider denied", False, "the API key was refused (HTTP 401)"),
        CheckRow("provider launchdarkly", None, "credentials present; adapter not in this version yet"),
    ]
    for stub in list(providers.values())[1:]:
        await stub.http.aclose()  # type: ignore[attr-defined]


async def test_a_provider_that_never_answers_is_a_failed_row(monkeypatch: pytest.MonkeyPatch) -> None:
    class Slow(Stub):
        async def verify(self) -> str:
            await asyncio.sleep(5)
            return "never"

    monkeypatch.setattr(checks, "PROVIDER_TIMEOUT", 0.05)
    slow = Slow("")
    assert await provider_rows({"slow": slow}, ["slow"]) == [  # type: ignore[dict-item]
        CheckRow("provider slow", False, "no answer within 0.05 s")
    ]
    await slow.http.aclose()


def test_secrets_never_reach_a_row() -> None:
    rows = redact([CheckRow("provider x", False, "refused key sk-12345 for xoxb-1-2")], ["sk-12345", "xoxb-1-2", "ab"])
    assert rows == [CheckRow("provider x", False, "refused key *** for ***")]


def test_table_aligns_the_columns() -> None:
    assert table([CheckRow("a", True, "fine"), CheckRow("longer name", False, "broken"), CheckRow("b", None, "")]) == (
        "CHECK        RESULT  DETAIL\na            ok      fine\nlonger name  FAIL    broken\nb            skip"
    )


async def test_run_checks_against_the_fake(slack: FakeSlack, tmp_path: Path) -> None:
    slack.scopes = list(checks.REQUIRED_SCOPES)
    settings = load_settings("check", env_for(slack, tmp_path, '[slack]\nchannel = "C0STATUS"\n'))
    rows = await run_checks(settings)
    assert [(r.name, r.ok) for r in rows] == [
        ("database", True),
        ("slack auth", True),
        ("slack scopes", True),
        ("status channel", True),
        ("slack outbox", True),
        ("provider sandbox", True),
    ]
    assert all(TOKEN not in r.detail for r in rows)
    assert rows[0].detail == f"{tmp_path}/expbot.db does not exist yet; expbot creates it on start"
    assert not (tmp_path / "expbot.db").exists()  # checking creates nothing
    Store(tmp_path / "expbot.db").close()
    assert (await run_checks(settings))[0] == CheckRow(
        "database", True, f"{tmp_path}/expbot.db answers (0 change request(s))"
    )


async def test_a_provider_bug_is_one_failed_row() -> None:
    broken = Stub(KeyError("data"))
    assert await provider_rows({"broken": broken}, ["broken"]) == [  # type: ignore[dict-item]
        CheckRow("provider broken", False, "unexpected error (KeyError: 'data')")
    ]
    await broken.http.aclose()


async def test_readiness_with_a_good_database(store: Store, slack: FakeSlack, client: AsyncWebClient) -> None:
    clock = Clock()
    ready, body = await readiness(store, client, lambda: (3, 12.5), clock=clock)
    assert ready is True
    assert body == {
        "ok": True,
        "database": {"ok": True, "detail": f"{store.path} answers (0 change request(s))"},
        "slack": {"ok": True, "detail": "team Fake (T0TEST), bot user @expbot (UBOT)", "checked_s_ago": 0.0},
        "outbox": {"ok": True, "depth": 3, "oldest_age_s": 12.5},
    }
    clock.now += 59
    ready, body = await readiness(store, client, clock=clock)
    assert ready and body["slack"]["checked_s_ago"] == 59.0 and "outbox" not in body
    assert len(slack.calls("auth.test")) == 1  # probes within a minute reuse the answer
    clock.now += 2
    await readiness(store, client, clock=clock)
    assert len(slack.calls("auth.test")) == 2


async def test_readiness_with_a_broken_database(store: Store, client: AsyncWebClient) -> None:
    store.db.execute("DROP TABLE approvals")
    store.db.execute("DROP TABLE requests")
    ready, body = await readiness(store, client, clock=Clock())
    assert ready is False and body["ok"] is False
    assert body["database"]["ok"] is False
    assert body["database"]["detail"].startswith(f"{store.path} does not answer (OperationalError: no such table")
    assert body["slack"]["ok"] is True


async def test_readiness_closed_database_failed_outbox_and_revoked_token(
    tmp_path: Path, slack: FakeSlack, client: AsyncWebClient
) -> None:
    closed = Store(tmp_path / "closed.db")
    closed.close()
    slack.revoke_token()
    clock = Clock()

    def outbox() -> tuple[int, float | None]:
        raise RuntimeError("outbox table missing")

    ready, body = await readiness(closed, client, outbox, clock=clock)
    assert ready is False
    assert body["database"]["detail"].startswith(f"{closed.path} does not answer (ProgrammingError")
    assert body["slack"]["ok"] is False and body["slack"]["detail"].startswith("token_revoked:")
    assert body["outbox"] == {"ok": False, "detail": "RuntimeError: outbox table missing"}
    clock.now += 11  # a failed answer is asked again sooner than a good one
    await readiness(closed, client, clock=clock)
    assert len(slack.calls("auth.test")) == 2


async def test_the_outbox_row_names_messages_given_up(tmp_path: Path) -> None:
    from bot.models import OutboxItem
    from bot.store import Store

    store = Store(tmp_path / "x.db")
    assert checks.outbox_row(store) == CheckRow("slack outbox", True, "0 message(s) waiting; 0 given up")
    await store.enqueue([OutboxItem.dm("U1", "k", "hi")])
    [row] = await store.claim_due("p", timedelta(seconds=60))
    await store.outbox_failed(row, "p", "is_archived", None)
    found = checks.outbox_row(store)
    assert found.ok is False and "1 given up (last: is_archived)" in found.detail
