"""Who may act, and clicks that are not what they seem: other workspaces, guests, buttons of another request,
malformed values — each changes nothing and gets a short explanation, never a traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot import policy
from bot.config import Policy
from bot.errors import PermissionDenied
from bot.models import RequestStatus
from bot.policy import Approvers
from tests.conftest import Bot, StartBot
from tests.slackfake.web_api import FakeSlack


async def _told(bot: Bot, user: str, count: int = 1) -> str:
    told = await bot.slack.wait_for_async("chat.postEphemeral", lambda a: a["user"] == user, count=count)
    return str(told[-1].args["text"])


async def test_a_user_of_another_workspace_or_a_guest_cannot_approve(bot: Bot) -> None:
    bot.slack.add_user("UEXT", name="connect", team_id="T0OTHER")
    bot.slack.add_user("UGUEST", name="guest", guest="multi")
    bot.slack.add_user("USINGLE", name="single", guest="single")
    await bot.new_sandbox()
    req = await bot.request("ramp exp-1 90")
    await bot.player.click("C1", req.message_ts, "request_approve", user="UEXT")
    assert "other workspaces" in await _told(bot, "UEXT")
    for guest in ("UGUEST", "USINGLE"):
        await bot.player.click("C1", req.message_ts, "request_approve", user=guest)
        assert "Guests cannot" in await _told(bot, guest)
    await bot.player.click("C1", req.message_ts, "request_reject", user="UEXT")
    await _told(bot, "UEXT", count=2)
    assert bot.store.request(req.id).status is RequestStatus.PENDING and bot.store.request(req.id).approvals == ()
    await bot.player.command("start exp-1", user="UGUEST")
    assert "Guests cannot" in await _told(bot, "UGUEST", count=2)
    assert len(bot.all_requests()) == 1
    assert (await bot.runtime.workflow.providers["sandbox"].get("sbx-1")).exposure == 10


async def test_guests_and_other_workspaces_can_be_allowed(start_bot: StartBot) -> None:
    bot = await start_bot("[approvals]\nallow_guests = true\nallow_external = true\n")
    bot.slack.add_user("UEXT", name="connect", team_id="T0OTHER", guest="single")
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    await bot.player.click("C1", req.message_ts, "request_approve", user="UEXT")
    done = await bot.until(lambda: (r := bot.store.request(req.id)).status.final and r)
    assert done.status is RequestStatus.APPLIED and done.decided_by == "UEXT"


async def test_a_button_value_naming_another_request_changes_nothing(bot: Bot) -> None:
    await bot.new_sandbox("One")
    await bot.new_sandbox("Two")
    first = await bot.request("ramp exp-1 20")
    second = await bot.request("ramp exp-2 30")
    await bot.player.click("C1", first.message_ts, "request_approve", user="U2", value=str(second.id))
    assert "does not belong" in await _told(bot, "U2")
    for req in (first, second):
        assert bot.store.request(req.id).status is RequestStatus.PENDING and bot.store.request(req.id).approvals == ()


@pytest.mark.parametrize("value", ["abc", "1 OR 1=1", "9" * 40, "", "-1", "1.5"])
async def test_malformed_values_are_explained_never_a_traceback(
    bot: Bot, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    exp = await bot.new_sandbox()
    req = await bot.request("start exp-1")
    with caplog.at_level(logging.WARNING):
        resp = await bot.player.click("C1", req.message_ts, "request_approve", user="U2", value=value)
        assert resp.status_code == 200
        assert "not one expbot made" in await _told(bot, "U2")
        resp = await bot.player.click("C1", exp.card_ts, "card_start", user="U2", value=value)
        assert resp.status_code == 200
        assert "not one expbot made" in await _told(bot, "U2", count=2)
    assert "Traceback" not in caplog.text and ":boom:" not in str(bot.slack.ephemerals)
    assert bot.store.request(req.id).status is RequestStatus.PENDING


async def test_a_slack_that_hangs_up_is_told_in_one_line_never_a_traceback(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.slack.fail_next("views.open", hang_up=True, times=2)  # slack_sdk retries a dropped connection once
    with caplog.at_level(logging.WARNING):
        resp = await bot.player.command("new sandbox", user="U1")
        assert resp.status_code == 200
        told = await _told(bot, "U1")
    assert "Slack did not answer expbot (ServerDisconnectedError)" in told and ":boom:" not in told
    assert "Traceback" not in caplog.text
    assert "Slack did not answer a call while handling a command" in caplog.text
    assert len(bot.slack.calls("views.open")) == 2 and not bot.slack.views


async def test_membership_is_asked_once_per_person_and_the_cache_stays_small(
    slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "CACHE_LIMIT", 3)
    approvers = Approvers(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), ttl_seconds=0.2)
    rules = Policy()
    for uid in ("U1", "U2", "U3"):
        slack.add_user(uid, name=uid.lower())
        await approvers.check_member(uid, rules)
        await approvers.check_member(uid, rules)
    assert len(slack.calls("users.info")) == 3  # once per person within the TTL
    assert all(
        set(info) <= {"deleted", "is_bot", "is_restricted", "is_ultra_restricted", "team_id"}
        for _, info in approvers._users.values()
    )  # not whole profiles
    await asyncio.sleep(0.25)
    slack.add_user("U4", name="u4", guest="single")
    with pytest.raises(PermissionDenied, match="Guests cannot"):
        await approvers.check_member("U4", rules)
    assert list(approvers._users) == ["U4"]  # past the limit, the expired entries went
    await approvers.check_member("U1", rules)  # asked again once expired
    assert len(slack.calls("users.info")) == 5
