"""LaunchDarkly end to end: the real bot, the fake Slack and the fake LaunchDarkly on loopback — create from the
modal, start, ramp, re-split, ship, archive and restore after approval in the thread, and each way it can fail."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.models import Experiment, RequestStatus
from providers.launchdarkly import LaunchDarklyProvider
from providers.launchdarkly_forms import LaunchDarklyDraft
from providers.plan import ApplyContext, resolve
from tests.conftest import Bot, StartBot
from tests.contract.harness_launchdarkly import provider_for
from tests.fake_launchdarkly import FakeLaunchDarkly

CONFIG = '[providers.launchdarkly]\nbase_url = "{url}"\nproject = "web"\nenvironment = "production"\n'


@pytest.fixture
def ld() -> Iterator[FakeLaunchDarkly]:
    fake = FakeLaunchDarkly().start()
    yield fake
    fake.stop()
    assert fake.invalid == [], fake.invalid  # every body the adapter sent validated against the spec


async def _bot(start_bot: StartBot, ld: FakeLaunchDarkly) -> Bot:
    return await start_bot(CONFIG.format(url=ld.url), launchdarkly_api_token=ld.token)


async def _final(bot: Bot, request_id: int) -> RequestStatus:
    req = await bot.until(lambda: (r := bot.store.request(request_id)).status.final and r, timeout=15)
    return req.status  # type: ignore[no-any-return]


async def _approved(bot: Bot, text: str) -> tuple[int, RequestStatus]:
    req = await bot.request(text)
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    return req.id, await _final(bot, req.id)


async def _create(bot: Bot) -> Experiment:
    """`/experiment new launchdarkly` → pick the flag (the modal fills in its variations) → shares → Create."""
    await bot.player.command("new launchdarkly")
    call = (await bot.slack.wait_for_async("views.open"))[-1]
    view_id = bot._view_id(call.args["trigger_id"])
    blocks = {b.get("block_id"): b for b in bot.slack.view(view_id)["blocks"]}
    assert blocks["project"]["element"]["initial_value"] == "web"
    assert [o["value"] for o in await bot.player.suggest(view_id, "flag_key")] == ["checkout-button"]
    assert [o["value"] for o in await bot.player.suggest(view_id, "metric_key", "purch")] == ["purchases"]
    units = [o["value"] for o in await bot.player.suggest(view_id, "randomization_unit")]
    assert units == ["user", "organization", "device"]
    await bot.player.select_in_view(view_id, "choices", "checkout-button")
    rebuilt = (await bot.slack.wait_for_async("views.update"))[-1].args["view"]
    rows = {
        b["block_id"]: b["element"].get("initial_value")
        for b in rebuilt["blocks"]
        if "treatments." in b.get("block_id", "")
    }
    assert rows == {
        "treatments.0.name": "Control",
        "treatments.0.weight": "50",
        "treatments.1.name": "Treatment",
        "treatments.1.weight": "50",
    }
    values = {"name": "Checkout <button>", "metric_key": "purchases", "treatments.0.weight": "70"}
    resp = await bot.player.submit(view_id, values | {"treatments.1.weight": "30"})
    assert resp.status_code == 200 and resp.text == "", resp.text
    return await bot.until(lambda: next((e for e in bot.store.experiments() if e.card_ts), None))  # type: ignore[no-any-return]


def _starts(ld: FakeLaunchDarkly) -> list[dict[str, object]]:
    return [b for b in ld.bodies("PATCH") if b.get("instructions", [{}])[0].get("kind") == "startIteration"]


async def test_the_whole_story(start_bot: StartBot, ld: FakeLaunchDarkly) -> None:
    bot = await _bot(start_bot, ld)
    exp = await _create(bot)
    assert exp.remote_id == "web/production/checkout-button" and exp.snapshot.status.value == "draft"
    assert exp.snapshot.exposure == 10 and exp.snapshot.weights() == {"Control": 70, "Treatment": 30}
    (created,) = ld.bodies("POST", "/experiments")
    assert created["iteration"]["flags"] == {"checkout-button": {"ruleId": "fallthrough", "flagConfigVersion": 1}}
    assert "&lt;button&gt;" in bot.slack.messages("C1")[0]["text"]  # escaped on the card

    assert await _approved(bot, "start exp-1") == (1, RequestStatus.APPLIED)
    assert bot.store.experiment(1).snapshot.status.value == "running"
    assert "expbot request #1 approved by U2" in _starts(ld)[0]["comment"]

    ramp = await bot.request("ramp exp-1 25")
    shown = json.dumps(bot.slack.message("C1", ramp.message_ts)["blocks"])
    assert "re-randomizes" in shown and "/iterations" in shown and len(ramp.plan.steps) == 2
    await bot.player.click("C1", ramp.message_ts, "request_approve", user="U2")
    assert await _final(bot, ramp.id) is RequestStatus.APPLIED
    snap = bot.store.experiment(1).snapshot
    assert snap.exposure == 25 and snap.weights() == {"Control": 70, "Treatment": 30}
    (new_iteration,) = ld.bodies("POST", "/iterations")
    assert [t["allocationPercent"] for t in new_iteration["treatments"]] == ["17.5", "7.5"]
    started = _starts(ld)[-1]
    assert started["comment"].endswith(f"(iteration {snap.guard['iteration_id']})")  # step 2 used step 1's answer
    assert "ramp exposure to 25%" in started["instructions"][0]["changeJustification"]

    assert (await _approved(bot, "split exp-1 Control=50 Treatment=50"))[1] is RequestStatus.APPLIED
    assert bot.store.experiment(1).snapshot.weights() == {"Control": 50, "Treatment": 50}

    await bot.player.command("pause exp-1")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "cannot be paused" in a["text"])
    assert told and len(bot.all_requests()) == 3

    assert (await _approved(bot, "ship exp-1 Treatment"))[1] is RequestStatus.APPLIED
    shipped = bot.store.experiment(1).snapshot
    assert shipped.status.value == "stopped" and shipped.guard["winner"] == shipped.guard["serving"] == "Treatment"
    assert [s.query for s in ld.requests("PATCH", "/api/v2/flags/web/checkout-button")] == [{"dryRun": "true"}, {}]

    assert (await _approved(bot, "archive exp-1"))[1] is RequestStatus.APPLIED
    assert bot.store.experiment(1).snapshot.status.value == "archived"
    assert (await _approved(bot, "restore exp-1"))[1] is RequestStatus.APPLIED
    assert bot.store.experiment(1).snapshot.status.value == "stopped"
    card_ts = bot.store.experiment(1).card_ts
    await bot.until(lambda: "LaunchDarkly): stopped, exposure 25%" in bot.slack.message("C1", card_ts)["text"])


async def test_track_by_key_or_full_id_is_one_experiment(start_bot: StartBot, ld: FakeLaunchDarkly) -> None:
    bot = await _bot(start_bot, ld)
    elsewhere = LaunchDarklyDraft(name="Made elsewhere", flag_key="checkout-button", metric_key="signups")
    await bot.runtime.workflow.providers["launchdarkly"].create(elsewhere)
    resp = await bot.player.command("track launchdarkly made-elsewhere")
    assert resp.status_code == 200
    tracked = await bot.until(lambda: (e := bot.store.experiment(1)) is not None and e.card_ts and e)
    assert tracked.remote_id == "web/production/made-elsewhere" and tracked.name == "Made elsewhere"
    for spelling in ("web/production/made-elsewhere", " made-elsewhere ", "launchdarkly:made-elsewhere"):
        again = await bot.player.command(f"track launchdarkly {spelling.removeprefix('launchdarkly:')}")
        assert "already tracked as `exp-1`" in again.json()["text"]
    shown = await bot.player.command("show launchdarkly:made-elsewhere")
    assert "Made elsewhere" in shown.json()["text"]


async def test_stale_when_changed_in_launchdarkly_between_request_and_approval(
    start_bot: StartBot, ld: FakeLaunchDarkly
) -> None:
    bot = await _bot(start_bot, ld)
    await _create(bot)
    await _approved(bot, "start exp-1")
    ramp = await bot.request("ramp exp-1 30")
    ld.edit(lambda s: s.flags["checkout-button"].update(_version=s.flags["checkout-button"]["_version"] + 1))
    await bot.player.click("C1", ramp.message_ts, "request_approve", user="U2")
    assert await _final(bot, ramp.id) is RequestStatus.STALE
    assert ld.bodies("POST", "/iterations") == []


async def test_a_409_on_apply_ends_the_request_stale(start_bot: StartBot, ld: FakeLaunchDarkly) -> None:
    bot = await _bot(start_bot, ld)
    await _create(bot)
    await _approved(bot, "start exp-1")
    ld.fail("stale")
    _, status = await _approved(bot, "ramp exp-1 30")
    assert status is RequestStatus.STALE
    await bot.slack.wait_for_async("chat.postMessage", lambda a: "Optimistic lock error" in a.get("text", ""))
    assert len(_starts(ld)) == 1


async def test_a_400_shows_launchdarklys_message(start_bot: StartBot, ld: FakeLaunchDarkly) -> None:
    bot = await _bot(start_bot, ld)
    await _create(bot)
    ld.fail("bad_request", message="Cannot start iteration: flag checkout-button is archived")
    assert (await _approved(bot, "start exp-1"))[1] is RequestStatus.FAILED
    card_ts = bot.store.experiment(1).card_ts
    said = await bot.slack.wait_for_async(
        "chat.postMessage", lambda a: a.get("thread_ts") == card_ts and "flag checkout-button is archived" in a["text"]
    )
    assert said and "0 of 1 step(s) applied" in said[-1].args["text"]


async def test_one_429_is_waited_out(start_bot: StartBot, ld: FakeLaunchDarkly) -> None:
    bot = await _bot(start_bot, ld)
    await _create(bot)
    ld.reset_in_ms = 100  # X-Ratelimit-Reset (epoch ms) a moment from now
    ld.fail("rate_limited")
    assert (await _approved(bot, "start exp-1"))[1] is RequestStatus.APPLIED
    statuses = [s.path for s in ld.requests("PATCH")]
    assert len(statuses) == 2 and len(_starts(ld)) == 2 and ld.writes == 2  # create + one start carried out


async def test_a_timeout_after_start_iteration_is_confirmed_not_repeated(
    start_bot: StartBot, ld: FakeLaunchDarkly
) -> None:
    bot = await _bot(start_bot, ld)
    providers = bot.runtime.workflow.providers
    await providers["launchdarkly"].aclose()
    providers["launchdarkly"] = provider_for(ld, timeout=0.5)  # answers later than this are lost
    await _create(bot)
    ld.fail("timeout_after_write")
    assert (await _approved(bot, "start exp-1"))[1] is RequestStatus.APPLIED
    assert len(_starts(ld)) == 1  # read back, never sent twice
    exp = ld.state.experiments[("production", "checkout-button")]
    assert [i["status"] for i in exp.iterations] == ["running"]


async def test_a_crash_between_the_two_steps_of_a_ramp(start_bot: StartBot, ld: FakeLaunchDarkly) -> None:
    bot = await _bot(start_bot, ld)
    await _create(bot)
    await _approved(bot, "start exp-1")
    ramp = await bot.request("ramp exp-1 40")
    await bot.store.add_approval(ramp.id, "U2")
    await bot.store.transition(ramp.id, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
    await bot.store.transition(ramp.id, [RequestStatus.APPROVED], RequestStatus.APPLYING, "expbot")
    ctx = ApplyContext(request_id=ramp.id, requester="U1", approvers=["U2"], now=ramp.created_at)
    step = resolve(ramp.plan.steps[0], [], ctx)
    await bot.store.step_sent(ramp.id, 0, step)
    provider = bot.runtime.workflow.providers["launchdarkly"]
    assert isinstance(provider, LaunchDarklyProvider)
    await provider.apply(step)  # LaunchDarkly made the iteration; the process died before journaling its answer
    await bot.stop()
    bot = await _bot(start_bot, ld)  # recovery on start-up
    assert await _final(bot, ramp.id) is RequestStatus.APPLIED
    assert len(ld.bodies("POST", "/iterations")) == 1 and len(_starts(ld)) == 2
    assert bot.store.experiment(1).snapshot.exposure == 40
    assert [e.status for e in bot.store.journal(ramp.id).values()] == ["done", "done"]
