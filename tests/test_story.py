"""The core loop through real HTTP: create, request, refuse self-approval, approve, apply, audit."""

from __future__ import annotations

import json

from bot.models import RequestStatus
from tests.conftest import Bot


def _json(resp: object) -> dict:
    return json.loads(resp.text)  # type: ignore[attr-defined]


async def test_create_request_approve_apply_audit(bot: Bot) -> None:
    slack, player = bot.slack, bot.player
    exp = await bot.new_sandbox("Checkout button", variants="control, green")
    assert exp.ref == "exp-1" and exp.card_ts and exp.channel == "C1"
    card = slack.message("C1", exp.card_ts)
    assert card is not None and "Checkout button" in card["text"]
    assert player.has_button("C1", exp.card_ts, "card_start")
    assert not player.has_button("C1", exp.card_ts, "card_pause")  # a draft cannot be paused

    req = await bot.request("ramp exp-1 25")
    msg = slack.message("C1", req.message_ts)
    assert msg is not None and msg["thread_ts"] == exp.card_ts
    blocks = json.dumps(msg["blocks"])
    assert "10%" in blocks and "25%" in blocks and "PATCH /sandbox/experiments/sbx-1" in blocks
    approve = next(
        e for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "request_approve"
    )
    assert approve["confirm"]["confirm"]["text"] == "Approve"
    assert msg["text"]  # text fallback for notifications

    resp = await player.click("C1", req.message_ts, "request_approve", user="U1")
    assert resp.status_code == 200
    refusal = await slack.wait_for_async("chat.postEphemeral", lambda a: a["user"] == "U1")
    assert "someone else has to approve" in refusal[-1].args["text"]
    assert bot.store.request(req.id).status is RequestStatus.PENDING
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).exposure == 10

    await player.click("C1", req.message_ts, "request_approve", user="U2")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert done.status is RequestStatus.APPLIED and done.decided_by == "U2"  # the approver decided, not the bot
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).exposure == 25
    await slack.wait_for_async("chat.postMessage", lambda a: a.get("channel") == "U1" and "was applied" in a["text"])
    edited = slack.message("C1", req.message_ts)
    assert "Applied" in json.dumps(edited["blocks"]) and not player.has_button("C1", req.message_ts, "request_approve")
    assert "25%" in slack.message("C1", exp.card_ts)["text"]

    audit = _json(await player.command("audit exp-1"))
    assert audit["response_type"] == "ephemeral"
    for step in (
        "create sbx-1",
        "experiment.created",
        "request.created",
        "request.approval",
        "request.approved",
        "request.applying",
        "request.applied",
        "PATCH /sandbox/experiments/sbx-1",
    ):
        assert step in audit["text"], step
    assert "xoxb-test" not in audit["text"]


async def test_help_list_show_are_answered_in_the_ack(bot: Bot) -> None:
    await bot.new_sandbox("Onboarding")
    calls_before = len(bot.slack.calls())
    help_body = _json(await bot.player.command("help"))
    assert "/experiment ramp <ref> <percent>" in help_body["text"]
    listing = _json(await bot.player.command("list sandbox draft"))
    assert "exp-1" in listing["text"] and "Onboarding" in listing["text"]
    assert "No experiments" in _json(await bot.player.command("list running"))["text"]
    shown = _json(await bot.player.command("show exp-1"))
    assert "draft" in shown["text"] and "control" in shown["text"]
    assert len(bot.slack.calls()) == calls_before  # no extra Web API round trip


async def test_bad_input_changes_nothing(bot: Bot) -> None:
    await bot.new_sandbox()
    for text, needle in (
        ("ramp exp-1", "Usage: `/experiment ramp <ref> <percent>`"),
        ("ramp exp-9 20", "No tracked experiment `exp-9`"),
        ("split exp-1 control=70 treatment=20", "add up to 90"),
        ("wat", "Try `/experiment help`"),
        ("new nosuch", "Unknown or disabled provider `nosuch`"),
    ):
        body = _json(await bot.player.command(text))
        assert body["response_type"] == "ephemeral" and needle in body["text"], (text, body)
    assert bot.all_requests() == []


async def test_provider_refusal_is_explained(bot: Bot) -> None:
    await bot.new_sandbox()
    resp = await bot.player.command("pause exp-1")
    assert resp.status_code == 200
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "cannot pause" in a["text"])
    assert told[-1].args["channel"] == "C1" and told[-1].args["user"] == "U1"
    assert bot.all_requests() == []


async def test_card_refused_by_slack_is_explained_and_posted_later(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", error="not_in_channel")
    await bot.player.command("new sandbox")
    await bot.slack.wait_for_async("views.open")
    resp = await bot.player.submit(list(bot.slack.views)[-1], {"name": "Hidden"})
    assert resp.status_code == 200
    dm = await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1")
    assert "not_in_channel" in dm[-1].args["text"] and "/invite @expbot" in dm[-1].args["text"]
    exp = bot.store.experiment(1)
    assert exp is not None and exp.card_ts is None  # tracked all the same: nothing is lost
    req = await bot.request("ramp exp-1 20")
    exp = bot.store.experiment(1)
    assert exp.card_ts and bot.slack.message("C1", req.message_ts)["thread_ts"] == exp.card_ts


async def test_every_message_has_fallback_text_and_manifest_scopes_cover_the_calls(bot: Bot) -> None:
    from tests.test_manifest import manifest

    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(req.id).status.final)
    await bot.slack.wait_for_async("chat.postMessage", lambda a: a["channel"] == "U1")
    posts = bot.slack.calls("chat.postMessage") + bot.slack.calls("chat.update")
    assert posts and all(c.args.get("text") for c in posts)
    needs = {
        "chat.postMessage": "chat:write",
        "chat.update": "chat:write",
        "chat.postEphemeral": "chat:write",
        "usergroups.users.list": "usergroups:read",
        "users.info": "users:read",
        "chat.getPermalink": None,
        "auth.test": None,
        "views.open": None,
        "views.update": None,
        "views.publish": None,
    }
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    for call in bot.slack.calls():
        assert call.method in needs, f"{call.method} has no known scope"
        assert needs[call.method] is None or needs[call.method] in scopes
