"""Amplitude through the real bot and the signed Slack player: the modal, approvals, stale, a partial split, a 405."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.models import Experiment, RequestStatus
from tests.conftest import Bot, StartBot
from tests.fake_amplitude import FakeAmplitude


@pytest.fixture
def fake() -> Iterator[FakeAmplitude]:
    server = FakeAmplitude().start()
    server.add_deployment("5", "web-client")
    server.add_deployment("6", "api-server")
    server.add_deployment("7", "old", deleted=True)
    server.add_deployment("8", "other-project", project="200")
    yield server
    server.stop()


@pytest.fixture
async def amp_bot(start_bot: StartBot, fake: FakeAmplitude) -> AsyncIterator[Bot]:
    config = f'[providers.amplitude]\nbase_url = "{fake.url}"\nproject_id = "100"\ndeployments = ["5"]\n'
    yield await start_bot(config, amplitude_api_key=fake.key)


async def _create(bot: Bot, name: str) -> Experiment:
    """`/experiment new amplitude` → the modal → submit with only the name typed."""
    await bot.player.command("new amplitude")
    await bot.slack.wait_for_async("views.open")
    view_id = list(bot.slack.views)[-1]
    inputs = {b["block_id"]: b for b in bot.slack.view(view_id)["blocks"] if b["type"] == "input"}
    assert list(inputs) == [
        "provider",
        "name",
        "key",
        "description",
        "variants",
        "deployments",
        "evaluation_mode",
        "bucketing_key",
    ]
    assert inputs["variants"]["element"]["initial_value"] == "control, treatment"
    assert inputs["deployments"]["element"]["initial_option"]["value"] == "5"
    assert inputs["bucketing_key"]["element"]["initial_value"] == "amplitude_id"
    offered = await bot.player.suggest(view_id, "deployments", "")
    assert [o["value"] for o in offered] == ["5", "6"]  # the project's live deployments only
    resp = await bot.player.submit(view_id, {"name": name})
    assert resp.status_code == 200 and resp.text == "", resp.text
    return await bot.until(lambda: (e := bot.store.experiments()) and e[-1].card_ts and e[-1])  # type: ignore[no-any-return]


async def _approved(bot: Bot, text: str) -> RequestStatus:
    req = await bot.request(text)
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    return done.status  # type: ignore[no-any-return]


def _card(bot: Bot, exp: Experiment) -> str:
    return str(bot.slack.message("C1", exp.card_ts)["text"])


async def test_create_start_ramp_split_pause_resume_ship_archive(
    amp_bot: Bot, fake: FakeAmplitude, tmp_path: Path
) -> None:
    bot = amp_bot
    exp = await _create(bot, "Checkout button")
    [post] = fake.calls("POST")
    assert post.json()["key"] == "checkout-button" and post.json()["deployments"] == ["5"]
    assert exp.remote_id == next(iter(fake.experiments)) and "draft" in _card(bot, exp)
    assert bot.player.has_button("C1", exp.card_ts, "card_start")
    assert not bot.player.has_button("C1", exp.card_ts, "card_pause")
    await bot.player.command("pause exp-1")
    await bot.slack.wait_for_async(
        "chat.postEphemeral", lambda a: "cannot pause an experiment that is draft" in a["text"]
    )
    assert bot.all_requests() == [] and fake.calls("PATCH") == []

    req = await bot.request("start exp-1")
    shown = json.dumps(bot.slack.message("C1", req.message_ts)["blocks"])
    assert f"PATCH /api/1/experiments/{exp.remote_id}" in shown and "Rollout is 0 %" in shown
    assert fake.calls("PATCH") == []  # nothing is sent before approval
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(req.id).status is RequestStatus.APPLIED)
    await bot.until(lambda: "running" in _card(bot, exp))
    assert fake.experiments[exp.remote_id]["enabled"] is True

    for text, seen in [
        ("ramp exp-1 25", "exposure 25%"),
        ("split exp-1 control=25 treatment=75", "control 25%, treatment 75%"),
        ("pause exp-1", "paused"),
        ("resume exp-1", "running"),
        ("ship exp-1 treatment", "completed, exposure 100%, control 0%, treatment 100%"),
        ("archive exp-1", "archived"),
    ]:
        assert await _approved(bot, text) is RequestStatus.APPLIED, text
        await bot.until(lambda: seen in _card(bot, exp))  # noqa: B023 - awaited within the iteration
    patches = [(s.path.rsplit("/", 1)[-1], s.json()) for s in fake.calls("PATCH")]
    assert len(patches) == 8  # start, ramp, one weight (1:1 → 1:3), pause, resume, ship (weight + decision), archive
    assert patches[2] == ("treatment", {"rolloutWeight": 3})
    assert [v["version"] for v in fake.history[exp.remote_id]] == list(range(1, 10))
    assert all(s.headers["authorization"] == f"Bearer {fake.key}" for s in fake.calls())

    shown_text = (await bot.player.command("show exp-1")).json()["text"]
    assert "archived" in shown_text and "Recent changes in Amplitude: v9 by api" in shown_text
    audit = (await bot.player.command("audit exp-1")).json()["text"]
    assert fake.key not in audit and fake.key not in json.dumps([c.args for c in bot.slack.calls()], default=str)
    stored = list(tmp_path.glob("expbot.db*"))
    assert stored and all(fake.key.encode() not in f.read_bytes() for f in stored)


async def test_a_change_made_in_amplitude_meanwhile_makes_the_request_stale(amp_bot: Bot, fake: FakeAmplitude) -> None:
    bot = amp_bot
    exp = await _create(bot, "Search ranking")
    req = await bot.request("ramp exp-1 30")
    fake.edit(exp.remote_id, by="carol@example.com", rolloutPercentage=10)
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert done.status is RequestStatus.STALE and fake.calls("PATCH") == []
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: "is *stale*" in a.get("text", ""))
    assert "10%" in note[-1].args["text"]
    assert "v2 by carol@example.com" in (await bot.player.command("show exp-1")).json()["text"]


async def test_a_split_that_fails_midway_says_which_weights_went_through(amp_bot: Bot, fake: FakeAmplitude) -> None:
    bot = amp_bot
    exp = await _create(bot, "Onboarding")
    fake.inject(method="PATCH", path="/variants/", status=500, body="Internal Server Error", skip=1)
    assert await _approved(bot, "split exp-1 control=30 treatment=70") is RequestStatus.FAILED
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: "*failed*" in a.get("text", ""))
    text = note[-1].args["text"]
    assert "1 of 2 step(s) applied" in text
    assert ":white_check_mark: 1. set control's weight to 3 (30%)" in text
    assert ":x: 2. set treatment's weight to 7 (70%)" in text and "Internal Server Error" in text
    assert fake.experiments[exp.remote_id]["rolloutWeights"] == {"control": 3, "treatment": 1}
    assert len(fake.calls("PATCH")) == 2  # a 500 on a PATCH is not sent again
    await bot.until(lambda: "control 75%, treatment 25%" in _card(bot, exp))  # what Amplitude has now


async def test_track_by_key_then_a_405_is_shown_not_retried(amp_bot: Bot, fake: FakeAmplitude) -> None:
    bot = amp_bot
    rid = fake.add_experiment("web-banner", name="Web banner", web=True)
    await bot.player.command("track amplitude web-banner")
    await bot.slack.wait_for_async("chat.postMessage", lambda a: "Web banner" in a.get("text", ""))
    exp = bot.store.experiment_by_remote("amplitude", rid)
    assert exp is not None and exp.remote_id == rid
    again = (await bot.player.command(f"track amplitude {rid}")).json()["text"]
    assert "already tracked as `exp-1`" in again
    assert await _approved(bot, "start web-banner") is RequestStatus.FAILED
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: "*failed*" in a.get("text", ""))
    assert "405" in note[-1].args["text"] and "cannot edit this experiment" in note[-1].args["text"]
    assert len(fake.calls("PATCH")) == 1
