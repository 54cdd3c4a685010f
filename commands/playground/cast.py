"""The playground's simulated workspace from `playground.toml`: people, user groups, channels and expbot's config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.config import ConfigError
from bot.config_file import model_problems, read_toml

STATUS_CHANNEL = "C0STATUS"
COMMAND_CHANNEL = "C0PRODUCT"
DEFAULT = """\
# The expbot playground's workspace. Edit it, then restart `expbot playground --data <this folder>`.
# [workspace], [[people]] and [[groups]] describe the simulated Slack workspace; every other section is
# expbot's own configuration (README: "Configuration reference") and is given to the app as its expbot.toml.

[workspace]
status_channel = "experiments"   # where cards and their threads are posted
command_channel = "product"      # where you type /experiment …

[[people]]
id = "U0ALICE"
name = "alice"
role = "requester"

[[people]]
id = "U0BOB"
name = "bob"
role = "approver (by user id)"

[[people]]
id = "U0CAROL"
name = "carol"
role = "approver (in @experiment-approvers)"

[[people]]
id = "U0DAVE"
name = "dave"
role = "may not approve"
# guest = "multi"      # a guest ("multi" or "single" channel) may not act unless allow_guests = true
# external = true      # someone from another workspace (Slack Connect), unless allow_external = true

[[groups]]
id = "S0APPROVERS"
handle = "experiment-approvers"
members = ["U0CAROL"]

[approvals]
approvers = ["U0BOB", "S0APPROVERS"]   # user ids and user-group ids
required = 1
allow_self_approval = false
expires_after = "24h"

[providers.sandbox]
latency = "1500ms"   # every sandbox call takes this long, so you can watch "applying…"
"""


class Person(BaseModel):
    """One simulated member of the workspace."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[UW][A-Z0-9]+$")
    name: str = Field(min_length=1, max_length=40)
    role: str = ""
    guest: Literal["multi", "single"] | None = None
    external: bool = False


class Group(BaseModel):
    """A user group (`S…`) whose members may be approvers."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^S[A-Z0-9]+$")
    handle: str = Field(min_length=1, max_length=40)
    members: list[str] = Field(default_factory=list)


class Workspace(BaseModel):
    """The channels' names."""

    model_config = ConfigDict(extra="forbid")

    status_channel: str = Field(default="experiments", min_length=1, max_length=40)
    command_channel: str = Field(default="product", min_length=1, max_length=40)


class Cast(BaseModel):
    """Everything the playground simulates, and the rest of the file: expbot's own config."""

    workspace: Workspace = Field(default_factory=Workspace)
    people: list[Person] = Field(min_length=1)
    groups: list[Group] = Field(default_factory=list)
    expbot: dict[str, Any] = Field(default_factory=dict)


def load_cast(path: Path) -> Cast:
    """Read `path` (written with the defaults first if it does not exist); `ConfigError` lists every problem."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEFAULT, encoding="utf-8")
    problems: list[str] = []
    raw = read_toml(path, problems)
    if raw is None:
        raise ConfigError(problems)
    own = {k: raw.pop(k) for k in ("workspace", "people", "groups") if k in raw}
    try:
        cast = Cast.model_validate({**own, "expbot": raw})
    except ValidationError as exc:
        raise ConfigError(model_problems(exc, str(path), "playground", Cast)) from None
    known = {p.id for p in cast.people}
    problems = [
        f"{path} [[groups]] {group.id}: {member} is not one of the [[people]]"
        for group in cast.groups
        for member in group.members
        if member not in known
    ]
    if problems:
        raise ConfigError(problems)
    return cast


def expbot_toml(cast: Cast) -> str:
    """expbot's config file for the playground: the file's own sections, with the status channel added."""
    config = json.loads(json.dumps(cast.expbot))
    config.setdefault("slack", {}).setdefault("channel", STATUS_CHANNEL)
    return _dump(config, "")


def _dump(table: dict[str, Any], prefix: str) -> str:
    """A TOML document for nested tables of strings, numbers, booleans and lists (JSON spells them as TOML does)."""
    lines = [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
    text = (f"[{prefix}]\n" if prefix and lines else "") + "".join(line + "\n" for line in lines)
    for key, value in table.items():
        if isinstance(value, dict):
            text += _dump(value, f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key))
    return text
