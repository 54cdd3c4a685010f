"""The local Slack stand-in: a real HTTP server on loopback that keeps Slack's state and answers its Web API."""

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

from commands.playground.web_methods import MUTATING, WebApiMethods, parse_args

Predicate = Callable[[dict[str, Any]], bool]
Answer = tuple[int, dict[str, str], Any]
Pages = Callable[[str, str, dict[str, str], bytes], Answer]


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
    hang_up: bool = False
    lose_answer: bool = False


HANG_UP = -1
"""The status `_route` gives for a call to answer with nothing: the connection is closed (a dropped connection)."""


class SlackStandIn(WebApiMethods):
    """Keeps channels, messages, threads, ephemerals, DMs, views (hashes, trigger ids, stacks), users and user groups;
    answers the Web API methods expbot uses, records every call and can inject faults (`fail_next`, `hold`)."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        team_id: str = "T0TEST",
        bot_user_id: str = "UBOT",
        app_token: str = "xapp-test",
        port: int = 0,
    ) -> None:
        self.bot_token, self.app_token, self.team_id, self.bot_user_id = bot_token, app_token, team_id, bot_user_id
        self.port = port
        self.socket_url: str | None = None
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.group_handles: dict[str, str] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.channels_not_found: set[str] = set()
        self.scopes: list[str] | None = None  # when set, auth.test answers them in its X-OAuth-Scopes header
        self.token_error: str | None = None  # when set, every bot-token call answers this error (see revoke_token)
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.stacks: dict[str, list[str]] = {}  # user -> the ids of the modals open for them, bottom first
        self.triggers: dict[str, str] = {}  # trigger_id -> the user whose click or command made it
        self.responders: dict[str, tuple[str, str]] = {}  # response_url name -> (user, channel)
        self.ephemerals: list[dict[str, Any]] = []
        self.pages: Pages | None = None  # the playground page and its API, when one is attached
        self.version = 0  # grows with every change a person could see
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._calls: list[Call] = []
        self._faults: dict[str, Fault] = {}
        self._holds: dict[str, threading.Event] = {}
        self._used_triggers: set[str] = set()
        self._lock = threading.RLock()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SlackStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answer in one go: no 40 ms delayed-ACK stall between header and body

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = standin._route(self.command, self.path, dict(self.headers.items()), raw)
                if status == HANG_UP:
                    self.close_connection = True
                    return
                if isinstance(body, bytes):
                    payload, kind = body, headers.pop("content-type", "application/octet-stream")
                elif isinstance(body, dict | list):
                    payload, kind = json.dumps(body).encode(), "application/json"
                else:
                    payload, kind = str(body).encode(), "text/plain"
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self.do_POST()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> SlackStandIn:
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
        hang_up: bool = False,
        lose_answer: bool = False,
    ) -> None:
        """The next `times` calls of `method` fail: `status` with `{"ok": false, "error": error}`; with `hang_up`,
        no answer at all (the connection is closed once the call is read); with `lose_answer`, the call takes
        effect and then the connection is closed (Slack did it, its answer never arrives)."""
        with self._lock:
            self._faults[method] = Fault(status, error, retry_after, times, hang_up, lose_answer)

    def hold(self, method: str) -> threading.Event:
        """Keep every call of `method` waiting (as a slow Slack would) until the returned event is set."""
        gate = threading.Event()
        with self._lock:
            self._holds[method] = gate
        return gate

    def changed(self) -> None:
        with self._lock:
            self.version += 1

    # -- what was recorded ---------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def _missing(self, method: str, count: int) -> AssertionError:
        seen = [f"{c.method} {json.dumps(c.args)[:200]}" for c in self.calls()]
        return AssertionError(f"expected {count} matching {method} call(s); seen:\n" + "\n".join(seen[-25:]))

    async def wait_for_async(
        self, method: str, predicate: Predicate = lambda a: True, count: int = 1, timeout: float = 5.0
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := [c for c in self.calls(method) if predicate(c.args)]) >= count:
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
            found = json.loads(json.dumps(found))
        return sorted(found, key=lambda m: float(m["ts"]))

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages(channel) if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]

    def view(self, view_id: str) -> dict[str, Any]:
        return self.views[view_id]

    # -- requests ------------------------------------------------------------------------------
    def _route(self, verb: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if path.startswith(("/api/", "/response/")):
            return self._handle(path, headers, raw)
        if self.pages is None:
            return 404, {}, {"ok": False, "error": "not_found"}
        return self.pages(verb, path, {k.lower(): v for k, v in headers.items()}, raw)

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        lower = {k.lower(): v for k, v in headers.items()}
        if path.startswith("/response/"):
            return self._respond(path, lower, raw)
        method = path.split("?")[0].removeprefix("/api/")
        args = parse_args(lower.get("content-type", ""), raw, path)
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
                if fault.hang_up:
                    return HANG_UP, {}, {}
                if not fault.lose_answer:
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
            if method in MUTATING and body.get("ok"):
                self.version += 1
        if fault and fault.lose_answer:
            return HANG_UP, {}, {}
        scopes = {"X-OAuth-Scopes": ",".join(self.scopes)} if method == "auth.test" and self.scopes is not None else {}
        return 200, scopes, body

    def _respond(self, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        """A post to a `response_url`: recorded; an ephemeral answer is shown to the user it came from."""
        args = json.loads(raw or b"{}")
        with self._lock:
            self._calls.append(Call("response_url", {**args, "_path": path}, headers))
            user, channel = self.responders.get(path.removeprefix("/response/"), ("", ""))
            if user and args.get("response_type") != "in_channel" and (args.get("text") or args.get("blocks")):
                self.ephemerals.append(
                    {
                        "channel": channel,
                        "user": user,
                        "text": args.get("text", ""),
                        "blocks": args.get("blocks"),
                        "thread_ts": None,
                        "ts": self._next_ts(),
                    }
                )
                self.version += 1
        return 200, {}, "ok"
