"""The `expbot` command line: `serve` (HTTP), `socket` (Socket Mode) and `check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.app import build
from bot.config import ConfigError, Mode, Settings, load_settings
from commands import register
from providers.registry import driver


def _settings(mode: Mode) -> Settings:
    try:
        return load_settings(mode)
    except ConfigError as err:
        print(f"expbot cannot start: {len(err.problems)} setting(s) need attention:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("See the configuration reference in README.md.", file=sys.stderr)
        raise SystemExit(2) from None


def check() -> int:
    settings = _settings("check")
    print("Settings are complete.")
    print(f"Slack Web API: {settings.api_url}")
    print(f"Database: {settings.db_path}")
    print(f"Config file: {settings.config_path or 'none (defaults)'}")
    print(f"Status channel: {settings.channel or 'where each command is typed'}")
    for name in settings.enabled:
        note = "" if driver(name) else " (credentials present; adapter not in this version yet)"
        print(f"Provider enabled: {name}{note}")
    return 0


def serve(host: str, port: int) -> int:
    import uvicorn

    runtime = build(_settings("serve"), register)
    uvicorn.run(runtime.asgi(), host=host, port=port, log_level="info", proxy_headers=True)
    return 0


def socket() -> int:
    runtime = build(_settings("socket"), register, socket_mode=True)
    asyncio.run(runtime.socket())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expbot", description="A/B experiments from Slack, approved in threads.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="HTTP mode: /slack/events, /healthz, /metrics")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=3000)
    sub.add_parser("socket", help="Socket Mode, with SLACK_APP_TOKEN")
    sub.add_parser("check", help="say which settings are missing or invalid and which providers are enabled")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "serve":
        return serve(args.host, args.port)
    if args.cmd == "socket":
        return socket()
    return check()


if __name__ == "__main__":
    sys.exit(main())
