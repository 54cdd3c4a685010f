"""The page's API: what the acting person does, delivered to the app signed as Slack delivers it, and its answers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from commands.playground.cast import Cast
from commands.playground.payloads import FORM, Payloads, find_element
from commands.playground.screen import dm_channel, screen
from commands.playground.standin import Answer, SlackStandIn

STATIC = Path(__file__).parent / "static"
FILES = {"/": "index.html", "/static/app.js": "app.js", "/static/app.css": "app.css"}
KINDS = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Playground:
    """Serves the page from the stand-in and turns what a person does on it into signed deliveries to the app."""

    def __init__(self, standin: SlackStandIn, cast: Cast, signing_secret: str) -> None:
        self.standin, self.cast = standin, cast
        self.payloads = Payloads(standin, signing_secret, team_id=standin.team_id)
        self.events_url = ""
        self.http = httpx.Client(timeout=30)
        self.handlers: dict[str, Handler] = {
            "command": self.command,
            "action": self.action,
            "suggest": self.suggest,
            "submit": self.submit,
            "close": self.close,
            "home": self.home,
        }
        standin.pages = self.route

    def route(self, verb: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        url = urlsplit(path)
        host = headers.get("host", "").rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):  # a page served elsewhere cannot reach it by DNS rebinding
            return 403, {}, {"ok": False, "error": "loopback_only"}
        if verb == "GET" and url.path in FILES:
            name = FILES[url.path]
            return (
                200,
                {"content-type": KINDS[Path(name).suffix], "cache-control": "no-store"},
                (STATIC / name).read_bytes(),
            )
        if verb == "GET" and url.path == "/ui/state":
            query = parse_qs(url.query)
            user = query.get("user", [self.cast.people[0].id])[0]
            return 200, {}, screen(self.standin, self.cast, user, int(query.get("since", ["-1"])[0]))
        handler = self.handlers.get(url.path.removeprefix("/ui/"))
        if verb != "POST" or handler is None:
            return 404, {}, {"ok": False, "error": "not_found"}
        if "application/json" not in headers.get("content-type", ""):  # never a cross-site form post
            return 415, {}, {"ok": False, "error": "json_only"}
        try:
            return 200, {}, handler(json.loads(raw))
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            return 400, {}, {"ok": False, "error": f"bad request: {exc}"}

    # -- deliveries ----------------------------------------------------------------------------
    def _send(self, body: bytes, content_type: str) -> httpx.Response | str:
        """POST to the app, signed; the error Slack would show when the app does not answer in time."""
        try:
            resp = self.http.post(
                self.events_url, content=body, headers={"Content-Type": content_type, **self.payloads.sign(body)}
            )
        except httpx.TimeoutException:
            return "operation_timeout"
        except httpx.HTTPError:
            return "dispatch_failed"
        return resp if resp.status_code == 200 else f"http_{resp.status_code}"

    def _note(self, user: str, channel: str, text: str, thread_ts: str | None = None) -> None:
        """An ephemeral from Slack itself (as Slackbot shows them), for `user` only."""
        with self.standin._lock:
            ts = self.standin._next_ts()
            self.standin.ephemerals.append(
                {"channel": channel, "user": user, "text": text, "blocks": None, "thread_ts": thread_ts, "ts": ts}
            )
            self.standin.version += 1

    def command(self, body: dict[str, Any]) -> dict[str, Any]:
        user, channel, typed = str(body["user"]), str(body["channel"]), str(body["text"]).strip()
        name, _, text = typed.partition(" ")
        if name != "/experiment":
            self._note(user, channel, f"`{name}` is not a valid command. Try `/experiment help`.")
            return {"ok": False, "error": "unknown_command"}
        resp = self._send(self.payloads.command_form(text.strip(), user, channel, name), FORM)
        if isinstance(resp, str):
            self._note(user, channel, f'{name} failed with the error "{resp}"')
            return {"ok": False, "error": resp}
        answer = resp.json() if resp.content else {}
        if answer.get("text") or answer.get("blocks"):
            if answer.get("response_type") == "in_channel":
                with self.standin._lock:
                    self.standin._m_chat_postMessage({"channel": channel, **answer})
                    self.standin.version += 1
            else:
                self._note(user, channel, str(answer.get("text", "")))
        return {"ok": True}

    def action(self, body: dict[str, Any]) -> dict[str, Any]:
        user, container, action = str(body["user"]), body["container"], dict(body["action"])
        if container["type"] == "view":
            payload = self.payloads.view_action(str(container["view_id"]), body.get("state") or {}, action, user)
        else:
            channel = str(container["channel"])
            msg = self.standin.message(channel, str(container["ts"]))
            found = find_element((msg or {}).get("blocks") or [], str(action["action_id"]))
            if msg is None or found is None:
                return {"ok": False, "error": "message_changed"}
            chosen = {k: v for k, v in action.items() if k in ("selected_option", "selected_date", "value")}
            payload = self.payloads.message_action(channel, msg, found[0], found[1], user, **chosen)
        resp = self._send(self.payloads.interactive(payload), FORM)
        return {"ok": False, "error": resp} if isinstance(resp, str) else {"ok": True}

    def suggest(self, body: dict[str, Any]) -> dict[str, Any]:
        view_id, user = str(body["view_id"]), str(body["user"])
        payload = self.payloads.suggestion(view_id, str(body["block_id"]), str(body["action_id"]), body["value"], user)
        payload["view"]["state"] = {"values": body.get("state") or {}}
        resp = self._send(self.payloads.interactive(payload), FORM)
        if isinstance(resp, str):
            return {"ok": False, "error": resp, "options": []}
        answer = resp.json() if resp.content else {}
        groups = answer.get("option_groups") or []
        return {"ok": True, "options": answer.get("options") or [o for g in groups for o in g.get("options", [])]}

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        view_id, user = str(body["view_id"]), str(body["user"])
        resp = self._send(self.payloads.interactive(self.payloads.submission(view_id, body["state"], user)), FORM)
        if isinstance(resp, str):
            return {"ok": False, "error": resp}
        answer = resp.json() if resp.content else {}
        with self.standin._lock:
            stack, action = self.standin.stacks.get(user, []), answer.get("response_action")
            if action == "errors":
                self.standin.views[view_id]["_errors"] = answer.get("errors") or {}
            elif action == "update":
                old = self.standin.views[view_id]
                self.standin._store_view(answer["view"], view_id, _user=user, _trigger_id=old.get("_trigger_id"))
            elif action == "push":
                self.standin.stacks[user] = [*stack, self.standin._store_view(answer["view"], _user=user)["id"]]
            elif action == "clear":
                self.standin.stacks[user] = []
            else:
                self.standin.stacks[user] = stack[: stack.index(view_id)] if view_id in stack else stack
            self.standin.version += 1
        return {"ok": True, "response_action": action}

    def close(self, body: dict[str, Any]) -> dict[str, Any]:
        view_id, user = str(body["view_id"]), str(body["user"])
        view = self.standin.views.get(view_id, {})
        if view.get("notify_on_close"):
            payload = {**self.payloads.submission(view_id, body.get("state") or {}, user), "type": "view_closed"}
            self._send(self.payloads.interactive({**payload, "is_cleared": False}), FORM)
        with self.standin._lock:
            stack = self.standin.stacks.get(user, [])
            self.standin.stacks[user] = stack[: stack.index(view_id)] if view_id in stack else stack
            self.standin.version += 1
        return {"ok": True}

    def home(self, body: dict[str, Any]) -> dict[str, Any]:
        user = str(body["user"])
        event = {"type": "app_home_opened", "user": user, "channel": dm_channel(user), "tab": "home"}
        resp = self._send(self.payloads.event_body({**event, "event_ts": f"{time.time():.6f}"}), "application/json")
        return {"ok": False, "error": resp} if isinstance(resp, str) else {"ok": True}
