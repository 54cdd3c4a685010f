"""The playground's own parts: its config, the page's state API, signed deliveries and the modal stack."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError
from commands.playground.cast import Cast, Group, Person, load_cast
from commands.playground.run import prepare
from commands.playground.screen import screen
from commands.playground.ui import Playground
from tests.conftest import SECRET, Bot
from tests.slackfake.web_api import FakeSlack

CAST = Cast(
    people=[Person(id=u, name=n) for u, n in (("U1", "alice"), ("U2", "bob"))],
    groups=[Group(id="S1", handle="approvers", members=["U2"])],
)


def test_defaults_are_written_and_become_expbots_config(tmp_path: Path) -> None:
    (tmp_path / "playground.db").write_text("an old database")
    cast, settings = prepare(tmp_path, "http://127.0.0.1:9/api/", "xoxb-pg", "s3cret")
    assert (tmp_path / "playground.toml").exists() and not (tmp_path / "playground.db").exists()
    assert [p.name for p in cast.people] == ["alice", "bob", "carol", "dave"]
    assert settings.channel == "C0STATUS" and settings.policy.approvers == ["U0BOB", "S0APPROVERS"]
    assert settings.signing_secret is not None and settings.enabled[0] == "sandbox"
    config = tomllib.loads((tmp_path / "expbot.toml").read_text())
    assert config["providers"]["sandbox"] == {"latency": "1500ms"}


def test_every_problem_in_playground_toml_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "playground.toml"
    path.write_text('[[people]]\nid = "bob"\nname = "bob"\nmood = 1\n')
    with pytest.raises(ConfigError) as err:
        load_cast(path)
    assert any("people.0.id" in p for p in err.value.problems) and any("mood" in p for p in err.value.problems)
    path.write_text('[[people]]\nid = "U1"\nname = "a"\n[[groups]]\nid = "S1"\nhandle = "h"\nmembers = ["U9"]\n')
    with pytest.raises(ConfigError) as err:
        load_cast(path)
    assert err.value.problems == [f"{path} [[groups]] S1: U9 is not one of the [[people]]"]
    path.write_text('[[people]]\nid = "U1"\nname = "a"\n[approvals]\nrequired = 0\n')
    with pytest.raises(ConfigError) as err:
        prepare(tmp_path, "http://127.0.0.1:9/api/", "xoxb-pg", "s3cret")
    assert any("[approvals] required" in p for p in err.value.problems)


async def test_deliveries_are_signed_and_ephemerals_reach_only_their_person(bot: Bot) -> None:
    page = Playground(bot.slack, CAST, SECRET)
    page.events_url = bot.player.events_url
    assert await asyncio.to_thread(page.command, {"user": "U1", "channel": "C1", "text": "/experiment help"}) == {
        "ok": True
    }
    mine = screen(bot.slack, CAST, "U1", -1)
    assert "runs A/B experiments" in mine["ephemerals"][0]["text"]
    theirs = screen(bot.slack, CAST, "U2", -1)
    assert theirs["ephemerals"] == [] and theirs["me"] == "U2"
    assert screen(bot.slack, CAST, "U2", theirs["version"]) == {"version": theirs["version"], "unchanged": True}
    assert [c["id"] for c in theirs["channels"] if c["kind"] == "dm"] == ["D2"]

    forged = Playground(bot.slack, CAST, "not-the-secret")
    forged.events_url = bot.player.events_url
    answer = await asyncio.to_thread(forged.command, {"user": "U1", "channel": "C1", "text": "/experiment help"})
    assert answer == {"ok": False, "error": "http_401"}  # the app's signature check is on
    assert 'failed with the error "http_401"' in screen(bot.slack, CAST, "U1", -1)["ephemerals"][-1]["text"]


async def test_modals_open_show_inline_errors_and_close_on_success(bot: Bot) -> None:
    page = Playground(bot.slack, CAST, SECRET)
    page.events_url = bot.player.events_url
    await asyncio.to_thread(page.command, {"user": "U1", "channel": "C1", "text": "/experiment new sandbox"})
    modal = await bot.until(lambda: screen(bot.slack, CAST, "U1", -1)["modal"])
    assert screen(bot.slack, CAST, "U2", -1)["modal"] is None
    state = page.payloads.state(modal["id"], {"name": "   "})
    answer = await asyncio.to_thread(page.submit, {"user": "U1", "view_id": modal["id"], "state": state})
    assert answer == {"ok": True, "response_action": "errors"}
    assert "name" in screen(bot.slack, CAST, "U1", -1)["modal"]["_errors"]
    state = page.payloads.state(modal["id"], {"name": "Checkout"})
    await asyncio.to_thread(page.submit, {"user": "U1", "view_id": modal["id"], "state": state})
    assert screen(bot.slack, CAST, "U1", -1)["modal"] is None
    exp = await bot.until(
        lambda: bot.store.experiments() and bot.store.experiments()[0].card_ts and bot.store.experiments()
    )
    assert exp[0].name == "Checkout"
    await asyncio.to_thread(page.command, {"user": "U1", "channel": "C1", "text": "/experiment new"})
    modal = await bot.until(lambda: screen(bot.slack, CAST, "U1", -1)["modal"])
    await asyncio.to_thread(page.close, {"user": "U1", "view_id": modal["id"]})
    assert bot.slack.stacks["U1"] == []


async def test_views_push_stack_and_update_keeps_the_owner() -> None:
    with FakeSlack(bot_token="xoxb-t") as fake:
        client = AsyncWebClient(token="xoxb-t", base_url=fake.api_url)
        fake.triggers.update({"1.a": "U1", "2.b": "U1"})
        view = {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": []}
        first = (await client.views_open(trigger_id="1.a", view=view))["view"]
        second = (await client.views_push(trigger_id="2.b", view=view))["view"]
        assert fake.stacks["U1"] == [first["id"], second["id"]]
        await client.views_update(view_id=second["id"], hash=second["hash"], view={**view, "blocks": []})
        assert fake.views[second["id"]]["_user"] == "U1"


def test_the_page_answers_loopback_json_only() -> None:
    with FakeSlack() as fake:
        page = Playground(fake, CAST, SECRET)
        local = {"host": "127.0.0.1:3030", "content-type": "application/json"}
        status, headers, body = page.route("GET", "/", local, b"")
        assert status == 200 and headers["content-type"].startswith("text/html") and b"app.js" in body
        assert page.route("GET", "/static/app.js", local, b"")[0] == 200
        assert page.route("POST", "/ui/command", {**local, "host": "evil.example:3030"}, b"{}")[0] == 403
        assert page.route("POST", "/ui/command", {**local, "content-type": "text/plain"}, b"{}")[0] == 415
        assert page.route("POST", "/ui/command", local, json.dumps({"user": "U1"}).encode())[0] == 400
        assert page.route("GET", "/static/../ui.py", local, b"")[0] == 404
        answer = page.route(
            "POST", "/ui/command", local, json.dumps({"user": "U1", "channel": "C1", "text": "/x"}).encode()
        )
        assert answer[2] == {"ok": False, "error": "unknown_command"}
