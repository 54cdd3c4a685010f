"""What Slack sends an app, built exactly as Slack builds it: slash-command forms, interaction payloads, events."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from commands.playground.standin import SlackStandIn

FORM = "application/x-www-form-urlencoded"
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


def find_element(blocks: list[dict[str, Any]], action_id: str) -> tuple[dict[str, Any], str] | None:
    """The interactive element with `action_id` in a message's blocks (actions or accessory), and its block_id."""
    for block in blocks:
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("action_id") == action_id:
                return element, str(block.get("block_id", ""))
    return None


def element_state(element: dict[str, Any], value: Any) -> dict[str, Any]:
    """One input's entry in `view.state.values`: `value` as typed or picked, None for the element's initial one."""
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
            [o for o in options if o["value"] in value] if value is not None else element.get("initial_options") or []
        )
        return {"type": kind, "selected_options": picked_many}
    field = _VALUE_FIELDS.get(kind, "value")
    if value is None:
        value = element.get("initial_value") or element.get("initial_date") or None
    return {"type": kind, field: value}


class Payloads:
    """Builds and signs Slack's deliveries for one app; trigger ids and response URLs are registered with the
    stand-in so that the modals they open and the answers posted to them belong to the right person."""

    def __init__(
        self, standin: SlackStandIn, signing_secret: str, team_id: str = "T0TEST", api_app_id: str = "A0TEST"
    ) -> None:
        self.fake, self.team_id, self.api_app_id = standin, team_id, api_app_id
        self.verifier = SignatureVerifier(signing_secret)
        self._seq = itertools.count(1)
        self.last_trigger_id = ""

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = self.verifier.generate_signature(timestamp=ts, body=body.decode())
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}

    def trigger(self, user: str) -> str:
        self.last_trigger_id = f"{13345224609 + next(self._seq)}.738474920.8088930838d88f008e0"
        self.fake.triggers[self.last_trigger_id] = user
        return self.last_trigger_id

    def respond_to(self, user: str, channel: str, kind: str) -> str:
        name = f"{kind}-{next(self._seq)}"
        self.fake.responders[name] = (user, channel)
        return self.fake.response_url(name)

    def user(self, user: str) -> dict[str, str]:
        name = self.fake.users.get(user, {}).get("name", user.lower())
        return {"id": user, "username": name, "name": name, "team_id": self.team_id}

    def _common(self, kind: str, user: str) -> dict[str, Any]:
        return {
            "type": kind,
            "user": self.user(user),
            "api_app_id": self.api_app_id,
            "token": "legacy-verification-token",
            "team": {"id": self.team_id, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    @staticmethod
    def interactive(payload: dict[str, Any]) -> bytes:
        return urlencode({"payload": json.dumps(payload)}).encode()

    def command_form(self, text: str, user: str, channel: str, command: str = "/experiment") -> bytes:
        form = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": self.fake.channels.get(channel, {}).get("name", channel.lower()),
            "user_id": user,
            "user_name": self.fake.users.get(user, {}).get("name", user.lower()),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.respond_to(user, channel, "cmd"),
            "trigger_id": self.trigger(user),
        }
        return urlencode(form).encode()

    def message_action(
        self, channel: str, msg: dict[str, Any], element: dict[str, Any], block_id: str, user: str, **chosen: Any
    ) -> dict[str, Any]:
        """A `block_actions` payload for a click on `element` of a message in `channel`; `chosen` adds `value`,
        `selected_option` … as the element's kind sends them."""
        ts = msg.get("ts")
        container: dict[str, Any] = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False}
        if msg.get("thread_ts"):
            container["thread_ts"] = msg["thread_ts"]
        action = {
            "action_id": element.get("action_id"),
            "block_id": block_id,
            "type": element.get("type"),
            "action_ts": f"{time.time():.6f}",
        }
        if element.get("type") == "button":
            action["text"] = element.get("text")
            action["value"] = element.get("value")
            if element.get("style"):
                action["style"] = element["style"]
        action.update(chosen)
        return {
            **self._common("block_actions", user),
            "container": container,
            "trigger_id": self.trigger(user),
            "channel": {"id": channel, "name": self.fake.channels.get(channel, {}).get("name", channel.lower())},
            "message": msg,
            "state": {"values": {}},
            "response_url": self.respond_to(user, channel, "act"),
            "actions": [action],
        }

    def view(self, view_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """The stored view as Slack sends it back to the app, with `state.values` as the person filled it."""
        stored = self.fake.views[view_id]
        view = {k: v for k, v in stored.items() if not k.startswith("_")}
        stack = self.fake.stacks.get(str(stored.get("_user", "")), [])
        view.update(
            {
                "type": view.get("type", "modal"),
                "state": {"values": state},
                "previous_view_id": stack[stack.index(view_id) - 1] if view_id in stack[1:] else None,
                "root_view_id": stack[0] if stack else view_id,
                "clear_on_close": view.get("clear_on_close", False),
                "notify_on_close": view.get("notify_on_close", False),
            }
        )
        return view

    def state(self, view_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """`state.values` from simple values by block_id; inputs not given keep their initial values."""
        state: dict[str, dict[str, Any]] = {}
        for block in self.fake.views[view_id].get("blocks", []):
            if block.get("type") == "input":
                element = block["element"]
                state[block["block_id"]] = {element["action_id"]: element_state(element, values.get(block["block_id"]))}
        return state

    def view_action(self, view_id: str, state: dict[str, Any], action: dict[str, Any], user: str) -> dict[str, Any]:
        return {
            **self._common("block_actions", user),
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": self.trigger(user),
            "view": self.view(view_id, state),
            "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
        }

    def suggestion(self, view_id: str, block_id: str, action_id: str, query: str, user: str) -> dict[str, Any]:
        return {
            **self._common("block_suggestion", user),
            "container": {"type": "view", "view_id": view_id},
            "action_id": action_id,
            "block_id": block_id,
            "value": query,
            "view": self.view(view_id, self.state(view_id, {})),
        }

    def submission(self, view_id: str, state: dict[str, Any], user: str) -> dict[str, Any]:
        return {
            **self._common("view_submission", user),
            "trigger_id": self.trigger(user),
            "view": self.view(view_id, state),
            "response_urls": [],
        }

    def event_body(self, event: dict[str, Any]) -> bytes:
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
        return json.dumps(envelope).encode()
