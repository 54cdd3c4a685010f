"""Restarts: pending requests stay approvable; approved or applying requests are reconciled on start-up."""

from __future__ import annotations

from bot.models import RequestStatus
from tests.conftest import Bot, StartBot


async def _restart(bot: Bot, start_bot: StartBot, config: str = "") -> Bot:
    await bot.stop()
    return await start_bot(config)


async def test_pending_request_survives_restart(start_bot: StartBot) -> None:
    bot = await start_bot()
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    bot = await _restart(bot, start_bot)
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert done.status is RequestStatus.APPLIED


async def test_approved_request_is_applied_on_start(start_bot: StartBot) -> None:
    bot = await start_bot()
    await bot.new_sandbox()
    req = await bot.request("ramp exp-1 40")
    assert await bot.store.add_approval(req.id, "U2")
    assert await bot.store.transition(req.id, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
    bot = await _restart(bot, start_bot)  # crashed between approval and apply
    assert bot.store.request(req.id).status is RequestStatus.APPLIED
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).exposure == 40


async def test_applying_request_is_confirmed_or_finished_on_start(start_bot: StartBot) -> None:
    bot = await start_bot()
    await bot.new_sandbox()
    sandbox = bot.runtime.workflow.providers["sandbox"]
    done_before_crash = await bot.request("ramp exp-1 40")
    never_sent = await bot.request("start exp-1")
    for req in (done_before_crash, never_sent):
        await bot.store.transition(req.id, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
        await bot.store.transition(req.id, [RequestStatus.APPROVED], RequestStatus.APPLYING, "expbot")
    for step in done_before_crash.plan.steps:  # the provider got the call, then we died before the journal said so
        await sandbox.apply(step)
    bot = await _restart(bot, start_bot)
    first = bot.store.request(done_before_crash.id)
    assert first.status is RequestStatus.APPLIED and "confirmed after a restart" in (first.outcome or "")
    second = bot.store.request(never_sent.id)
    assert second.status is RequestStatus.STALE  # the experiment moved (exposure 40) since it was approved
    assert "changed while expbot was down" in (second.outcome or "")
    snap = await bot.runtime.workflow.providers["sandbox"].get("sbx-1")
    assert snap.exposure == 40 and snap.status.value == "draft"
    assert bot.store.requests([RequestStatus.APPROVED, RequestStatus.APPLYING]) == []


async def test_applying_request_never_sent_is_sent_on_start(start_bot: StartBot) -> None:
    bot = await start_bot()
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    await bot.store.transition(req.id, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
    await bot.store.transition(req.id, [RequestStatus.APPROVED], RequestStatus.APPLYING, "expbot")
    bot = await _restart(bot, start_bot)
    assert bot.store.request(req.id).status is RequestStatus.APPLIED
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).status.value == "running"
    await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1" and "was applied" in a["text"])
