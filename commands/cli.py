"""The `expbot` command line: `serve` (HTTP), `socket` (Socket Mode), `check` and `playground`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from typing import TYPE_CHECKING, Any

from bot import logs

if TYPE_CHECKING:
    from bot.checks import CheckRow
    from bot.config import Mode, Settings


def _settings(mode: Mode) -> Settings:
    from bot.config import ConfigError, load_settings

    try:
        return load_settings(mode)
    except ConfigError as err:
        print(f"expbot cannot start: {len(err.problems)} setting(s) need attention:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("See the configuration reference in README.md.", file=sys.stderr)
        raise SystemExit(2) from None


def check() -> int:
    """Validate the settings (exit 2), then check the database, Slack and each provider (exit 1 if one fails)."""
    from bot.checks import run_checks

    settings = _settings("check")
    rows = asyncio.run(run_checks(settings))
    print("Settings are valid.")
    print(f"Config file: {settings.config_path or 'none (defaults)'}")
    print(f"Slack Web API: {settings.api_url}")
    print()
    print(table(rows))
    print()
    failed = sum(row.ok is False for row in rows)
    if failed:
        print(f"{failed} of {len(rows)} checks failed: fix the rows marked FAIL and run `expbot check` again.")
        return 1
    skipped = sum(row.ok is None for row in rows)
    print(f"All checks passed ({skipped} skipped)." if skipped else "All checks passed.")
    return 0


def table(rows: list[CheckRow]) -> str:
    """Rows as aligned columns under a CHECK / RESULT / DETAIL header."""
    lines = [("CHECK", "RESULT", "DETAIL"), *((row.name, row.mark, row.detail) for row in rows)]
    width = max(len(name) for name, _, _ in lines)
    return "\n".join(f"{name:<{width}}  {mark:<6}  {detail}".rstrip() for name, mark, detail in lines)


def serve(host: str, port: int, log_config: dict[str, Any]) -> int:
    import uvicorn

    from bot.app import build
    from commands import register

    runtime = build(_settings("serve"), register)  # the collector comes back on when start-up is done (bot/app.py)
    uvicorn.run(runtime.asgi(), host=host, port=port, log_level="info", proxy_headers=True, log_config=log_config)
    return 0


def socket() -> int:
    from bot.app import build
    from commands import register

    runtime = build(_settings("socket"), register, socket_mode=True)
    asyncio.run(runtime.socket())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expbot", description="A/B experiments from Slack, approved in threads.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="HTTP mode: /slack/events, /healthz, /readyz, /metrics")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=3000)
    p_socket = sub.add_parser("socket", help="Socket Mode, with SLACK_APP_TOKEN")
    for p in (p_serve, p_socket):
        p.add_argument("--log-format", choices=("text", "json"), default="text", help="one line per event [text]")
    sub.add_parser("check", help="validate the settings, then check the database, Slack and each enabled provider")
    p_play = sub.add_parser("playground", help="the app with a local Slack stand-in and a page in the browser")
    p_play.add_argument("--port", type=int, default=3030, help="port of the page on 127.0.0.1 [3030]; 0 picks one")
    p_play.add_argument("--data", help="folder for playground.toml and the database [a new temporary folder]")
    p_play.add_argument("--open", action="store_true", help="open the page in the browser")
    args = parser.parse_args(argv)
    if args.cmd in ("serve", "socket"):
        # Start-up imports and builds ~100k objects that live as long as the process; collecting them again and
        # again while they are made costs ~40 ms. The collector stays off until start-up is done: `Runtime.running`
        # freezes what start-up made and turns it back on.
        gc.disable()
    log_config = logs.configure(getattr(args, "log_format", "text"), logging.INFO)
    if args.cmd == "serve":
        return serve(args.host, args.port, log_config)
    if args.cmd == "socket":
        return socket()
    if args.cmd == "playground":
        from commands.playground.run import playground

        return playground(args.port, args.data, args.open)
    return check()


if __name__ == "__main__":
    sys.exit(main())
