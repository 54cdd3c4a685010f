"""Modals: generated from the draft model, provider select swapping fields, inline errors, card buttons, track."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from bot.errors import FieldErrors
from bot.forms import field_blocks, field_default, parse_draft, submitted
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


async def test_choices_come_from_the_provider_and_a_pick_rebuilds_the_modal(bot: Bot) -> None:
    await bot.player.command("new sandbox")
    await bot.slack.wait_for_async("views.open")
    view_id = list(bot.slack.views)[-1]
    template = next(b for b in bot.slack.view(view_id)["blocks"] if b.get("block_id") == "template")
    assert template["element"]["type"] == "external_select" and template["element"]["min_query_length"] == 0
    assert template["dispatch_action"] is True
    sticky = next(b for b in bot.slack.view(view_id)["blocks"] if b.get("block_id") == "sticky")
    assert sticky["element"]["type"] == "checkboxes" and sticky["element"]["initial_options"]
    offered = await bot.player.suggest(view_id, "template", "")
    assert [o["value"] for o in offered] == ["two-way", "three-way", "five-way"]
    assert [o["value"] for o in await bot.player.suggest(view_id, "template", "A/B/C")] == ["three-way"]
    await bot.player.select_in_view(view_id, "choices", "five-way")
    updated = (await bot.slack.wait_for_async("views.update"))[-1].args["view"]
    variants = next(b for b in updated["blocks"] if b.get("block_id") == "variants")
    assert variants["element"]["initial_value"] == "control, a, b, c, d"
    resp = await bot.player.submit(view_id, {"name": "Five ways", "sticky": []})
    assert resp.status_code == 200 and resp.text == ""
    exp = await bot.until(lambda: next(iter(bot.store.experiments()), None))
    assert len(exp.snapshot.variants) == 5
    record = await bot.store.sandbox_get(exp.remote_id)
    assert record is not None and record["sticky"] is False


async def test_a_provider_refusing_the_create_is_shown_inline_word_for_word(bot: Bot) -> None:
    sandbox = bot.runtime.workflow.providers["sandbox"]
    sandbox.faults.inject("conflict")  # type: ignore[attr-defined]
    await bot.player.command("new sandbox")
    await bot.slack.wait_for_async("views.open")
    resp = await bot.player.submit(list(bot.slack.views)[-1], {"name": "Second draft"})
    assert resp.json() == {
        "response_action": "errors",
        "errors": {"name": "the experiment is in a state that does not allow this"},
    }
    assert bot.store.experiments() == []
    ok = await bot.player.submit(list(bot.slack.views)[-1], {"name": "Second draft"})  # fixed: submit again
    assert ok.status_code == 200 and ok.text == ""
    await bot.until(lambda: bot.store.experiments())


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
    exp = await bot.until(
        lambda: (e := bot.store.experiment_by_remote("sandbox", made_elsewhere.remote_id)) and e.card_ts and e
    )
    for spelling in (made_elsewhere.remote_id, " SBX-01 ".strip(), "sandbox:sbx-1"):
        again = await bot.player.command(f"track sandbox {spelling.removeprefix('sandbox:')}")
        answer = again.json()["text"]
        assert "already tracked as `exp-1`" in answer and f"/archives/C1/p{exp.card_ts.replace('.', '')}" in answer
    await bot.player.command("track sandbox sbx-404")
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: "does not exist" in a["text"])
    assert told and len(bot.store.experiments()) == 1


async def test_tracking_a_tracked_experiment_answers_in_time_when_slack_is_slow(bot: Bot) -> None:
    await bot.new_sandbox("Checkout")
    gate = bot.slack.hold("chat.getPermalink")  # Slack takes the permalink call in and does not answer
    try:
        again = await bot.player.command("track sandbox sbx-1")
        answer = again.json()["text"]
        assert "already tracked as `exp-1`" in answer and "/archives/" not in answer
    finally:
        gate.set()
    assert len(bot.store.experiments()) == 1


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


class _Row(BaseModel):
    key: str = Field(min_length=1)
    weight: float = Field(ge=0, le=100)


class _Rows(BaseModel):
    name: str
    rows: list[_Row] = Field(default_factory=lambda: [_Row(key="control", weight=50), _Row(key="b", weight=50)])
    fast: bool = False


def test_repeated_rows_and_checkboxes_round_trip() -> None:
    blocks = [b.to_dict() for n, f in _Rows.model_fields.items() for b in field_blocks(n, f, field_default(f, {}, n))]
    ids = [b["block_id"] for b in blocks]
    assert ids == ["name", "rows.0.key", "rows.0.weight", "rows.1.key", "rows.1.weight", "fast"]
    assert blocks[2]["element"] == {
        "type": "number_input",
        "action_id": "value",
        "is_decimal_allowed": True,
        "initial_value": "50",
        "min_value": "0",
        "max_value": "100",
    }
    assert blocks[-1]["element"]["type"] == "checkboxes" and blocks[-1]["optional"] is True
    view = {
        "state": {
            "values": {
                "name": {"value": {"type": "plain_text_input", "value": "N"}},
                "rows.0.key": {"value": {"type": "plain_text_input", "value": "control"}},
                "rows.0.weight": {"value": {"type": "number_input", "value": "25.5"}},
                "rows.1.key": {"value": {"type": "plain_text_input", "value": "b"}},
                "rows.1.weight": {"value": {"type": "number_input", "value": "74.5"}},
                "fast": {"value": {"type": "checkboxes", "selected_options": [{"value": "true"}]}},
            }
        }
    }
    parsed = parse_draft(_Rows, submitted(view))
    assert parsed == _Rows(name="N", rows=[_Row(key="control", weight=25.5), _Row(key="b", weight=74.5)], fast=True)
    view["state"]["values"]["rows.1.weight"]["value"]["value"] = "140"
    with pytest.raises(FieldErrors) as err:
        parse_draft(_Rows, submitted(view))
    assert list(err.value.errors) == ["rows.1.weight"]
