"""The core stays correct when providers are slow and fail: one change in flight per experiment, recovery owned
by one process and resumed from the step journal, one card per experiment, unambiguous refs, and a store that
never stalls the event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bot.app import build
from bot.models import RequestStatus
from commands import register
from providers.models import Snapshot, Status
from providers.plan import Answer, ApplyContext, resolve
from providers.sandbox import SandboxProvider
from tests.conftest import Bot, StartBot

SLOW = '[providers.sandbox]\nlatency = "300ms"\n'


async def _final(bot: Bot, request_id: int) -> RequestStatus:
    req = await bot.until(lambda: (r := bot.store.request(request_id)).status.final and r, timeout=15)
    return req.status  # type: ignore[no-any-return]


def _sandbox(bot: Bot) -> SandboxProvider:
    found = bot.runtime.workflow.providers["sandbox"]
    assert isinstance(found, SandboxProvider)
    return found


async def test_two_requests_approved_together_apply_one_at_a_time(start_bot: StartBot) -> None:
    bot = await start_bot(SLOW)
    await bot.new_sandbox()
    first = await bot.request("ramp exp-1 25")
    second = await bot.request("ramp exp-1 30", user="U3")
    await asyncio.gather(
        bot.player.click("C1", first.message_ts, "request_approve", user="U2"),
        bot.player.click("C1", second.message_ts, "request_approve", user="U4"),
    )
    outcomes = {await _final(bot, first.id), await _final(bot, second.id)}
    assert outcomes == {RequestStatus.APPLIED, RequestStatus.STALE}
    applied = next(
        r for r in (bot.store.request(first.id), bot.store.request(second.id)) if r.status.value == "applied"
    )
    assert (await _sandbox(bot).get("sbx-1")).exposure == applied.change.exposure
    sent = [e for e in bot.store.audit_events(1, 500) if e.action == "provider.call" and "PATCH" in e.detail["call"]]
    assert len(sent) == 1


async def _ship_left_applying(bot: Bot) -> tuple[int, list[Answer]]:
    """A running experiment and an approved "ship" whose process died after sending step 1 of 2."""
    await bot.new_sandbox()
    start = await bot.request("start exp-1")
    await bot.player.click("C1", start.message_ts, "request_approve", user="U2")
    assert await _final(bot, start.id) is RequestStatus.APPLIED
    ship = await bot.request("ship exp-1 treatment")
    await bot.store.add_approval(ship.id, "U2")
    await bot.store.transition(ship.id, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
    await bot.store.transition(ship.id, [RequestStatus.APPROVED], RequestStatus.APPLYING, "expbot")
    ctx = ApplyContext(request_id=ship.id, requester="U1", approvers=["U2"], now=ship.created_at)
    step = resolve(ship.plan.steps[0], [], ctx)
    await bot.store.step_sent(ship.id, 0, step)
    return ship.id, [await _sandbox(bot).apply(step)]  # the provider did it; the journal still says "sent"


def _decisions(bot: Bot) -> int:
    return sum(
        1 for e in bot.store.audit_events(1, 500) if e.action == "provider.call" and "/decisions" in e.detail["call"]
    )


async def test_recovery_resumes_from_the_journal_without_repeating_a_write(start_bot: StartBot) -> None:
    bot = await start_bot()
    request_id, _ = await _ship_left_applying(bot)
    await bot.stop()
    bot = await start_bot()  # recovery on start-up
    assert await _final(bot, request_id) is RequestStatus.APPLIED
    record = await bot.store.sandbox_get("sbx-1")
    assert record is not None and len(record["decisions"]) == 1  # confirmed by reading, not sent again
    snap = await _sandbox(bot).get("sbx-1")
    assert snap.status is Status.COMPLETED and snap.weights()["treatment"] == 100
    journal = bot.store.journal(request_id)
    assert [e.status for e in journal.values()] == ["done", "done"]
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1" and "applied" in a["text"])
    assert "confirmed after a restart" in note[-1].args["text"]


async def test_two_recoveries_at_once_send_a_plan_once(start_bot: StartBot) -> None:
    bot = await start_bot(SLOW)
    request_id, answers = await _ship_left_applying(bot)
    await bot.store.step_finished(request_id, 0, "done", answers[0])  # step 1 done, step 2 never sent
    other = build(bot.runtime.settings, register)  # a second process on the same database
    try:
        await asyncio.gather(bot.runtime.workflow.recover(), other.workflow.recover())
    finally:
        other.store.close()
    assert await _final(bot, request_id) is RequestStatus.APPLIED
    rollouts = [
        e for e in bot.store.audit_events(1, 500) if e.action == "provider.call" and "/rollout" in e.detail["call"]
    ]
    assert len(rollouts) == 1 and _decisions(bot) == 1
    applied = [
        e for e in bot.store.audit_events(1, 500) if e.action == "request.applied" and e.request_id == request_id
    ]
    assert len(applied) == 1


async def test_two_card_refreshes_at_once_post_one_card(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", error="not_in_channel")
    await bot.player.command("new sandbox")
    await bot.slack.wait_for_async("views.open")
    await bot.player.submit(list(bot.slack.views)[-1], {"name": "Lonely"})
    await bot.until(lambda: bot.store.experiments())
    await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1")  # told why, card missing
    experiments = bot.runtime.workflow.experiments
    before = len(bot.slack.calls("chat.postMessage"))
    await asyncio.gather(*(experiments.refresh_card(1) for _ in range(3)))
    cards = [c for c in bot.slack.calls("chat.postMessage")[before:] if "Lonely" in c.args.get("text", "")]
    assert len(cards) == 1 and bot.store.experiment(1).card_ts == bot.slack.messages("C1")[-1]["ts"]


async def test_a_provider_id_that_looks_like_a_ref_can_be_reached(bot: Bot) -> None:
    await bot.new_sandbox("Ours")
    lookalike = Snapshot(remote_id="exp-7", name="Lookalike", status=Status.DRAFT)
    twin = Snapshot(remote_id="exp-1", name="Twin", status=Status.DRAFT)
    await bot.store.add_experiment("sandbox", lookalike, "C1", "U1")
    await bot.store.add_experiment("sandbox", twin, "C1", "U1")
    experiments = bot.runtime.workflow.experiments
    assert experiments.find("exp-7", "u").name == "Lookalike"  # no exp-7 of ours: the provider's id wins
    assert experiments.find("exp-1", "u").name == "Ours"  # ours first …
    assert experiments.find("sandbox:exp-1", "u").name == "Twin"  # … and the provider's reachable by name
    shown = await bot.player.command("show sandbox:exp-7")
    assert "Lookalike" in shown.json()["text"]


async def test_a_write_lock_held_elsewhere_never_delays_acknowledgements(bot: Bot) -> None:
    await bot.new_sandbox()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('BEGIN IMMEDIATE');"
            " print('locked', flush=True); sys.stdin.readline(); c.rollback()",
            bot.store.path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        ramp = await bot.player.command("ramp exp-1 25")  # acked, then waits for the lock off the loop
        assert ramp.status_code == 200
        for text in ("help", "list", "show exp-1", "audit exp-1"):  # answered while the ramp waits
            answer = await asyncio.wait_for(bot.player.command(text), timeout=8)
            assert answer.status_code == 200 and answer.json()["text"]
        assert bot.all_requests() == []  # the ramp is still waiting for the lock
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(10)
    req = await bot.until(lambda: next((r for r in bot.all_requests() if r.message_ts), None), timeout=15)
    assert req.change.exposure == 25
