"""Approval policy and request outcomes: double clicks, concurrency, stale, expiry, reject, cancel, eligibility."""

from __future__ import annotations

import asyncio
import json

from bot.models import RequestStatus
from commands.playground.payloads import find_element
from tests.conftest import Bot, StartBot


async def _final(bot: Bot, request_id: int) -> RequestStatus:
    req = await bot.until(lambda: (r := bot.store.request(request_id)).status.final and r)
    return req.status  # type: ignore[no-any-return]


def _patches(bot: Bot) -> int:
    events = bot.store.audit_events(1, limit=500)
    return sum(1 for e in events if e.action == "provider.call" and "PATCH" in str(e.detail.get("call")))


async def test_double_clicks_and_concurrent_approvals_apply_once(bot: Bot) -> None:
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    clicks = [bot.player.click("C1", req.message_ts, "request_approve", user=u) for u in ("U2", "U2", "U3", "U4")]
    responses = await asyncio.gather(*clicks)
    assert all(r.status_code == 200 for r in responses)
    assert await _final(bot, req.id) is RequestStatus.APPLIED
    await asyncio.sleep(0.3)  # let every click finish
    assert _patches(bot) == 1
    sbx = await bot.runtime.workflow.providers["sandbox"].get("sbx-1")
    assert sbx.status.value == "running" and sbx.version == "2"
    applied = [e for e in bot.store.audit_events(1, 500) if e.action == "request.applied"]
    assert len(applied) == 1


async def test_required_approvals_and_repeat_approval(start_bot: StartBot) -> None:
    bot = await start_bot("[approvals]\nrequired = 2\n")
    await bot.new_sandbox()
    req = await bot.request("ramp exp-1 20")
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: "Approvals 1/2" in json.dumps(bot.slack.message("C1", req.message_ts)["blocks"]))
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: a["user"] == "U2")
    assert "already approved" in told[-1].args["text"]
    assert bot.store.request(req.id).status is RequestStatus.PENDING
    await bot.player.click("C1", req.message_ts, "request_approve", user="U3")
    assert await _final(bot, req.id) is RequestStatus.APPLIED


async def test_stale_request_sends_nothing(bot: Bot) -> None:
    await bot.new_sandbox()
    first = await bot.request("ramp exp-1 25")
    second = await bot.request("ramp exp-1 30", user="U3")
    await bot.player.click("C1", first.message_ts, "request_approve", user="U2")
    assert await _final(bot, first.id) is RequestStatus.APPLIED
    await bot.player.click("C1", second.message_ts, "request_approve", user="U2")
    assert await _final(bot, second.id) is RequestStatus.STALE
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: "is *stale*" in a.get("text", ""))
    assert note[-1].args["thread_ts"] == bot.store.experiment(1).card_ts
    assert "25%" in note[-1].args["text"]  # says what changed
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).exposure == 25
    assert not bot.player.has_button("C1", second.message_ts, "request_approve")


async def test_expired_request_is_edited_and_refused(start_bot: StartBot) -> None:
    bot = await start_bot('[approvals]\nexpires_after = "1s"\n')
    await bot.new_sandbox()
    clicked = await bot.request("start exp-1")
    swept = await bot.request("ramp exp-1 50")
    await asyncio.sleep(1.1)
    await bot.player.click("C1", clicked.message_ts, "request_approve", user="U2")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "expired" in a["text"])
    assert told[-1].args["user"] == "U2"
    assert bot.store.request(clicked.id).status is RequestStatus.EXPIRED
    assert await bot.runtime.workflow.decisions.expire_due() == 1
    for req in (clicked, swept):
        msg = bot.slack.message("C1", req.message_ts)
        assert "Expired" in json.dumps(msg["blocks"]) and not bot.player.has_button(
            "C1", req.message_ts, "request_reject"
        )
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).status.value == "draft"
    dms = await bot.slack.wait_for_async(
        "chat.postMessage", lambda a: a["channel"] == "U1" and "expired" in a["text"], count=2
    )
    assert len(dms) == 2


async def test_request_that_cannot_be_posted_is_withdrawn(bot: Bot) -> None:
    await bot.new_sandbox()
    bot.slack.fail_next("chat.postMessage", error="restricted_action_thread_locked")
    await bot.player.command("start exp-1")
    told = await bot.slack.wait_for_async(
        "chat.postEphemeral", lambda a: "restricted_action_thread_locked" in a["text"]
    )
    assert told[-1].args["user"] == "U1"
    [req] = bot.all_requests()
    assert req.status is RequestStatus.CANCELLED and req.outcome == "the request could not be posted in Slack"


async def test_a_post_slack_took_without_answering_is_mended_by_a_click(bot: Bot) -> None:
    """Slack posts the request but its answer is lost, twice (slack_sdk retries a dropped connection once): the
    request is withdrawn with two live copies in the thread. A click on one changes nothing and mends it: the
    first clicked shows the request withdrawn, the other becomes a pointer to it."""
    await bot.new_sandbox()
    bot.slack.fail_next("chat.postMessage", lose_answer=True, times=2)
    await bot.player.command("start exp-1")
    [req] = await bot.until(lambda: [r for r in bot.all_requests() if r.status is RequestStatus.CANCELLED])
    assert req.message_ts is None and req.outcome == "the request could not be posted in Slack"
    copies = [m for m in bot.slack.messages("C1") if find_element(m.get("blocks") or [], "request_approve")]
    assert len(copies) == 2
    other = await bot.request("ramp exp-1 20")  # a click forged to name the withdrawn request mends nothing
    await bot.player.click("C1", other.message_ts, "request_approve", user="U2", value=str(req.id))
    assert await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "does not belong" in a["text"])
    assert bot.store.request(req.id).message_ts is None
    assert find_element(bot.slack.message("C1", other.message_ts)["blocks"], "request_approve")

    await bot.player.click("C1", copies[0]["ts"], "request_approve", user="U2")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "was withdrawn" in a["text"])
    assert told[-1].args["user"] == "U2" and "not be posted in Slack; nothing was changed" in told[-1].args["text"]
    first = copies[0]["ts"]
    mended = await bot.until(
        lambda: (m := bot.slack.message("C1", first)) and not find_element(m["blocks"], "request_approve") and m
    )
    assert "cancelled" in json.dumps(mended["blocks"]).lower()
    assert bot.store.request(req.id).message_ts == first
    assert any(e.action == "request.message_found" and e.actor == "U2" for e in bot.store.audit_events(1, 100))
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).status.value == "draft"

    second = copies[1]["ts"]
    await bot.player.click("C1", second, "request_approve", user="U2")  # the other copy becomes a pointer to it
    assert await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "second copy" in a["text"])
    await bot.until(lambda: not find_element(bot.slack.message("C1", second)["blocks"], "request_approve"))
    assert bot.store.request(req.id).message_ts == first


async def test_a_second_post_of_a_request_is_told_apart_when_clicked(bot: Bot) -> None:
    """Slack takes the post but its answer is lost; slack_sdk's retry posts it again and gets the answer. The first
    post is a copy with live buttons: a click on it decides nothing and turns it into a pointer, for good."""
    await bot.new_sandbox()
    bot.slack.fail_next("chat.postMessage", lose_answer=True)
    req = await bot.request("start exp-1")
    copies = [m for m in bot.slack.messages("C1") if find_element(m.get("blocks") or [], "request_approve")]
    assert [m["ts"] for m in copies][1:] == [req.message_ts] and len(copies) == 2
    copy = copies[0]["ts"]

    await bot.player.click("C1", copy, "request_approve", user="U2")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "second copy" in a["text"])
    assert told[-1].args["user"] == "U2" and "Nothing was changed" in told[-1].args["text"]
    pointer = await bot.until(
        lambda: (m := bot.slack.message("C1", copy)) and not find_element(m["blocks"], "request_approve") and m
    )
    assert f"second copy of change request #{req.id}" in pointer["text"]
    pending = bot.store.request(req.id)
    assert pending.status is RequestStatus.PENDING and pending.approvals == ()

    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    assert await _final(bot, req.id) is RequestStatus.APPLIED
    await bot.slack.wait_for_async("chat.update", lambda a: a["ts"] == req.message_ts and "applied" in str(a).lower())
    assert bot.slack.message("C1", copy)["text"] == pointer["text"]  # the copy never shows a state again


async def test_reject_and_cancel(bot: Bot) -> None:
    await bot.new_sandbox()
    rejected = await bot.request("start exp-1")
    as_first_seen = bot.slack.message("C1", rejected.message_ts)
    await bot.player.click("C1", rejected.message_ts, "request_reject", user="U1")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "use Cancel" in a["text"])
    assert told
    await bot.player.click("C1", rejected.message_ts, "request_reject", user="U2")
    assert await _final(bot, rejected.id) is RequestStatus.REJECTED
    await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1" and "rejected" in a["text"])
    await bot.player.click("C1", rejected.message_ts, "request_cancel", user="U1", seen=as_first_seen)
    late = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "already rejected" in a["text"])
    assert late

    cancelled = await bot.request("start exp-1")
    await bot.player.click("C1", cancelled.message_ts, "request_cancel", user="U2")
    await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "can cancel request" in a["text"])
    assert bot.store.request(cancelled.id).status is RequestStatus.PENDING
    await bot.player.click("C1", cancelled.message_ts, "request_cancel", user="U1")
    assert await _final(bot, cancelled.id) is RequestStatus.CANCELLED
    await bot.until(lambda: "Cancelled" in json.dumps(bot.slack.message("C1", cancelled.message_ts)["blocks"]))
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).status.value == "draft"


async def test_only_listed_approvers_and_groups(start_bot: StartBot) -> None:
    bot = await start_bot('[approvals]\napprovers = ["U2", "S0GROUP"]\n')
    bot.slack.add_usergroup("S0GROUP", ["U4"])
    await bot.new_sandbox()
    req = await bot.request("ramp exp-1 20")
    await bot.player.click("C1", req.message_ts, "request_approve", user="U3")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: a["user"] == "U3")
    assert "Only approvers" in told[-1].args["text"]
    assert bot.store.request(req.id).approvals == ()
    await bot.player.click("C1", req.message_ts, "request_approve", user="U4")
    assert await _final(bot, req.id) is RequestStatus.APPLIED
    second = await bot.request("ramp exp-1 30")
    await bot.player.click("C1", second.message_ts, "request_approve", user="U3")
    await bot.slack.wait_for_async("chat.postEphemeral", lambda a: a["user"] == "U3", count=2)
    assert len(bot.slack.calls("usergroups.users.list")) == 1  # cached


async def test_self_approval_when_allowed_and_per_provider_override(start_bot: StartBot) -> None:
    bot = await start_bot("[approvals]\nrequired = 3\n[approvals.sandbox]\nrequired = 1\nallow_self_approval = true\n")
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    assert req.required == 1
    await bot.player.click("C1", req.message_ts, "request_approve", user="U1")
    assert await _final(bot, req.id) is RequestStatus.APPLIED


async def test_max_step_refuses_big_ramps(start_bot: StartBot) -> None:
    bot = await start_bot("[approvals]\nmax_step = 20\n")
    await bot.new_sandbox()
    await bot.player.command("ramp exp-1 50")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "at most 20 points" in a["text"])
    assert told and bot.all_requests() == []
    assert (await bot.request("ramp exp-1 30")).change.exposure == 30


async def test_a_failure_mid_plan_is_reported_step_by_step(bot: Bot) -> None:
    await bot.new_sandbox()
    start = await bot.request("start exp-1")
    await bot.player.click("C1", start.message_ts, "request_approve", user="U2")
    assert await _final(bot, start.id) is RequestStatus.APPLIED
    sandbox = bot.runtime.workflow.providers["sandbox"]
    sandbox.faults.inject("server_error", skip=1)  # type: ignore[attr-defined]
    ship = await bot.request("ship exp-1 treatment")
    await bot.player.click("C1", ship.message_ts, "request_approve", user="U2")
    assert await _final(bot, ship.id) is RequestStatus.FAILED
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: "*failed*" in a.get("text", ""))
    text = note[-1].args["text"]
    assert "1 of 2 step(s) applied" in text and "record the decision" in text and "503 Internal Server Error" in text
    calls = [e.detail for e in bot.store.audit_events(1, 500) if e.action == "provider.call" and "step" in e.detail]
    assert [(c["step"], c["status"]) for c in calls if c["call"].startswith(("POST", "PUT"))] == [
        (1, "done"),
        (2, "failed"),
    ]
    await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1" and "failed" in a["text"])
    snap = await sandbox.get("sbx-1")
    assert snap.status.value == "running"  # the card shows what the provider says: nothing was rolled out
    assert "running" in bot.slack.message("C1", bot.store.experiment(1).card_ts)["text"]


async def test_missing_user_group_is_explained(start_bot: StartBot) -> None:
    bot = await start_bot('[approvals]\napprovers = ["S0GONE"]\n')
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "no_such_subteam" in a["text"])
    assert "fix expbot.toml" in told[-1].args["text"]
    assert bot.store.request(req.id).status is RequestStatus.PENDING and bot.store.request(req.id).approvals == ()
