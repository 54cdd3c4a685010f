"""App Store Connect end to end: the real bot, the signed Slack player and the fake App Store Connect on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.models import RequestStatus
from tests.conftest import Bot, StartBot
from tests.contract.harness_appstore import APP_ID, ISSUER, KEY_ID, PEM, new_fake
from tests.fake_appstore import FakeAppStore

EXPERIMENTS = "/v2/appStoreVersionExperiments"


@pytest.fixture
def fake() -> Iterator[FakeAppStore]:
    server = new_fake()
    yield server
    assert server.invalid == [], server.invalid  # every body and query the bot sent validates against the spec
    server.stop()


async def appstore_bot(start_bot: StartBot, fake: FakeAppStore, extra: str = "") -> Bot:
    config = f'[providers.appstore]\nbase_url = "{fake.url}"\napp_id = "{APP_ID}"\n{extra}'
    return await start_bot(config, appstore_issuer_id=ISSUER, appstore_key_id=KEY_ID, appstore_private_key=PEM)


async def create(bot: Bot, name: str = "Icon test", **fields: str) -> int:
    """`/experiment new appstore`, the modal, submit; the id of the tracked experiment."""
    await bot.player.command("new appstore")
    await bot.slack.wait_for_async("views.open")
    view_id = list(bot.slack.views)[-1]
    resp = await bot.player.submit(view_id, {"name": name, **fields})
    assert resp.status_code == 200 and resp.text == "", resp.text
    exp = await bot.until(lambda: next((e for e in bot.store.experiments() if e.card_ts), None))
    return int(exp.id)


def card(bot: Bot, exp_id: int) -> dict[str, object]:
    exp = bot.store.experiment(exp_id)
    assert exp is not None
    found = bot.slack.message(exp.channel, exp.card_ts)
    assert found is not None
    return found


async def applied(bot: Bot, text: str) -> None:
    """Request a change by command, have U2 approve it, and wait until it is applied."""
    req = await bot.request(text)
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert done.status is RequestStatus.APPLIED, (done.status, done.outcome)


async def test_create_submit_approve_start_ramp_ship(start_bot: StartBot, fake: FakeAppStore) -> None:
    bot = await appstore_bot(start_bot, fake)
    await bot.player.command("new appstore")
    opened = (await bot.slack.wait_for_async("views.open"))[-1].args["view"]
    inputs = {b["block_id"]: b for b in opened["blocks"] if b["type"] == "input"}
    assert list(inputs) == ["provider", "name", "app_id", "platform", "traffic_proportion", "treatments"]
    assert inputs["app_id"]["element"]["type"] == "external_select"
    assert inputs["app_id"]["element"]["initial_option"]["value"] == APP_ID
    assert inputs["platform"]["element"]["initial_option"]["value"] == "IOS"
    assert inputs["traffic_proportion"]["element"]["initial_value"] == "50"
    assert inputs["treatments"]["element"]["initial_value"] == "Treatment A, Treatment B"
    view_id = list(bot.slack.views)[-1]
    offered = await bot.player.suggest(view_id, "app_id", "")
    assert [o["text"]["text"] for o in offered] == [
        "Night Sky · com.example.nightsky",
        "Pocket Planner · com.example.planner",
    ]
    assert [o["value"] for o in await bot.player.suggest(view_id, "app_id", "planner")] == [APP_ID]
    assert (await bot.player.submit(view_id, {"name": "Icon test"})).text == ""
    exp = await bot.until(lambda: next((e for e in bot.store.experiments() if e.card_ts), None))
    remote = exp.remote_id
    assert fake.state.experiments[remote]["name"] == "Icon test" and "draft" in card(bot, exp.id)["text"]
    assert bot.player.has_button("C1", exp.card_ts, "card_action")
    assert not bot.player.has_button("C1", exp.card_ts, "card_start")

    await bot.player.click("C1", exp.card_ts, "card_action", user="U3")  # Submit for App Review: no approval
    await bot.until(lambda: fake.state.experiments[remote]["state"] == "WAITING_FOR_REVIEW")
    await bot.until(lambda: "in_review" in str(card(bot, exp.id)["text"]))
    action = bot.all_requests()[-1]
    assert action.required == 0 and action.status is RequestStatus.APPLIED and len(action.plan.steps) == 3

    with fake._lock:
        fake.state.review(remote, "APPROVED")  # App Review approves it
    start = await bot.request("start exp-1")
    shown = json.dumps(bot.slack.message("C1", start.message_ts)["blocks"])  # type: ignore[index]
    assert f"PATCH {EXPERIMENTS}/{remote}" in shown and "Bearer" not in shown
    assert "PATCH" not in {s.method for s in fake.requests(path=EXPERIMENTS)}  # nothing sent before approval
    await bot.player.click("C1", start.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(start.id).status is RequestStatus.APPLIED)
    assert fake.state.experiments[remote]["startDate"] and "running" in str(card(bot, exp.id)["text"])

    await applied(bot, "ramp exp-1 30")
    assert fake.state.experiments[remote]["trafficProportion"] == 30
    await applied(bot, "ship exp-1 treatment-a")
    assert "stopped" in str(card(bot, exp.id)["text"])
    (version,) = [v for v in fake.state.versions.values() if v["appVersionState"] == "PREPARE_FOR_SUBMISSION"]
    assert version["versionString"] == "1.1"
    promoted = [t for t in fake.state.treatments.values() if t["promotedDate"]]
    assert [t["name"] for t in promoted] == ["Treatment A"]
    writes = [(s.method, s.path) for s in fake.requests() if s.method != "GET"]
    assert len(writes) == fake.writes == 10  # test, 2 treatments, 3 review calls, start, ramp, version, promotion
    assert writes.count(("PATCH", f"{EXPERIMENTS}/{remote}")) == 2
    assert [w for w in writes if w[1] == "/v1/appStoreVersionPromotions"] == [("POST", "/v1/appStoreVersionPromotions")]
    assert [w for w in writes if w[1] == "/v1/appStoreVersions"] == [("POST", "/v1/appStoreVersions")]
    audit = bot.store.audit_events(exp.id, limit=500)
    assert any("POST /v1/appStoreVersionPromotions" in str(e.detail.get("call")) for e in audit)
