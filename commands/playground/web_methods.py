"""The Web API methods the stand-in answers (documented bodies and errors) and the directory they answer from."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import parse_qsl

JSON_FIELDS = ("blocks", "view", "attachments", "metadata")
MUTATING = frozenset(
    {
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "views.open",
        "views.push",
        "views.update",
        "views.publish",
    }
)


def parse_args(content_type: str, raw: bytes, path: str) -> dict[str, Any]:
    """A Web API call's arguments from its query string and its form or JSON body."""
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


class WebApiMethods:
    """`_m_<method>` answers one Web API method; the server calls it under the state lock."""

    team_id: str
    bot_user_id: str
    socket_url: str | None
    users: dict[str, dict[str, Any]]
    usergroups: dict[str, list[str]]
    group_handles: dict[str, str]
    channels: dict[str, dict[str, Any]]
    channels_not_found: set[str]
    views: dict[str, dict[str, Any]]
    home_views: dict[str, dict[str, Any]]
    stacks: dict[str, list[str]]
    triggers: dict[str, str]
    ephemerals: list[dict[str, Any]]
    _messages: dict[tuple[str, str], dict[str, Any]]
    _used_triggers: set[str]
    _ts: itertools.count[int]
    _ids: itertools.count[int]

    # -- the workspace's directory, as a test or the playground sets it up -----------------------
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

    def add_usergroup(self, group_id: str, users: list[str], handle: str | None = None) -> None:
        self.usergroups[group_id] = list(users)
        self.group_handles[group_id] = handle or group_id.lower()

    def add_channel(self, channel_id: str, name: str) -> None:
        self.channels[channel_id] = {"id": channel_id, "name": name}

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
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
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
        ts = self._next_ts()
        self.ephemerals.append(
            {**{k: args.get(k) for k in ("channel", "user", "text", "blocks", "thread_ts")}, "ts": ts}
        )
        return {"ok": True, "message_ts": ts}

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

    def _m_views_open(self, args: dict[str, Any], push: bool = False) -> dict[str, Any]:
        trigger, view = args.get("trigger_id"), args.get("view")
        if not trigger or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if trigger in self._used_triggers:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if any(b.get("type") == "input" for b in view.get("blocks", [])) and not view.get("submit"):
            return {"ok": False, "error": "invalid_arguments"}
        user = self.triggers.get(str(trigger), "")
        if push and len(self.stacks.get(user, [])) >= 3:
            return {"ok": False, "error": "push_limit_reached"}
        self._used_triggers.add(trigger)
        stored = self._store_view(view, _trigger_id=trigger, _user=user)
        if user:
            stack = self.stacks.get(user, []) if push else []
            self.stacks[user] = [*stack, stored["id"]]
        return {"ok": True, "view": stored}

    def _m_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._m_views_open(args, push=True)

    def _m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = args.get("view_id") or next(
            (k for k, v in self.views.items() if v.get("external_id") == args.get("external_id")), None
        )
        if view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != self.views[view_id]["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        old = self.views[view_id]
        keep = {k: v for k, v in old.items() if k in ("_trigger_id", "_user")}
        return {"ok": True, "view": self._store_view(args["view"], view_id, **keep)}

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
        name = self.channels.get(channel, {}).get("name", channel.lower())
        return {"ok": True, "channel": {"id": channel, "name": name, "is_channel": True, "is_member": True}}

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("users", "")).split(",")[0]
        return {"ok": True, "channel": {"id": "D" + user[1:]}}
