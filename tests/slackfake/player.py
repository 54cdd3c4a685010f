"""Plays Slack towards the app under test: signed slash commands, button clicks, modal actions and events."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from tests.slackfake.web_api import FakeSlack

_VALUE_FIELDS = {
    "plain_text_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "number_input": "value",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
    "datepicker": "selected_date",
}


class SlackPlayer:
    """Sends requests exactly as Slack would: form-encoded or JSON bodies, signed with the signing secret."""

    def __init__(
        self, events_url: str, signing_secret: str, fake: FakeSlack, team_id: str = "T0TEST", api_app_id: str = "A0TEST"
    ) -> None:
        self.events_url, self.fake, self.team_id, self.api_app_id = events_url, fake, team_id, api_app_id
        self.verifier = SignatureVerifier(signing_secret)
        self.http = httpx.AsyncClient(timeout=30)
        self._seq = itertools.count(1)
        self.last_trigger_id = ""

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> SlackPlayer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- signing and raw posts -----------------------------------------------------------------
    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = self.verifier.generate_signature(timestamp=ts, body=body.decode())
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}

    async def post(
        self,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        signed = self.sign(body, timestamp)
        if signature is not None:
            signed["X-Slack-Signature"] = signature
        return await self.http.post(
            self.events_url, content=body, headers={"Content-Type": content_type, **signed, **(headers or {})}
        )

    def _trigger(self) -> str:
        self.last_trigger_id = f"{13345224609 + next(self._seq)}.738474920.8088930838d88f008e0"
        return self.last_trigger_id

    def _user(self, user: str) -> dict[str, str]:
        name = self.fake.users.get(user, {}).get("name", user.lower())
        return {"id": user, "username": name, "name": name, "team_id": self.team_id}

    async def _interactive(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    # -- slash commands ------------------------------------------------------------------------
    async def command(
        self, text: str, *, user: str = "U1", channel: str = "C1", command: str = "/experiment"
    ) -> httpx.Response:
        form = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": channel.lower(),
            "user_id": user,
            "user_name": self.fake.users.get(user, {}).get("name", user.lower()),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.fake.response_url(f"cmd-{next(self._seq)}"),
            "trigger_id": self._trigger(),
        }
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    # -- message buttons -----------------------------------------------------------------------
    @staticmethod
    def _find(blocks: list[dict[str, Any]], action_id: str) -> tuple[dict[str, Any], str] | None:
        for block in blocks:
            elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
            if isinstance(block.get("accessory"), dict):
                elements.append(block["accessory"])
            for element in elements:
                if element.get("action_id") == action_id:
                    return element, str(block.get("block_id", ""))
        return None

    def has_button(self, channel: str, ts: str | None, action_id: str) -> bool:
        msg = self.fake.message(channel, ts)
        return bool(msg and self._find(msg.get("blocks") or [], action_id))

    async def click(
        self,
        channel: str,
        ts: str | None,
        action_id: str,
        *,
        user: str = "U1",
        value: str | None = None,
        seen: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Click a button on a message as it is now, or as a user's client still shows it (`seen`)."""
        msg = seen or self.fake.message(channel, ts)
        assert msg is not None, f"no message {channel}/{ts}"
        found = self._find(msg.get("blocks") or [], action_id)
        assert found is not None, f"message {ts} has no element {action_id}"
        element, block_id = found
        container: dict[str, Any] = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False}
        if msg.get("thread_ts"):
            container["thread_ts"] = msg["thread_ts"]
        action = {
            "action_id": action_id,
            "block_id": block_id,
            "text": element.get("text"),
            "value": value if value is not None else element.get("value"),
            "type": element.get("type"),
            "action_ts": f"{time.time():.6f}",
        }
        if element.get("style"):
            action["style"] = element["style"]
        return await self._interactive(
            {
                "type": "block_actions",
                "user": self._user(user),
                "api_app_id": self.api_app_id,
                "token": "legacy-verification-token",
                "container": container,
                "trigger_id": self._trigger(),
                "team": {"id": self.team_id, "domain": "fake"},
                "enterprise": None,
                "is_enterprise_install": False,
                "channel": {"id": channel, "name": channel.lower()},
                "message": msg,
                "state": {"values": {}},
                "response_url": self.fake.response_url(f"act-{next(self._seq)}"),
                "actions": [action],
            }
        )

    # -- modals --------------------------------------------------------------------------------
    @staticmethod
    def _element_state(element: dict[str, Any], value: Any) -> dict[str, Any]:
        kind = element.get("type", "")
        if kind in ("static_select", "radio_buttons"):
            options = element.get("options") or []
            if value is None:
                picked = element.get("initial_option")
            else:
                picked = next((o for o in options if o["value"] == value), None)
                assert picked is not None, f"{value!r} is not an option of {element.get('action_id')}"
            return {"type": kind, "selected_option": picked}
        if kind == "external_select":
            if value is None:
                return {"type": kind, "selected_option": element.get("initial_option")}
            return {"type": kind, "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value}}
        if kind in ("multi_static_select", "checkboxes"):
            options = element.get("options") or []
            picked_many = (
                [o for o in options if o["value"] in value]
                if value is not None
                else element.get("initial_options") or []
            )
            return {"type": kind, "selected_options": picked_many}
        field = _VALUE_FIELDS.get(kind, "value")
        if value is None:
            value = element.get("initial_value") or None
        return {"type": kind, field: value}

    def _view_payload(self, view_id: str, values: dict[str, Any]) -> dict[str, Any]:
        stored = self.fake.views[view_id]
        state: dict[str, dict[str, Any]] = {}
        for block in stored.get("blocks", []):
            if block.get("type") != "input":
                continue
            element = block["element"]
            state[block["block_id"]] = {
                element["action_id"]: self._element_state(element, values.get(block["block_id"]))
            }
        view = {k: v for k, v in stored.items() if not k.startswith("_")}
        view.update(
            {
                "type": "modal",
                "state": {"values": state},
                "previous_view_id": None,
                "root_view_id": view_id,
                "clear_on_close": False,
                "notify_on_close": False,
            }
        )
        return view

    async def suggest(self, view_id: str, block_id: str, query: str = "", *, user: str = "U1") -> list[dict[str, Any]]:
        """Open an external select as Slack does (a `block_suggestion`) and return the options the app answered."""
        view = self._view_payload(view_id, {})
        block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
        resp = await self._interactive(
            {
                "type": "block_suggestion",
                "user": self._user(user),
                "container": {"type": "view", "view_id": view_id},
                "api_app_id": self.api_app_id,
                "token": "legacy-verification-token",
                "action_id": block["element"]["action_id"],
                "block_id": block_id,
                "value": query,
                "team": {"id": self.team_id, "domain": "fake"},
                "view": view,
            }
        )
        assert resp.status_code == 200, resp.text
        options: list[dict[str, Any]] = resp.json()["options"]
        return options

    async def select_in_view(self, view_id: str, action_id: str, value: str, *, user: str = "U1") -> httpx.Response:
        view = self._view_payload(view_id, {})
        found = next(
            (
                (b, b["element"])
                for b in view["blocks"]
                if isinstance(b.get("element"), dict) and b["element"].get("action_id") == action_id
            ),
            None,
        )
        assert found is not None, f"view {view_id} has no element {action_id}"
        block, element = found
        offered = element.get("options", [])
        if element["type"] == "external_select":
            offered = await self.suggest(view_id, block["block_id"], "", user=user)
        option = next((o for o in offered if o["value"] == value), None)
        assert option is not None, f"{value!r} is not an option of {action_id}"
        view["state"]["values"][block["block_id"]] = {action_id: {"type": element["type"], "selected_option": option}}
        return await self._interactive(
            {
                "type": "block_actions",
                "user": self._user(user),
                "api_app_id": self.api_app_id,
                "token": "legacy-verification-token",
                "container": {"type": "view", "view_id": view_id},
                "trigger_id": self._trigger(),
                "team": {"id": self.team_id, "domain": "fake"},
                "enterprise": None,
                "is_enterprise_install": False,
                "view": view,
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": block["block_id"],
                        "type": element["type"],
                        "selected_option": option,
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
            }
        )

    async def submit(self, view_id: str, values: dict[str, Any], *, user: str = "U1") -> httpx.Response:
        return await self._interactive(
            {
                "type": "view_submission",
                "team": {"id": self.team_id, "domain": "fake"},
                "user": self._user(user),
                "api_app_id": self.api_app_id,
                "token": "legacy-verification-token",
                "trigger_id": self._trigger(),
                "view": self._view_payload(view_id, values),
                "response_urls": [],
                "enterprise": None,
                "is_enterprise_install": False,
            }
        )

    # -- events --------------------------------------------------------------------------------
    async def event(self, event: dict[str, Any]) -> httpx.Response:
        envelope = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._seq):08d}",
            "event_time": int(time.time()),
            "is_ext_shared_channel": False,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.fake.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
        }
        return await self.post(json.dumps(envelope).encode(), "application/json")
