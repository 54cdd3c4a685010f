"""A fake Slack Web API: a real HTTP server on loopback that keeps messages and views and records every call."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

Predicate = Callable[[dict[str, Any]], bool]
JSON_FIELDS = ("blocks", "view", "attachments", "metadata")


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    status: int
    error: str
    retry_after: int | None
    times: int


class FakeSlack:
    """Answers the Web API methods expbot uses with Slack's documented bodies, and can inject faults."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        team_id: str = "T0TEST",
        bot_user_id: str = "UBOT",
        app_token: str = "xapp-test",
    ) -> None:
        self.bot_token, self.app_token, self.team_id, self.bot_user_id = bot_token, app_token, team_id, bot_user_id
        self.socket_url: str | None = None
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.channels_not_found: set[str] = set()
        self.scopes: list[str] | None = None  # when set, auth.test answers them in its X-OAuth-Scopes header
        self.token_error: str | None = None  # when set, every bot-token call answers this error (see revoke_token)
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._calls: list[Call] = []
        self._faults: dict[str, Fault] = {}
        self._holds: dict[str, threading.Event] = {}
        self._used_triggers: set[str] = set()
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = fake._handle(self.path, dict(self.headers.items()), raw)
                payload = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json" if isinstance(body, dict) else "text/plain")
                self.send_header("content-length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self.do_POST()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base_url}/response/{name}"

    # -- set-up and fault injection ------------------------------------------------------------
    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "Europe/Berlin",
        team_id: str | None = None,
        guest: str | None = None,
    ) -> None:
        """A user; `team_id` of another workspace for Slack Connect, `guest` "multi" or "single" channel."""
        self.users[user_id] = {
            "id": user_id,
            "team_id": team_id or self.team_id,
            "name": name,
            "real_name": real_name or name,
            "deleted": deleted,
            "is_bot": is_bot,
            "tz": tz,
            "is_restricted": guest is not None,
            "is_ultra_restricted": guest == "single",
        }

    def add_usergroup(self, group_id: str, users: list[str]) -> None:
        self.usergroups[group_id] = list(users)

    def revoke_token(self, error: str = "token_revoked") -> None:
        """From now on every call with the bot token answers `error` (Slack says `token_revoked` or `invalid_auth`)."""
        self.token_error = error

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str = "ratelimited",
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        with self._lock:
            self._faults[method] = Fault(status, error, retry_after, times)

    def hold(self, method: str) -> threading.Event:
        """Keep every call of `method` waiting (as a slow Slack would) until the returned event is set."""
        gate = threading.Event()
        with self._lock:
            self._holds[method] = gate
        return gate

    # -- what was recorded ---------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def _matching(self, method: str, predicate: Predicate) -> list[Call]:
        return [c for c in self.calls(method) if predicate(c.args)]

    def _missing(self, method: str, count: int) -> AssertionError:
        seen = [f"{c.method} {json.dumps(c.args)[:200]}" for c in self.calls()]
        return AssertionError(f"expected {count} matching {method} call(s); seen:\n" + "\n".join(seen[-25:]))

    async def wait_for_async(
        self, method: str, predicate: Predicate = lambda a: True, count: int = 1, timeout: float = 5.0
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self._matching(method, predicate)) >= count:
                return found
            await asyncio.sleep(0.02)
        raise self._missing(method, count)

    def message(self, channel: str, ts: str | None) -> dict[str, Any] | None:
        with self._lock:
            found = self._messages.get((channel, ts or ""))
            return json.loads(json.dumps(found)) if found else None

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            found = [m for (c, _), m in self._messages.items() if channel is None or c == channel]
        return sorted(found, key=lambda m: float(m["ts"]))

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages(channel) if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]

    def view(self, view_id: str) -> dict[str, Any]:
        return self.views[view_id]

    # -- the Web API ---------------------------------------------------------------------------
    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        lower = {k.lower(): v for k, v in headers.items()}
        if path.startswith("/response/"):
            args = json.loads(raw or b"{}")
            with self._lock:
                self._calls.append(Call("response_url", {**args, "_path": path}, lower))
            return 200, {}, "ok"
        method = path.split("?")[0].removeprefix("/api/")
        args = self._args(lower.get("content-type", ""), raw, path)
        with self._lock:
            self._calls.append(Call(method, args, lower))
            gate = self._holds.get(method)
        if gate is not None:  # received and recorded, answered only once the test lets it through
            gate.wait(30)
        with self._lock:
            fault = self._faults.get(method)
            if fault:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[method]
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return fault.status, extra, {"ok": False, "error": fault.error}
            token = lower.get("authorization", "").removeprefix("Bearer ")
            wanted = self.app_token if method == "apps.connections.open" else self.bot_token
            if token != wanted:
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            if self.token_error and token == self.bot_token:
                return 200, {}, {"ok": False, "error": self.token_error}
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            body = handler(args) if handler else {"ok": False, "error": "unknown_method"}
        scopes = {"X-OAuth-Scopes": ",".join(self.scopes)} if method == "auth.test" and self.scopes is not None else {}
        return 200, scopes, body

    @staticmethod
    def _args(content_type: str, raw: bytes, path: str) -> dict[str, Any]:
        args: dict[str, Any] = dict(parse_qsl(path.split("?", 1)[1])) if "?" in path else {}
        if not raw:
            return args
        if "json" in content_type:
            return {**args, **json.loads(raw)}
        form: dict[str, Any] = dict(parse_qsl(raw.decode()))
        for key in JSON_FIELDS:
            if isinstance(form.get(key), str) and form[key][:1] in "[{":
                form[key] = json.loads(form[key])
        return {**args, **form}

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts) * 100:06d}"

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "expbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "BBOT",
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_url:
            return {"ok": False, "error": "not_allowed"}
        return {"ok": True, "url": self.socket_url}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if len(args.get("blocks") or []) > 50:
            return {"ok": False, "error": "invalid_blocks"}
        if channel.startswith(("U", "W")):
            channel = "D" + channel[1:]
        ts = self._next_ts()
        msg = {
            "type": "message",
            "channel": channel,
            "ts": ts,
            "text": args.get("text", ""),
            "blocks": args.get("blocks") or [],
            "user": self.bot_user_id,
            "bot_id": "BBOT",
        }
        if args.get("thread_ts"):
            msg["thread_ts"] = args["thread_ts"]
        self._messages[(channel, ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts, "message": msg}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self._messages.get((str(args.get("channel")), str(args.get("ts"))))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if "text" in args:
            msg["text"] = args["text"]
        if "blocks" in args:
            msg["blocks"] = args["blocks"] or []
        return {"ok": True, "channel": msg["channel"], "ts": msg["ts"], "text": msg["text"]}

    def _m_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("message_ts"))
        if (channel, ts) not in self._messages:
            return {"ok": False, "error": "message_not_found"}
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://fake.slack.test/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        self.ephemerals.append({k: args.get(k) for k in ("channel", "user", "text", "blocks", "thread_ts")})
        return {"ok": True, "message_ts": self._next_ts()}

    def _store_view(self, view: dict[str, Any], view_id: str | None = None, **extra: Any) -> dict[str, Any]:
        view_id = view_id or f"V{next(self._ids):04d}"
        stored = {
            **view,
            "id": view_id,
            "hash": f"{time.time_ns()}.{view_id}",
            "team_id": self.team_id,
            "state": {"values": {}},
            "app_id": "A0TEST",
            "bot_id": "BBOT",
            **extra,
        }
        self.views[view_id] = stored
        return stored

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger, view = args.get("trigger_id"), args.get("view")
        if not trigger or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if trigger in self._used_triggers:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if any(b.get("type") == "input" for b in view.get("blocks", [])) and not view.get("submit"):
            return {"ok": False, "error": "invalid_arguments"}
        self._used_triggers.add(trigger)
        return {"ok": True, "view": self._store_view(view, _trigger_id=trigger)}

    def _m_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._m_views_open(args)

    def _m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = args.get("view_id") or next(
            (k for k, v in self.views.items() if v.get("external_id") == args.get("external_id")), None
        )
        if view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != self.views[view_id]["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        old = self.views[view_id]
        return {"ok": True, "view": self._store_view(args["view"], view_id, _trigger_id=old.get("_trigger_id"))}

    def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user_id") or not isinstance(args.get("view"), dict):
            return {"ok": False, "error": "invalid_arguments"}
        self.home_views[str(args["user_id"])] = args["view"]
        return {"ok": True, "view": {**args["view"], "id": f"V{next(self._ids):04d}"}}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _m_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        users = self.usergroups.get(str(args.get("usergroup")))
        return {"ok": True, "users": users} if users is not None else {"ok": False, "error": "no_such_subteam"}

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel in self.channels_not_found:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": channel, "name": channel.lower(), "is_channel": True, "is_member": True}}

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("users", "")).split(",")[0]
        return {"ok": True, "channel": {"id": "D" + user[1:]}}
