"""Slack never shows a lie: edits, notes and DMs go through the outbox, survive Slack failures and crashes,
and an older state never overwrites a newer one, whichever process sends it."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import build
from bot.models import ChangeRequest, Experiment, OutboxItem, RequestStatus
from bot.outbox import Outbox
from bot.views import Message
from commands import register
from tests.conftest import SECRET, Bot, StartBot
from tests.slackfake.player import SlackPlayer
from tests.slackfake.web_api import FakeSlack
from tests.test_serve_process import _until, serve


def _shows_applied(bot: Bot, ts: str | None) -> bool:
    msg = bot.slack.message("C1", ts)
    return (
        bool(msg) and "Applied" in json.dumps(msg["blocks"]) and not bot.player.has_button("C1", ts, "request_approve")
    )


async def _approved(bot: Bot, req: ChangeRequest) -> None:
    """Bob approves `req` in its thread; returns once it is applied in the store."""
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(req.id).status is RequestStatus.APPLIED)


async def _settled(bot: Bot, ts: str | None) -> None:
    """The request message at `ts` shows it applied and nothing is left to send."""
    await bot.until(lambda: _shows_applied(bot, ts), timeout=20)
    await bot.until(lambda: bot.store.outbox_stats().depth == 0, timeout=20)


async def test_edits_and_dms_that_fail_are_retried_until_slack_takes_them(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    req = await bot.request("ramp exp-1 25")
    bot.slack.fail_next("chat.update", error="internal_error", times=3)
    await _approved(bot, req)
    await bot.until(lambda: _shows_applied(bot, req.message_ts), timeout=20)
    await bot.until(lambda: "exposure 25%" in bot.slack.message("C1", exp.card_ts)["text"], timeout=20)
    dms = await bot.slack.wait_for_async(
        "chat.postMessage", lambda a: a["channel"] == "U1" and "was applied" in a["text"]
    )
    assert len(dms) == 1
    told = [e for e in bot.slack.ephemerals if e.get("user") == "U2"]
    assert not told  # the approver is never told to "try again" for a change that went through
    await bot.until(lambda: bot.store.outbox_stats().depth == 0, timeout=20)  # nothing left behind


async def test_edits_and_dms_whose_connections_drop_are_retried_and_the_approver_hears_nothing(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    req = await bot.request("ramp exp-1 25")
    # Slack hangs up on three edits and on the DM twice: more than slack_sdk's own connection retry covers
    bot.slack.fail_next("chat.update", hang_up=True, times=3)
    bot.slack.fail_next("chat.postMessage", hang_up=True, times=2)
    await _approved(bot, req)
    await bot.until(lambda: _shows_applied(bot, req.message_ts), timeout=20)
    await bot.until(lambda: "exposure 25%" in bot.slack.message("C1", exp.card_ts)["text"], timeout=20)
    await bot.until(lambda: bot.store.outbox_stats().depth == 0, timeout=20)
    tries = [c for c in bot.slack.calls("chat.postMessage") if c.args["channel"] == "U1"]
    assert len(tries) == 3  # dropped twice, then taken
    assert len([m for m in bot.slack.messages() if "was applied" in m.get("text", "")]) == 1  # one DM
    assert not [e for e in bot.slack.ephemerals if e.get("user") == "U2"]  # no "try again" for an applied change
    assert bot.store.outbox_stats().dead == 0


async def test_a_message_that_fails_to_build_is_kept_and_retried_never_raised(bot: Bot) -> None:
    await bot.new_sandbox()
    req = await bot.request("ramp exp-1 25")
    experiments = bot.runtime.workflow.experiments
    built = 0

    def first_one_breaks(r: ChangeRequest, e: Experiment) -> Message:
        nonlocal built
        built += 1
        if built == 1:
            raise KeyError("a bug in a view")
        return experiments.request_message(r, e)

    threads = bot.runtime.workflow.threads
    outbox = Outbox(bot.store, threads, experiments.card_message, first_one_breaks, "another-process")
    assert await outbox.send([OutboxItem.request(req.id)]) == {}  # nothing raised, nothing given up
    assert bot.store.outbox_stats().depth == 1  # kept for a retry
    for _ in range(100):
        if bot.store.outbox_stats().depth == 0:
            break
        await asyncio.sleep(0.05)
        await outbox.drain()
    assert bot.store.outbox_stats().depth == 0 and bot.store.outbox_stats().dead == 0


async def test_three_429s_on_an_edit_are_waited_out(bot: Bot) -> None:
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    bot.slack.fail_next("chat.update", status=429, error="ratelimited", retry_after=1, times=3)
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: _shows_applied(bot, req.message_ts), timeout=20)
    retried = bot.runtime.metrics.slack_api_retries.labels("ratelimited")._value.get()
    assert retried >= 2


async def test_an_approved_change_is_applied_while_slack_is_still_taking_the_edit(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    req = await bot.request("ramp exp-1 25")
    gate = bot.slack.hold("chat.update")  # a slow Slack: the "approved, applying" edit is not answered yet
    try:
        await _approved(bot, req)
        sandbox = bot.runtime.workflow.providers["sandbox"]
        assert (await sandbox.get(exp.snapshot.remote_id)).exposure == 25
        assert not _shows_applied(bot, req.message_ts)  # Slack has not answered a single edit so far
    finally:
        gate.set()
    await _settled(bot, req.message_ts)


async def test_the_next_change_on_an_experiment_never_waits_for_slack_to_take_the_last_ones_edits(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    first = await bot.request("ramp exp-1 25")
    gate = bot.slack.hold("chat.update")  # Slack takes no edit in: the first change's edits and DM stay queued
    try:
        await _approved(bot, first)
        second = await bot.request("ramp exp-1 40")
        await _approved(bot, second)
        sandbox = bot.runtime.workflow.providers["sandbox"]
        assert (await sandbox.get(exp.snapshot.remote_id)).exposure == 40
    finally:
        gate.set()
    await _settled(bot, second.message_ts)


async def test_a_permanent_refusal_is_given_up_once_and_counted(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    await bot.runtime.workflow.experiments.outbox.send([OutboxItem.note(exp.id, "x", "hello")])
    bot.slack.fail_next("chat.postMessage", error="is_archived", times=5)
    refused = await bot.runtime.workflow.experiments.outbox.send([OutboxItem.note(exp.id, "y", "again")])
    assert "note:1:y" in refused and bot.store.outbox_stats().dead == 1
    assert "expbot_outbox_given_up 1.0" in bot.runtime.metrics.render().decode()


async def test_two_processes_racing_edits_of_one_request_end_on_the_latest_state(start_bot: StartBot) -> None:
    bot = await start_bot("[approvals]\nrequired = 2\n")
    await bot.new_sandbox()
    req = await bot.request("ramp exp-1 20")
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: "Approvals 1/2" in json.dumps(bot.slack.message("C1", req.message_ts)["blocks"]))
    other = build(bot.runtime.settings, register)  # a second process on the same database
    try:
        gate = bot.slack.hold("chat.update")
        before = len(bot.slack.calls("chat.update"))
        slow = asyncio.create_task(bot.runtime.workflow.experiments.outbox.send([OutboxItem.request(req.id)]))
        await bot.slack.wait_for_async("chat.update", count=before + 1)  # process A is sending "1/2 approvals"
        rejected = [OutboxItem.request(req.id)]
        assert await other.store.transition(
            req.id, [RequestStatus.PENDING], RequestStatus.REJECTED, "U3", deliver=rejected
        )
        assert await other.workflow.experiments.outbox.drain() == {}  # B may not send while A holds the message
        gate.set()
        await slow
    finally:
        other.store.close()
    await bot.until(lambda: "Rejected" in json.dumps(bot.slack.message("C1", req.message_ts)["blocks"]))
    await asyncio.sleep(0.3)  # let anything still in flight land: nothing older may come after
    assert not bot.player.has_button("C1", req.message_ts, "request_approve")
    updates = [c for c in bot.slack.calls("chat.update") if c.args.get("ts") == req.message_ts]
    assert "Rejected" in json.dumps(updates[-1].args["blocks"])


@pytest.fixture
def slow_served(slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    yield from serve(slack, tmp_path, '[providers.sandbox]\nlatency = "1s"\n')


async def test_a_kill_between_the_apply_and_the_edits_is_repaired_on_restart(
    slack: FakeSlack, slow_served: tuple[str, subprocess.Popen[str], Path], start_bot: StartBot
) -> None:
    base, proc, home = slow_served
    player = SlackPlayer(base + "/slack/events", SECRET, slack)
    db = home / "expbot.db"

    def status() -> str | None:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT status, message_ts FROM requests WHERE id = 1").fetchone()
        return row[0] if row and row[1] else None

    try:
        await player.command("new sandbox", user="U1", channel="C1")
        await slack.wait_for_async("views.open")
        await player.submit(list(slack.views)[-1], {"name": "Crashy"})
        card = (await slack.wait_for_async("chat.postMessage", lambda a: "Crashy" in a.get("text", "")))[-1]
        await player.command("ramp exp-1 25", user="U1", channel="C1")
        await _until(lambda: status() == "pending")  # posted in the thread, and its message recorded
        request_ts = slack.thread("C1", slack.messages("C1")[0]["ts"])[0]["ts"]
        edits = len(slack.calls("chat.update"))
        await player.click("C1", request_ts, "request_approve", user="U2")
        await slack.wait_for_async("chat.update", count=edits + 1)  # "approved, applying…" went out
        gate = slack.hold("chat.update")  # from now on Slack takes edits in, but answers none
        await _until(lambda: status() == "applied", timeout=20)
        proc.send_signal(signal.SIGKILL)  # killed between the apply and its edits
        proc.wait(10)
        slack.fail_next("chat.update", error="internal_error", times=50)  # what was in flight never lands
        gate.set()
        await asyncio.sleep(0.2)
        slack.fail_next("chat.update", error="internal_error", times=0)
    finally:
        await player.aclose()
    assert card  # the card was posted before the crash
    bot = await start_bot()  # restart on the same database: the outbox is driven again
    await bot.until(lambda: _shows_applied(bot, request_ts), timeout=20)
    await bot.until(
        lambda: (
            "exposure 25%" in bot.slack.message("C1", card.args.get("ts") or bot.store.experiment(1).card_ts)["text"]
        )
    )
    dms = [c for c in slack.calls("chat.postMessage") if c.args["channel"] == "U1" and "was applied" in c.args["text"]]
    assert len(dms) == 1
