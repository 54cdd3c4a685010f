"""Modals: generated from the draft model, provider select swapping fields, inline errors, card buttons, track."""

from __future__ import annotations

import json

from bot.models import RequestStatus
from providers.sandbox import SandboxDraft
from tests.conftest import Bot, StartBot


async def test_new_without_provider_swaps_fields_in_place(bot: Bot) -> None:
    await bot.player.command("new")
    opened = (await bot.slack.wait_for_async("views.open"))[-1]
    view = opened.args["view"]
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["provider"]
    view_id = list(bot.slack.views)[-1]
    await bot.player.select_in_view(view_id, "provider_select", "sandbox")
    updated = (await bot.slack.wait_for_async("views.update"))[-1]
    assert updated.args["view_id"] == view_id
    inputs = [b for b in updated.args["view"]["blocks"] if b["type"] == "input"]
    assert [b["block_id"] for b in inputs] == ["provider", *SandboxDraft.model_fields]
    by_id = {b["block_id"]: b for b in inputs}
    assert by_id["variants"]["element"]["initial_value"] == "control, treatment"
    assert by_id["exposure"]["element"]["type"] == "number_input"
    assert by_id["exposure"]["element"]["initial_value"] == "10"
    assert by_id["name"]["element"]["max_length"] == 80

    bad = await bot.player.submit(view_id, {"name": "  ", "variants": "only"})
    body = bad.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"name", "variants"}
    assert bot.store.experiments() == []

    good = await bot.player.submit(view_id, {"name": "Pricing page", "variants": "control, cheap, dear"})
    assert good.status_code == 200 and good.text == ""
    await bot.slack.wait_for_async("chat.postMessage", lambda a: "Pricing page" in a.get("text", ""))
    exp = bot.store.experiments()[-1]
    assert [v.weight for v in exp.snapshot.variants] == [34, 33, 33]


async def test_submit_without_provider_is_an_inline_error(bot: Bot) -> None:
    await bot.player.command("new")
    await bot.slack.wait_for_async("views.open")
    resp = await bot.player.submit(list(bot.slack.views)[-1], {})
    assert resp.json() == {"response_action": "errors", "errors": {"provider": "Pick a provider."}}


async def test_status_channel_from_config(start_bot: StartBot) -> None:
    bot = await start_bot('[slack]\nchannel = "C0STATUS"\n')
    exp = await bot.new_sandbox(channel="C9")
    assert exp.channel == "C0STATUS" and bot.slack.message("C0STATUS", exp.card_ts)


async def test_card_buttons_make_requests(start_bot: StartBot) -> None:
    bot = await start_bot("[approvals]\nmax_step = 30\n")
    exp = await bot.new_sandbox()
    await bot.player.click("C1", exp.card_ts, "card_start", user="U3")
    req = await bot.until(lambda: next(iter(bot.all_requests()), None))
    assert req.requested_by == "U3" and req.change.kind.value == "start"

    await bot.player.click("C1", exp.card_ts, "card_exposure", user="U3")
    opened = (await bot.slack.wait_for_async("views.open"))[-1]
    assert opened.args["view"]["callback_id"] == "change_request"
    view_id = list(bot.slack.views)[-1]
    too_big = await bot.player.submit(view_id, {"exposure": "90"}, user="U3")
    assert "at most 30 points" in too_big.json()["errors"]["exposure"]
    ok = await bot.player.submit(view_id, {"exposure": "35"}, user="U3")
    assert ok.text == ""
    ramp = await bot.until(
        lambda: next((r for r in bot.all_requests() if r.change.exposure == 35 and r.message_ts), None)
    )
    assert ramp.status is RequestStatus.PENDING

    await bot.player.click("C1", exp.card_ts, "card_weights", user="U3")
    await bot.slack.wait_for_async("views.open", count=2)
    split_view = list(bot.slack.views)[-1]
    wrong = await bot.player.submit(split_view, {"weight_control": "70", "weight_treatment": "20"}, user="U3")
    assert "add up to 100" in json.dumps(wrong.json())


async def test_track_posts_a_card(bot: Bot) -> None:
    sandbox = bot.runtime.workflow.providers["sandbox"]
    made_elsewhere = (await sandbox.create(SandboxDraft(name="Made elsewhere"))).snapshot
    resp = await bot.player.command(f"track sandbox {made_elsewhere.remote_id}")
    assert "Looking up" in resp.json()["text"]
    await bot.slack.wait_for_async("chat.postMessage", lambda a: "Made elsewhere" in a.get("text", ""))
    exp = bot.store.experiment_by_remote("sandbox", made_elsewhere.remote_id)
    assert exp is not None and exp.card_ts
    for spelling in (made_elsewhere.remote_id, " SBX-01 ".strip(), "sandbox:sbx-1"):
        again = await bot.player.command(f"track sandbox {spelling.removeprefix('sandbox:')}")
        answer = again.json()["text"]
        assert "already tracked as `exp-1`" in answer and f"/archives/C1/p{exp.card_ts.replace('.', '')}" in answer
    await bot.player.command("track sandbox sbx-404")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "does not exist" in a["text"])
    assert told and len(bot.store.experiments()) == 1


async def test_home_tab_lists_experiments(bot: Bot) -> None:
    await bot.new_sandbox("Search ranking")
    resp = await bot.player.event(
        {"type": "app_home_opened", "user": "U2", "channel": "D2", "tab": "home", "event_ts": "1700000000.1"}
    )
    assert resp.status_code == 200
    published = (await bot.slack.wait_for_async("views.publish"))[-1]
    assert published.args["user_id"] == "U2" and "Search ranking" in json.dumps(published.args["view"])


async def test_slack_rate_limit_is_retried(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", status=429, error="ratelimited", retry_after=1)
    exp = await bot.new_sandbox("Retried")
    assert bot.slack.message("C1", exp.card_ts) is not None
    assert len(bot.slack.calls("chat.postMessage")) == 2
