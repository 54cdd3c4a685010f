"""What one simulated person sees: channels, messages and threads, their DMs and ephemerals, modals and App Home."""

from __future__ import annotations

import json
from typing import Any

from commands.playground.cast import COMMAND_CHANNEL, STATUS_CHANNEL, Cast
from commands.playground.standin import SlackStandIn


def dm_channel(user: str) -> str:
    """The id of the bot's DM with `user`, as the stand-in names it."""
    return "D" + user[1:]


def setup_workspace(standin: SlackStandIn, cast: Cast) -> None:
    """Put the cast, their groups and the two channels into the stand-in."""
    for person in cast.people:
        standin.add_user(
            person.id,
            name=person.name,
            real_name=person.name.capitalize(),
            guest=person.guest,
            team_id="T0ELSEWHERE" if person.external else None,
        )
    for group in cast.groups:
        standin.add_usergroup(group.id, group.members, handle=group.handle)
    standin.add_channel(STATUS_CHANNEL, cast.workspace.status_channel)
    standin.add_channel(COMMAND_CHANNEL, cast.workspace.command_channel)
    standin.add_user(standin.bot_user_id, name="expbot", is_bot=True)


def modal(standin: SlackStandIn, user: str) -> dict[str, Any] | None:
    """The modal on top of `user`'s stack (with its inline errors), or None."""
    stack = standin.stacks.get(user) or []
    if not stack:
        return None
    view = standin.views[stack[-1]]
    shown = {k: v for k, v in view.items() if not k.startswith("_") or k == "_errors"}
    return {**shown, "depth": len(stack)}


def screen(standin: SlackStandIn, cast: Cast, user: str, since: int) -> dict[str, Any]:
    """Everything `user` sees, or only the version when nothing changed since `since`."""
    with standin._lock:
        version = standin.version
        if since == version:
            return {"version": version, "unchanged": True}
        ephemerals = [e for e in standin.ephemerals if e.get("user") == user]
        home = standin.home_views.get(user)
        shown_modal = modal(standin, user)
        snapshot = json.loads(json.dumps({"ephemerals": ephemerals, "home": home, "modal": shown_modal}))
    channels = [
        {"id": cid, "name": info["name"], "kind": "channel"}
        for cid, info in standin.channels.items()
        if cid in (STATUS_CHANNEL, COMMAND_CHANNEL)
    ]
    channels.append({"id": dm_channel(user), "name": "expbot", "kind": "dm"})
    visible = {c["id"] for c in channels}
    return {
        "version": version,
        "me": user,
        "bot": standin.bot_user_id,
        "status_channel": STATUS_CHANNEL,
        "command_channel": COMMAND_CHANNEL,
        "people": [{"id": p.id, "name": p.name, "role": p.role} for p in cast.people],
        "names": {uid: info["name"] for uid, info in standin.users.items()},
        "groups": dict(standin.group_handles),
        "channel_names": {cid: info["name"] for cid, info in standin.channels.items()},
        "channels": channels,
        "messages": [m for m in standin.messages() if m["channel"] in visible],
        **snapshot,
    }
