"""The Web API methods of the fake Slack (chat.*, views.*, users/groups/conversations) acting on its state."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from tests.fakes.slack_state import Handler, Json, SlackState, dm_channel, err, iter_elements

_TRIGGER_RE = re.compile(r"^\d+\.\d+\.[0-9A-Za-z]+$")
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100


def _blocks_error(blocks: Any, limit: int) -> str | None:
    if not isinstance(blocks, list) or len(blocks) > limit:
        return "invalid_blocks"
    if any(not isinstance(b, dict) or "type" not in b for b in blocks):
        return "invalid_blocks"
    ids = [b["block_id"] for b in blocks if b.get("block_id")]
    return "invalid_blocks" if len(ids) != len(set(ids)) else None


class SlackMethods(SlackState):
    """Slack's method semantics; `handlers` maps a method name to a function of the request arguments."""

    def __init__(self, team_id: str, bot_user_id: str) -> None:
        super().__init__(team_id=team_id, bot_user_id=bot_user_id)
        self.handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
        }

    # -- chat.* --------------------------------------------------------------------------------------------------
    def _auth_test(self, a: Json) -> Json:
        return {
            "ok": True, "url": "https://fake-team.slack.com/", "team": "Fake Team", "user": "expbot",
            "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id, "is_enterprise_install": False,
        }  # fmt: skip

    def _post_message(self, a: Json) -> Json:
        channel = self._resolve_channel(a.get("channel"))
        if channel is None:
            return err("channel_not_found")
        text, blocks = a.get("text"), a.get("blocks")
        if not text and not blocks and not a.get("attachments"):
            return err("no_text")
        if blocks is not None and (problem := _blocks_error(blocks, MAX_MESSAGE_BLOCKS)):
            return err(problem)
        ts = self.next_ts()
        thread_ts = a.get("thread_ts")
        msg: Json = {
            "type": "message", "channel": channel, "ts": ts, "text": text or "", "blocks": blocks or [],
            "thread_ts": str(thread_ts) if thread_ts else None, "user": self.bot_user_id, "bot_id": self.bot_id,
            "app_id": self.app_id, "team": self.team_id,
        }  # fmt: skip
        for key in ("attachments", "metadata", "reply_broadcast"):
            if a.get(key) is not None:
                msg[key] = a[key]
        self._messages[(channel, ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts, "message": self._public(msg)}

    def _update(self, a: Json) -> Json:
        channel, ts = a.get("channel"), a.get("ts")
        if not channel:
            return err("channel_not_found")
        msg = self._messages.get((channel, str(ts)))
        if msg is None:
            return err("message_not_found")
        text, blocks = a.get("text"), a.get("blocks")
        if text is None and blocks is None and a.get("attachments") is None:
            return err("no_text")
        if blocks is not None:
            if problem := _blocks_error(blocks, MAX_MESSAGE_BLOCKS):
                return err(problem)
            msg["blocks"] = blocks
        if text is not None:
            msg["text"] = text
        if a.get("attachments") is not None:
            msg["attachments"] = a["attachments"]
        return {"ok": True, "channel": channel, "ts": msg["ts"], "text": msg["text"], "message": self._public(msg)}

    def _post_ephemeral(self, a: Json) -> Json:
        channel = self._resolve_channel(a.get("channel"))
        if channel is None:
            return err("channel_not_found")
        if not a.get("user"):
            return err("user_not_found")
        if not a.get("text") and not a.get("blocks") and not a.get("attachments"):
            return err("no_text")
        if a.get("blocks") is not None and (problem := _blocks_error(a["blocks"], MAX_MESSAGE_BLOCKS)):
            return err(problem)
        ts = self.next_ts()
        self.ephemerals.append(
            {"channel": channel, "user": a["user"], "text": a.get("text") or "", "blocks": a.get("blocks") or [],
             "thread_ts": a.get("thread_ts"), "ts": ts}
        )  # fmt: skip
        return {"ok": True, "message_ts": ts}

    # -- views.* -------------------------------------------------------------------------------------------------
    def _view_error(self, view: Any, kind: str) -> str | None:
        if not isinstance(view, dict) or view.get("type") != kind:
            return "invalid_arguments"
        blocks = view.get("blocks", [])
        if _blocks_error(blocks, MAX_VIEW_BLOCKS):
            return "invalid_arguments"
        if kind == "modal" and not view.get("title"):
            return "invalid_arguments"
        has_inputs = any(b.get("type") == "input" for b in blocks)
        return "invalid_arguments" if kind == "modal" and has_inputs and not view.get("submit") else None

    def _trigger_error(self, trigger: Any) -> str | None:
        if not trigger:
            return "invalid_arguments"
        if trigger in self._used_triggers:
            return "exchanged_trigger_id"
        issued = self._issued_triggers.get(trigger)
        if issued is None and not _TRIGGER_RE.match(str(trigger)):
            return "invalid_trigger_id"
        if issued is not None and time.monotonic() - issued > self.trigger_ttl:
            return "expired_trigger_id"
        self._used_triggers.add(trigger)
        return None

    def store_view(self, view: Json, view_id: str | None = None) -> Json:
        """Store (or replace) a view the way Slack returns it; input state survives for unchanged block/action ids."""
        if view_id is None:
            self._view_count += 1
            view_id = f"V{self._view_count:04d}"
        old = self.views.get(view_id) or self.home_views.get(view_id) or {}
        old_values: Json = old.get("state", {}).get("values", {})
        kept: Json = {}
        for block_id, _, element in iter_elements(view.get("blocks", [])):
            action_id = element.get("action_id")
            if action_id in old_values.get(block_id, {}):
                kept.setdefault(block_id, {})[action_id] = old_values[block_id][action_id]
        defaults: Json = {"private_metadata": "", "callback_id": "", "external_id": "", "close": None, "submit": None,
                          "clear_on_close": False, "notify_on_close": False}  # fmt: skip
        return {
            **defaults, **copy.deepcopy(view), "id": view_id, "team_id": self.team_id, "state": {"values": kept},
            "hash": self._new_hash(), "root_view_id": old.get("root_view_id", view_id), "previous_view_id": None,
            "app_id": self.app_id, "app_installed_team_id": self.team_id, "bot_id": self.bot_id,
        }  # fmt: skip

    def _views_open(self, a: Json) -> Json:
        trigger = a.get("trigger_id") or a.get("interactivity_pointer")
        problem = self._view_error(a.get("view"), "modal") or self._trigger_error(trigger)
        if problem:
            return err(problem)
        stored = self.store_view(a["view"])
        self.views[stored["id"]] = stored
        self.view_triggers[stored["id"]] = str(trigger)
        return {"ok": True, "view": stored}

    def _views_update(self, a: Json) -> Json:
        view_id = a.get("view_id")
        if not view_id and a.get("external_id"):
            view_id = next((v["id"] for v in self.views.values() if v.get("external_id") == a["external_id"]), None)
        current = self.views.get(view_id or "")
        if current is None:
            return err("not_found")
        if problem := self._view_error(a.get("view"), current["type"]):
            return err(problem)
        if a.get("hash") and a["hash"] != current["hash"]:
            return err("hash_conflict")
        stored = self.store_view(a["view"], current["id"])
        self.views[stored["id"]] = stored
        return {"ok": True, "view": stored}

    def _views_publish(self, a: Json) -> Json:
        user = a.get("user_id")
        if not user:
            return err("invalid_arguments")
        if problem := self._view_error(a.get("view"), "home"):
            return err(problem)
        old = self.home_views.get(user)
        if a.get("hash") and old and a["hash"] != old["hash"]:
            return err("hash_conflict")
        stored = self.store_view(a["view"], old["id"] if old else None)
        self.home_views[user] = stored
        return {"ok": True, "view": stored}

    # -- users / groups / conversations --------------------------------------------------------------------------
    def _users_info(self, a: Json) -> Json:
        user = self.users.get(str(a.get("user")))
        return {"ok": True, "user": user} if user else err("user_not_found")

    def _usergroup_users(self, a: Json) -> Json:
        members = self.usergroups.get(str(a.get("usergroup")))
        return {"ok": True, "users": members} if members is not None else err("no_such_subteam")

    def _conversations_info(self, a: Json) -> Json:
        channel = a.get("channel")
        if not isinstance(channel, str) or not channel or channel in self.channels_not_found:
            return err("channel_not_found")
        return {"ok": True, "channel": self.channel_info(channel)}

    def _conversations_open(self, a: Json) -> Json:
        if a.get("channel"):
            return {"ok": True, "channel": {"id": a["channel"]}}
        users = [u for u in str(a.get("users") or "").split(",") if u]
        if not users:
            return err("users_list_not_supplied")
        channel = dm_channel(users[0]) if len(users) == 1 else "G" + "".join(u[1:] for u in users)
        return {"ok": True, "channel": {"id": channel}}
