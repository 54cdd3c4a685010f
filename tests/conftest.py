"""Shared test bed: a fake Slack Web API on loopback and the real expbot app served by uvicorn in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bot.app import Runtime, build
from bot.config import Env, load_settings
from bot.models import ChangeRequest, Experiment, RequestStatus
from bot.store import Store
from commands import register
from tests.slackfake.player import SlackPlayer
from tests.slackfake.web_api import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test"
USERS = {"U1": "alice", "U2": "bob", "U3": "carol", "U4": "dave"}


def mrkdwn_texts(node: object) -> list[str]:
    """Every text Slack parses as mrkdwn in a block tree: the `text` of each mrkdwn object, at any depth."""
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str) else []
        return found + [t for v in node.values() for t in mrkdwn_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in mrkdwn_texts(v)]
    return []


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(bot_token=TOKEN)
    fake.start()
    for uid, name in USERS.items():
        fake.add_user(uid, name=name)
    yield fake
    fake.stop()


def env_for(slack: FakeSlack, tmp_path: Path, config: str = "", db: str = "expbot.db", **extra: str) -> Env:
    """Settings for a bot under test; `extra` sets more variables by field name (e.g. `amplitude_api_key`)."""
    cfg = tmp_path / "expbot.toml"
    cfg.write_text(config)
    return Env(
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        expbot_config=str(cfg),
        expbot_db=str(tmp_path / db),
        **extra,
    )


@dataclass
class Bot:
    """One running expbot (HTTP mode) and a player that talks to it as Slack would."""

    runtime: Runtime
    server: uvicorn.Server
    task: asyncio.Task[None]
    player: SlackPlayer
    slack: FakeSlack

    @property
    def store(self) -> Store:
        return self.runtime.store

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task
        await self.player.aclose()
        self.runtime.store.close()

    async def new_sandbox(
        self, name: str = "Checkout", user: str = "U1", channel: str = "C1", **fields: str
    ) -> Experiment:
        """Walk `/experiment new sandbox` -> modal -> submit, and return the tracked experiment."""
        opened = len(self.slack.calls("views.open"))
        resp = await self.player.command("new sandbox", user=user, channel=channel)
        assert resp.status_code == 200
        call = (await self.slack.wait_for_async("views.open", count=opened + 1))[-1]
        view_id = self._view_id(call.args["trigger_id"])
        before = len(self.store.experiments())
        resp = await self.player.submit(view_id, {"name": name, **fields}, user=user)
        assert resp.status_code == 200 and resp.text == "", resp.text
        exps = await self.until(lambda: len(e := self.store.experiments()) > before and e[-1].card_ts and e)
        assert len(exps) == before + 1
        return exps[-1]  # type: ignore[no-any-return]

    def _view_id(self, trigger_id: str) -> str:
        found = [view_id for view_id, view in self.slack.views.items() if view.get("_trigger_id") == trigger_id]
        assert found, f"no view was opened with trigger {trigger_id}"
        return found[-1]

    async def request(self, text: str, user: str = "U1", channel: str = "C1") -> ChangeRequest:
        """Type a change command and wait for its request message in the thread."""
        known = {r.id for r in self.all_requests()}
        resp = await self.player.command(text, user=user, channel=channel)
        assert resp.status_code == 200, resp.text
        for _ in range(250):
            fresh = [r for r in self.all_requests() if r.id not in known and r.message_ts]
            if fresh:
                return fresh[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no request was posted for {text!r}; ephemerals: {self.slack.ephemerals}")

    def all_requests(self) -> list[ChangeRequest]:
        return self.store.requests(list(RequestStatus))

    async def until(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        for _ in range(int(timeout / 0.02)):
            result = check()
            if result:
                return result
            await asyncio.sleep(0.02)
        raise AssertionError("condition not met in time")


StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def start_bot(slack: FakeSlack, tmp_path: Path) -> AsyncIterator[StartBot]:
    bots: list[Bot] = []

    async def start(config: str = "", **env: str) -> Bot:
        """Start the bot with a config file and extra environment variables (by field name)."""
        settings = load_settings("serve", env_for(slack, tmp_path, config, **env))
        runtime = build(settings, register)
        server = uvicorn.Server(
            uvicorn.Config(runtime.asgi(), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        player = SlackPlayer(f"http://127.0.0.1:{port}/slack/events", SECRET, slack)
        bot = Bot(runtime, server, task, player, slack)
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        if not bot.task.done():
            await bot.stop()


@pytest.fixture
async def bot(start_bot: StartBot) -> Bot:
    return await start_bot()
