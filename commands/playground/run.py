"""`expbot playground`: the unchanged app in HTTP mode, the Slack stand-in it talks to, and the page, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import tempfile
import webbrowser
from pathlib import Path

import uvicorn

from bot.app import build
from bot.config import ConfigError, Env, Settings, load_settings
from commands import register
from commands.playground.cast import Cast, expbot_toml, load_cast
from commands.playground.screen import setup_workspace
from commands.playground.standin import SlackStandIn
from commands.playground.ui import Playground

DEFAULT_PORT = 3030


def prepare(data: Path, api_url: str, token: str, secret: str) -> tuple[Cast, Settings]:
    """Read (or write) `playground.toml`, write expbot's config from it, start from an empty database, and load
    the settings as `expbot serve` does, with the environment's real provider credentials if any."""
    cast = load_cast(data / "playground.toml")
    config = data / "expbot.toml"
    config.write_text("# Written by `expbot playground` from playground.toml; edit that file.\n" + expbot_toml(cast))
    db = data / "playground.db"
    for old in (db, data / "playground.db-wal", data / "playground.db-shm"):
        old.unlink(missing_ok=True)
    env = Env(
        slack_bot_token=token,
        slack_signing_secret=secret,
        slack_app_token=None,
        slack_api_url=api_url,
        expbot_config=str(config),
        expbot_db=str(db),
    )
    return cast, load_settings("serve", env)


def _fail(problems: list[str]) -> int:
    print(f"expbot playground cannot start: {len(problems)} setting(s) need attention:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2


def playground(port: int = DEFAULT_PORT, data: str | None = None, open_browser: bool = False) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the page's deliveries are not news
    folder = Path(data) if data else Path(tempfile.mkdtemp(prefix="expbot-playground-"))
    token, secret = "xoxb-" + secrets.token_hex(12), secrets.token_hex(16)
    standin = SlackStandIn(bot_token=token, team_id="T0PLAYGROUND", port=port)
    try:
        standin.start()
    except OSError as exc:
        return _fail([f"--port {port}: cannot listen on 127.0.0.1 ({exc.strerror}); pick another with --port"])
    try:
        cast, settings = prepare(folder, standin.api_url, token, secret)
    except ConfigError as err:
        standin.stop()
        return _fail(err.problems)
    setup_workspace(standin, cast)
    page = Playground(standin, cast, secret)
    try:
        asyncio.run(_serve(settings, page, folder, open_browser))
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


async def _serve(settings: Settings, page: Playground, folder: Path, open_browser: bool) -> None:
    runtime = build(settings, register)
    server = uvicorn.Server(uvicorn.Config(runtime.asgi(), host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.02)
    app_port = server.servers[0].sockets[0].getsockname()[1]
    page.events_url = f"http://127.0.0.1:{app_port}/slack/events"
    address = page.standin.base_url + "/"
    providers = ", ".join(settings.enabled)
    print(f"expbot playground: open {address}", flush=True)
    print(f"  app on http://127.0.0.1:{app_port} (HTTP mode, signed requests) · providers: {providers}", flush=True)
    print(f"  data and playground.toml in {folder} · Ctrl-C stops", flush=True)
    if open_browser:
        webbrowser.open(address)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    runtime.store.close()
