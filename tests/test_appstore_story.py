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
    assert fake.state.experiments[remote]["startDate"]
    await bot.until(lambda: "running" in str(card(bot, exp.id)["text"]))

    await applied(bot, "ramp exp-1 30")
    assert fake.state.experiments[remote]["trafficProportion"] == 30
    await applied(bot, "ship exp-1 treatment-a")
    await bot.until(lambda: "stopped" in str(card(bot, exp.id)["text"]))
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


async def told(bot: Bot, resp_text: str, words: str) -> str:
    """What the user was told: in the command's acknowledgement, or ephemerally after it."""
    if words in resp_text:
        return resp_text
    found = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: words in a["text"])
    return str(found[-1].args["text"])


async def test_a_409_on_create_is_told_word_for_word_and_nothing_is_tracked(
    start_bot: StartBot, fake: FakeAppStore
) -> None:
    bot = await appstore_bot(start_bot, fake)
    await create(bot, "First")
    await bot.player.command("new appstore")
    await bot.slack.wait_for_async("views.open", count=2)
    answer = (await bot.player.submit(list(bot.slack.views)[-1], {"name": "Second"})).json()
    assert answer == {  # inline in the modal, in Apple's words
        "response_action": "errors",
        "errors": {"name": "Cannot create new experiment because another experiment is in draft state"},
    }
    assert len(bot.store.experiments()) == 1 and len(fake.state.experiments) == 1


async def test_a_treatment_failing_during_create_still_posts_the_card_and_says_what_exists(
    start_bot: StartBot, fake: FakeAppStore
) -> None:
    bot = await appstore_bot(start_bot, fake)
    fake.fail("unprocessable", skip=1, path="/v1/appStoreVersionExperimentTreatments")
    exp_id = await create(bot, "Half made", treatments="Blue, Green")
    exp = bot.store.experiment(exp_id)
    assert exp is not None and [v.key for v in exp.snapshot.variants] == ["original", "blue"]
    note = await bot.slack.wait_for_async("chat.postMessage", lambda a: "not all of it" in a.get("text", ""))
    text = note[-1].args["text"]
    assert note[-1].args["thread_ts"] == exp.card_ts
    assert "treatment `Green`: Not valid." in text and "treatments in App Store Connect now: Blue" in text


async def test_tracking_by_id_posts_a_card_and_a_401_or_404_is_told_without_one(
    start_bot: StartBot, fake: FakeAppStore
) -> None:
    bot = await appstore_bot(start_bot, fake)
    with fake._lock:
        remote = fake.state.create_experiment(
            {"name": "Made in ASC", "platform": "IOS", "trafficProportion": 20}, APP_ID
        )
    fake.reject_tokens = 2  # the key is refused (401), also after minting a fresh token
    resp = await bot.player.command(f"track appstore {remote}")
    said = await told(bot, resp.text, "refused our credentials")
    assert "401" in said and bot.store.experiments() == [] and bot.slack.calls("chat.postMessage") == []
    resp = await bot.player.command("track appstore 00000000-0000-4000-8000-000000000404")
    assert "does not exist" in await told(bot, resp.text, "does not exist")
    assert bot.store.experiments() == []
    await bot.player.command(f"track appstore {remote.upper()}")  # any spelling: Apple's ids are lower case
    exp = await bot.until(lambda: next((e for e in bot.store.experiments() if e.card_ts), None))
    assert exp.remote_id == remote and "Made in ASC" in str(card(bot, exp.id)["text"])


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("pause exp-1", "has no pause"),
        ("resume exp-1", "cannot be restarted"),
        ("split exp-1 original=50 treatment-a=25 treatment-b=25", "splits a test's traffic evenly"),
        ("stop exp-1", "does not document stopping"),
        ("ship exp-1 original", "original product page is live"),
    ],
)
async def test_refused_changes_say_why_and_send_nothing(
    start_bot: StartBot, fake: FakeAppStore, command: str, words: str
) -> None:
    bot = await appstore_bot(start_bot, fake)
    fake.state.auto_review = "APPROVED"
    exp_id = await create(bot)
    await bot.player.click("C1", bot.store.experiment(exp_id).card_ts, "card_action")  # type: ignore[union-attr]
    await bot.until(lambda: bot.all_requests() and bot.all_requests()[-1].status is RequestStatus.APPLIED)
    await applied(bot, "start exp-1")
    writes = fake.writes
    resp = await bot.player.command(command)
    assert words in await told(bot, resp.text, words)
    assert fake.writes == writes and len(bot.all_requests()) == 2


async def test_stop_behind_the_flag_and_a_running_ramp_refused_by_apple_word_for_word(
    start_bot: StartBot, fake: FakeAppStore
) -> None:
    bot = await appstore_bot(start_bot, fake, "allow_stop = true\n")
    fake.state.auto_review = "APPROVED"
    exp_id = await create(bot)
    await bot.player.click("C1", bot.store.experiment(exp_id).card_ts, "card_action")  # type: ignore[union-attr]
    await bot.until(lambda: bot.all_requests() and bot.all_requests()[-1].status is RequestStatus.APPLIED)
    await applied(bot, "start exp-1")
    fake.state.refuse_running_traffic = True
    ramp = await bot.request("ramp exp-1 70")
    await bot.player.click("C1", ramp.message_ts, "request_approve", user="U2")
    failed = await bot.until(lambda: (r := bot.store.request(ramp.id)).status.final and r)
    assert failed.status is RequestStatus.FAILED
    assert "The traffic proportion of a running experiment cannot be changed." in (failed.outcome or "")
    stop = await bot.request("stop exp-1")
    notes = json.dumps(bot.slack.message("C1", stop.message_ts)["blocks"])  # type: ignore[index]
    assert "does not document stopping" in notes
    await bot.player.click("C1", stop.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(stop.id).status is RequestStatus.APPLIED)
    remote = bot.store.experiment(exp_id).remote_id  # type: ignore[union-attr]
    assert fake.state.experiments[remote]["state"] == "STOPPED"
    await bot.until(lambda: "stopped" in str(card(bot, exp_id)["text"]))


async def test_a_change_made_in_app_store_connect_after_the_request_makes_it_stale(
    start_bot: StartBot, fake: FakeAppStore
) -> None:
    bot = await appstore_bot(start_bot, fake)
    exp_id = await create(bot)
    remote = bot.store.experiment(exp_id).remote_id  # type: ignore[union-attr]
    req = await bot.request("ramp exp-1 20")
    with fake._lock:
        fake.state.experiments[remote]["trafficProportion"] = 35  # someone edits the test in App Store Connect
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert done.status is RequestStatus.STALE
    assert fake.state.experiments[remote]["trafficProportion"] == 35 and not fake.requests("PATCH")


async def test_a_rejection_by_app_review_shows_on_the_card_and_it_can_be_resubmitted(
    start_bot: StartBot, fake: FakeAppStore
) -> None:
    bot = await appstore_bot(start_bot, fake)
    fake.state.auto_review = "REJECTED"
    exp_id = await create(bot)
    exp = bot.store.experiment(exp_id)
    assert exp is not None
    await bot.player.click("C1", exp.card_ts, "card_action")
    await bot.until(lambda: "rejected by App Review" in json.dumps(card(bot, exp_id)["blocks"]))
    await bot.until(lambda: bot.all_requests()[-1].status.final)
    assert "draft" in str(card(bot, exp_id)["text"]) and bot.player.has_button("C1", exp.card_ts, "card_action")
    resp = await bot.player.command("start exp-1")
    assert "rejected by App Review" in await told(bot, resp.text, "only once App Review has approved")


async def test_a_429_while_requesting_is_retried(start_bot: StartBot, fake: FakeAppStore) -> None:
    bot = await appstore_bot(start_bot, fake)
    await create(bot)
    fake.fail("rate_limited", where="read")
    req = await bot.request("ramp exp-1 25")
    assert req.status is RequestStatus.PENDING
    assert [s.method for s in fake.requests()][-2:] == ["GET", "GET"]  # the 429, then the retry


async def test_a_crash_between_creating_the_version_and_promoting_is_finished_once_on_restart(
    start_bot: StartBot, fake: FakeAppStore
) -> None:
    bot = await appstore_bot(start_bot, fake)
    fake.state.auto_review = "APPROVED"
    exp_id = await create(bot)
    await bot.player.click("C1", bot.store.experiment(exp_id).card_ts, "card_action")  # type: ignore[union-attr]
    await bot.until(lambda: bot.all_requests() and bot.all_requests()[-1].status is RequestStatus.APPLIED)
    await applied(bot, "start exp-1")
    ship = await bot.request("ship exp-1 treatment-a")
    assert [s.path for s in ship.plan.steps] == ["/v1/appStoreVersions", "/v1/appStoreVersionPromotions"]
    await bot.store.transition(ship.id, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
    await bot.store.transition(ship.id, [RequestStatus.APPROVED], RequestStatus.APPLYING, "expbot")
    await bot.store.step_sent(ship.id, 0, ship.plan.steps[0])
    await bot.runtime.workflow.providers["appstore"].apply(ship.plan.steps[0])  # Apple made it; then we crashed
    await bot.stop()

    bot = await appstore_bot(start_bot, fake)  # recovery confirms step 1 by reading, then promotes
    done = await bot.until(lambda: (r := bot.store.request(ship.id)).status.final and r)
    assert done.status is RequestStatus.APPLIED
    assert len(fake.requests("POST", "/v1/appStoreVersions")) == 1
    (promotion,) = fake.requests("POST", "/v1/appStoreVersionPromotions")
    (version_id,) = [v for v, r in fake.state.versions.items() if r["versionString"] == "1.1"]
    assert promotion.json()["data"]["relationships"]["appStoreVersion"]["data"]["id"] == version_id
    await bot.until(lambda: "stopped" in str(card(bot, exp_id)["text"]))
