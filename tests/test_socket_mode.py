"""Socket Mode: expbot connects with the app-level token and answers envelopes over a loopback WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from bot.app import build
from bot.config import load_settings
from commands import register
from tests.conftest import env_for
from tests.slackfake.web_api import FakeSlack


async def test_socket_mode_answers_slash_commands(slack: FakeSlack, tmp_path: Path) -> None:
    acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    envelopes = [
        {
            "envelope_id": "env-1",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "command": "/experiment",
                "text": "help",
                "user_id": "U1",
                "channel_id": "C1",
                "team_id": "T0TEST",
                "api_app_id": "A0TEST",
                "trigger_id": "1.2.a",
                "response_url": "x",
            },
        },
        {
            "envelope_id": "env-2",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "command": "/experiment",
                "text": "new sandbox",
                "user_id": "U1",
                "channel_id": "C1",
                "team_id": "T0TEST",
                "api_app_id": "A0TEST",
                "trigger_id": "1.2.b",
                "response_url": "x",
            },
        },
    ]

    async def link(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0TEST"}}))
        for envelope in envelopes:
            await ws.send_str(json.dumps(envelope))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and "envelope_id" in msg.data:
                await acks.put(json.loads(msg.data))
        return ws

    server = web.Application()
    server.router.add_get("/link", link)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    slack.socket_url = f"ws://127.0.0.1:{port}/link"

    env = env_for(slack, tmp_path)
    env.slack_signing_secret = None
    env.slack_app_token = __import__("pydantic").SecretStr(slack.app_token)
    runtime = build(load_settings("socket", env), register, socket_mode=True)
    task = asyncio.create_task(runtime.socket())
    try:
        first = await asyncio.wait_for(acks.get(), 10)
        second = await asyncio.wait_for(acks.get(), 10)
        by_id = {a["envelope_id"]: a for a in (first, second)}
        assert "/experiment ramp <ref> <percent>" in by_id["env-1"]["payload"]["text"]
        opened = await slack.wait_for_async("views.open")
        assert opened[-1].args["trigger_id"] == "1.2.b"
        assert opened[-1].args["view"]["callback_id"] == "create_experiment"
        assert slack.calls("apps.connections.open")[0].headers["authorization"] == f"Bearer {slack.app_token}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()
        runtime.store.close()
