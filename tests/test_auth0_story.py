"""Auth0 end to end: the real bot, the fake Slack and the fake tenant; every traffic change only after approval."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.models import ChangeRequest, Experiment, RequestStatus
from tests.conftest import Bot, StartBot
from tests.fake_auth0 import FakeAuth0


@pytest.fixture
def fake() -> Iterator[FakeAuth0]:
    server = FakeAuth0().start()
    yield server
    server.stop()


async def _bot(start_bot: StartBot, fake: FakeAuth0) -> Bot:
    config = f'[providers.auth0]\nbase_url = "{fake.url}"\nrequests_per_second = 500\n'
    return await start_bot(
        config, auth0_domain=fake.domain, auth0_client_id=fake.client_id, auth0_client_secret=fake.client_secret
    )


async def _create(bot: Bot, fake: FakeAuth0, name: str, flag: str, levels: str = "10, 50, 100") -> Experiment:
    """`/experiment new auth0` → pick the flag from the external select → its variations appear → submit."""
    opened = len(bot.slack.calls("views.open"))
    await bot.player.command("new auth0")
    await bot.slack.wait_for_async("views.open", count=opened + 1)
    view_id = list(bot.slack.views)[-1]
    assert flag in [o["value"] for o in await bot.player.suggest(view_id, "feature_flag_id", "")]
    updates = len(bot.slack.calls("views.update"))
    await bot.player.select_in_view(view_id, "choices", flag)
    view = (await bot.slack.wait_for_async("views.update", count=updates + 1))[-1].args["view"]
    rows = {b["block_id"]: b["element"].get("initial_value") for b in view["blocks"] if b["type"] == "input"}
    assert rows["weights.0.variation"] == "control" and rows["weights.1.variation"] == "treatment"
    assert rows["weights.0.weight"] == rows["weights.1.weight"] == "50"
    before = len(bot.store.experiments())
    resp = await bot.player.submit(view_id, {"name": name, "levels": levels})
    assert resp.status_code == 200 and resp.text == "", resp.text
    found = await bot.until(lambda: len(e := bot.store.experiments()) > before and e[-1].card_ts and e)
    return found[-1]  # type: ignore[no-any-return]


async def _approved(bot: Bot, text: str) -> ChangeRequest:
    req = await bot.request(text)
    assert bot.store.request(req.id).status is RequestStatus.PENDING
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    done: ChangeRequest = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    return done


def _card(bot: Bot, exp: Experiment) -> str:
    return str(bot.slack.message("C1", exp.card_ts)["text"])


async def _refused(bot: Bot, text: str, says: str) -> None:
    await bot.player.command(text)
    await bot.slack.wait_for_async("chat.postEphemeral", lambda a: says in a["text"])


async def test_create_start_ramp_pause_resume_stop_archive(
    start_bot: StartBot, fake: FakeAuth0, tmp_path: Path
) -> None:
    bot = await _bot(start_bot, fake)
    exp = await _create(bot, fake, "Login button copy", fake.add_flag("Login button"))
    assert exp.remote_id.startswith("exp_") and fake.experiments[exp.remote_id]["levels"] == [10, 50, 100]
    assert "Login button copy (exp-1, Auth0 Experiment Center): draft, exposure 10%" in _card(bot, exp)
    assert bot.player.has_button("C1", exp.card_ts, "card_start")

    req = await bot.request("start exp-1")
    shown = json.dumps(bot.slack.message("C1", req.message_ts)["blocks"])
    assert f"POST /api/v2/experimentation/experiments/{exp.remote_id}/validate" in shown
    assert "status" in shown and "experiment_active_limit_exceeded" in shown
    assert fake.experiments[exp.remote_id]["status"] == "draft"  # nothing moves before the approval
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert done.status is RequestStatus.APPLIED and fake.experiments[exp.remote_id]["status"] == "active"
    assert await bot.until(lambda: ": running, exposure 10%" in _card(bot, exp))

    await _refused(bot, "ramp exp-1 100", "next level of its ramp: 50%")
    await _refused(bot, "ship exp-1 treatment", "no promotion")
    await _refused(bot, "split exp-1 control=30 treatment=70", "only before the experiment is first started")
    assert (await _approved(bot, "ramp exp-1 50")).status is RequestStatus.APPLIED
    assert fake.experiments[exp.remote_id]["current_level"] == 1
    assert await bot.until(lambda: ": running, exposure 50%" in _card(bot, exp))
    for text, status in (("pause", "paused"), ("resume", "active"), ("stop", "completed"), ("archive", "archived")):
        assert (await _approved(bot, f"{text} exp-1")).status is RequestStatus.APPLIED, text
        assert fake.experiments[exp.remote_id]["status"] == status
    assert await bot.until(lambda: ": archived" in _card(bot, exp))
    assert len(fake.requests("POST", "/advance-ramp")) == 1 and len(fake.requests("POST", "/status")) == 5

    stored = b"".join(p.read_bytes() for p in tmp_path.glob("expbot.db*"))
    posted = json.dumps([c.args for c in bot.slack.calls()])
    for secret in (fake.client_secret, *fake.tokens):
        assert secret.encode() not in stored and secret not in posted


async def test_stale_active_limit_and_track(start_bot: StartBot, fake: FakeAuth0) -> None:
    bot = await _bot(start_bot, fake)
    first = await _create(bot, fake, "First", fake.add_flag("One"), levels="")
    second = await _create(bot, fake, "Second", fake.add_flag("Two"), levels="")
    req = await bot.request(f"start {first.ref}")
    fake.tamper(first.remote_id, description="edited in the Auth0 dashboard")  # between request and approval
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    stale = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert stale.status is RequestStatus.STALE and not fake.requests("POST", "/status")

    assert (await _approved(bot, f"start {first.ref}")).status is RequestStatus.APPLIED
    failed = await _approved(bot, f"start {second.ref}")
    assert failed.status is RequestStatus.FAILED and fake.experiments[second.remote_id]["status"] == "draft"
    said = await bot.slack.wait_for_async("chat.postMessage", lambda a: "experiment_active_limit_exceeded" in a["text"])
    assert "Only one active experiment is allowed per tenant." in said[-1].args["text"]
    assert "another experiment is already active" in said[-1].args["text"]

    elsewhere = fake.tenant.route(
        "POST",
        "/api/v2/experimentation/experiments",
        {},
        {
            **{
                k: fake.experiments[first.remote_id][k]
                for k in ("feature_flag_id", "allocation_strategy", "allocations")
            },
            "name": "Made in the dashboard",
            "authentication_flow": "all",
            "assignment_config": {"subject": "device"},
        },
    )[1]["id"]
    await bot.player.command(f"track auth0 {elsewhere}")
    await bot.slack.wait_for_async("chat.postMessage", lambda a: "Made in the dashboard" in a.get("text", ""))
    tracked = bot.store.experiment_by_remote("auth0", elsewhere)
    assert tracked is not None and tracked.snapshot.status.value == "draft"
