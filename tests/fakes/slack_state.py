"""Workspace state of the fake Slack: messages, views, users, groups, channels, triggers, and read accessors."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Json = dict[str, Any]
Handler = Callable[[Json], Json]


def err(error: str) -> Json:
    """A Slack error body."""
    return {"ok": False, "error": error}


def dm_channel(user_id: str) -> str:
    """The app DM channel id the fake uses for a user: U123 -> D123."""
    return "D" + user_id[1:]


def iter_elements(blocks: list[Json]) -> Iterator[tuple[str, Json, Json]]:
    """(block_id, block, element) for every interactive element: actions elements, section accessory, input element.

    Blocks without a block_id get a stable stand-in (Slack would invent a random one).
    """
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "actions":
            elements = block.get("elements", [])
        elif kind == "input":
            elements = [block["element"]] if "element" in block else []
        elif kind == "section" and "accessory" in block:
            elements = [block["accessory"]]
        else:
            elements = []
        block_id = block.get("block_id") or f"b{index}"
        for element in elements:
            if isinstance(element, dict):
                yield block_id, block, element


def _tz_offset(tz: str) -> int:
    try:
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds()) if offset else 0


class SlackState:
    """Everything the fake workspace knows; callers hold `self.lock` around access from several threads."""

    def __init__(self, team_id: str, bot_user_id: str, bot_id: str = "BBOT", app_id: str = "A0TEST") -> None:
        self.lock = threading.RLock()
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.users: dict[str, Json] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.channels: dict[str, Json] = {}
        self.channels_not_found: set[str] = set()
        self.ephemerals: list[Json] = []
        self.views: dict[str, Json] = {}
        self.home_views: dict[str, Json] = {}
        self.view_triggers: dict[str, str] = {}
        self.closed_views: set[str] = set()
        self.trigger_ttl = 3.0
        self._messages: dict[tuple[str, str], Json] = {}
        self._issued_triggers: dict[str, float] = {}
        self._used_triggers: set[str] = set()
        self._ts_count = 0
        self._view_count = 0
        self._hash_count = 0

    # -- configuration -------------------------------------------------------------------------------------------
    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        real_name: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "Europe/Berlin",
        email: str | None = None,
        **extra: Any,
    ) -> Json:
        real = real_name or name.title()
        user: Json = {
            "id": user_id, "team_id": self.team_id, "name": name, "real_name": real, "deleted": deleted,
            "is_bot": is_bot, "is_app_user": False, "is_admin": False, "is_owner": False, "is_restricted": False,
            "is_ultra_restricted": False, "tz": tz, "tz_label": tz, "tz_offset": _tz_offset(tz),
            "profile": {"real_name": real, "display_name": name, "email": email or f"{name}@example.com"},
            **extra,
        }  # fmt: skip
        with self.lock:
            self.users[user_id] = user
        return user

    def add_usergroup(self, usergroup_id: str, users: list[str]) -> None:
        with self.lock:
            self.usergroups[usergroup_id] = list(users)

    def add_channel(self, channel_id: str, name: str, **extra: Any) -> None:
        with self.lock:
            self.channels[channel_id] = {**self.channel_info(channel_id), "name": name, **extra}

    def issue_trigger(self, trigger_id: str) -> None:
        """Remember when a trigger was handed out; views.open after `trigger_ttl` seconds gets expired_trigger_id."""
        with self.lock:
            self._issued_triggers[trigger_id] = time.monotonic()

    def set_view_state(self, view_id: str, block_id: str, action_id: str, value: Json) -> None:
        """What a user typed or picked in an open view (Slack keeps it in `view.state`)."""
        with self.lock:
            self.views[view_id]["state"]["values"].setdefault(block_id, {})[action_id] = value

    # -- accessors -----------------------------------------------------------------------------------------------
    def channel_info(self, channel_id: str) -> Json:
        with self.lock:
            if channel_id in self.channels:
                return copy.deepcopy(self.channels[channel_id])
        kind = channel_id[:1]
        return {
            "id": channel_id, "name": channel_id.lower(), "is_channel": kind == "C", "is_group": kind == "G",
            "is_im": kind == "D", "is_private": kind in "GD", "is_member": True, "is_archived": False,
        }  # fmt: skip

    def channel_name(self, channel_id: str) -> str:
        """The `channel_name` Slack puts into payloads."""
        if channel_id.startswith("D"):
            return "directmessage"
        return "privategroup" if channel_id.startswith("G") else str(self.channel_info(channel_id)["name"])

    def message(self, channel: str, ts: str) -> Json | None:
        with self.lock:
            found = self._messages.get((channel, ts))
            return copy.deepcopy(found) if found else None

    def messages(self, channel: str | None = None) -> list[Json]:
        with self.lock:
            found = [m for (c, _), m in self._messages.items() if channel is None or c == channel]
            return copy.deepcopy(sorted(found, key=lambda m: tuple(int(p) for p in m["ts"].split("."))))

    def thread(self, channel: str, thread_ts: str) -> list[Json]:
        return [m for m in self.messages(channel) if m["thread_ts"] == thread_ts and m["ts"] != thread_ts]

    def view(self, view_id: str) -> Json | None:
        with self.lock:
            found = self.views.get(view_id)
            return copy.deepcopy(found) if found else None

    # -- helpers -------------------------------------------------------------------------------------------------
    def next_ts(self) -> str:
        with self.lock:
            self._ts_count += 1
            micros = self._ts_count * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_hash(self) -> str:
        self._hash_count += 1
        return f"1700000000.{self._hash_count:08x}"

    def _resolve_channel(self, channel: Any) -> str | None:
        if not isinstance(channel, str) or channel[:1] not in ("C", "G", "D", "U"):
            return None
        if channel in self.channels_not_found:
            return None
        return dm_channel(channel) if channel.startswith("U") else channel

    def _public(self, msg: Json) -> Json:
        return {k: v for k, v in msg.items() if k != "channel" and v is not None}
