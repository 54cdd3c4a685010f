"""Changes and actions end to end: provider actions with no approval, archive and restore, a create that partly
fails, and user text that reaches Slack only escaped."""

from __future__ import annotations

import json

from bot.models import RequestStatus
from providers.sandbox import SandboxProvider
from tests.conftest import Bot, mrkdwn_texts

EVIL = "<!channel> <https://evil.example|approve here>"


def _sandbox(bot: Bot) -> SandboxProvider:
    found = bot.runtime.workflow.providers["sandbox"]
    assert isinstance(found, SandboxProvider)
    return found


async def test_a_provider_action_is_carried_out_at_once_journaled_and_audited(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    assert bot.player.has_button("C1", exp.card_ts, "card_action")
    await bot.player.click("C1", exp.card_ts, "card_action", user="U3")
    req = await bot.until(lambda: next((r for r in bot.all_requests() if r.status.final), None))
    assert req.status is RequestStatus.APPLIED and req.required == 0 and req.approvals == ()
    assert req.requested_by == "U3" and req.change.action == "submit_review"
    record = await bot.store.sandbox_get("sbx-1")
    assert record is not None and record["reviews"] == [{"id": "rev-1"}]
    assert [e.status for e in bot.store.journal(req.id).values()] == ["done"]
    actions = [e.action for e in bot.store.audit_events(1, 100) if e.request_id == req.id]
    assert actions[0] == "request.created" and "provider.call" in actions and actions[-1] == "request.applied"
    await bot.until(lambda: not bot.player.has_button("C1", exp.card_ts, "card_action"))  # offered once
    await bot.until(lambda: "Applied" in json.dumps(bot.slack.message("C1", req.message_ts)["blocks"]))
    assert not bot.player.has_button("C1", req.message_ts, "request_approve")


async def test_archive_and_restore_need_approval_like_any_change(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    archive = await bot.request("archive exp-1")
    assert bot.store.request(archive.id).status is RequestStatus.PENDING
    await bot.player.click("C1", archive.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(archive.id).status is RequestStatus.APPLIED)
    await bot.until(lambda: bot.player.has_button("C1", exp.card_ts, "card_restore"))
    assert not bot.player.has_button("C1", exp.card_ts, "card_start")
    restore = await bot.request("restore sandbox:sbx-1")
    await bot.player.click("C1", restore.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(restore.id).status is RequestStatus.APPLIED)
    assert (await _sandbox(bot).get("sbx-1")).status.value == "draft"


async def test_a_create_that_partly_fails_is_tracked_and_says_what_is_missing(bot: Bot) -> None:
    _sandbox(bot).faults.inject("server_error", skip=2)
    await bot.player.command("new sandbox")
    await bot.slack.wait_for_async("views.open")
    await bot.player.submit(list(bot.slack.views)[-1], {"name": "Partial", "variants": "control, a, b"})
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: "not all of it" in a.get("text", ""))
    exp = bot.store.experiment(1)
    assert exp is not None and exp.card_ts and note[-1].args["thread_ts"] == exp.card_ts
    assert "variant `a`" in note[-1].args["text"] and "503" not in exp.name
    assert [v.key for v in exp.snapshot.variants] == ["control", "b"]


async def test_a_note_waits_for_its_card_then_goes_into_its_thread(bot: Bot) -> None:
    _sandbox(bot).faults.inject("server_error", skip=2)
    bot.slack.fail_next("chat.postMessage", error="not_in_channel")  # the card cannot be posted yet
    await bot.player.command("new sandbox")
    await bot.slack.wait_for_async("views.open")
    await bot.player.submit(list(bot.slack.views)[-1], {"name": "Hidden", "variants": "control, a, b"})
    await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1" and "not_in_channel" in a["text"])
    assert [r.key for r in bot.store.outbox_rows("pending")] == ["note:1:created"]  # waiting, not lost
    req = await bot.request("ramp exp-1 20")  # the next change posts the card …
    card_ts = bot.store.experiment(1).card_ts
    assert card_ts and bot.slack.message("C1", req.message_ts)["thread_ts"] == card_ts
    note = await bot.slack.wait_for_async(
        "chat.postMessage", lambda a: "not all of it" in a.get("text", ""), timeout=15
    )
    assert note[-1].args["thread_ts"] == card_ts  # … and the note follows into its thread


async def test_a_hostile_name_never_pings_or_hides_a_link_anywhere(bot: Bot) -> None:
    await bot.player.command("new sandbox")
    await bot.slack.wait_for_async("views.open")
    await bot.player.submit(list(bot.slack.views)[-1], {"name": EVIL})
    exp = await bot.until(lambda: (e := bot.store.experiment(1)) and e.card_ts and e)
    req = await bot.request("start exp-1")
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(req.id).status.final)
    await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1")
    for text in ("show exp-1", "list", "audit exp-1"):
        answer = (await bot.player.command(text)).json()["text"]
        assert "<!channel>" not in answer and "<https://evil" not in answer and "&lt;!channel&gt;" in answer
    await bot.player.click("C1", exp.card_ts, "card_exposure", user="U1")
    await bot.slack.wait_for_async("views.open", count=2)
    seen = 0
    for call in bot.slack.calls():
        args = call.args
        texts = [args["text"]] if isinstance(args.get("text"), str) else []
        texts += mrkdwn_texts(args.get("blocks") or []) + mrkdwn_texts(args.get("view") or {})
        for text in texts:
            assert "<!channel>" not in text and "<https://evil" not in text, (call.method, text)
            seen += "&lt;!channel&gt;" in text
    assert seen >= 5  # the card, the request, its confirm dialog, the DM and the modal all named it, escaped
