"""Signature checks: a bad signature or an old timestamp gets 401 and changes nothing; secrets stay out of logs."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

import pytest

from tests.conftest import SECRET, TOKEN, Bot


def _form(text: str) -> bytes:
    return urlencode(
        {
            "command": "/experiment",
            "text": text,
            "user_id": "U1",
            "channel_id": "C1",
            "team_id": "T0TEST",
            "trigger_id": "1.2.abc",
            "response_url": "http://127.0.0.1:9/x",
        }
    ).encode()


async def test_bad_signature_is_refused(bot: Bot) -> None:
    exp = await bot.new_sandbox()
    before = len(bot.slack.calls())
    resp = await bot.player.post(
        _form("ramp exp-1 50"), "application/x-www-form-urlencoded", signature="v0=" + "0" * 64
    )
    assert resp.status_code == 401
    resp = await bot.player.post(_form("ramp exp-1 50"), "application/x-www-form-urlencoded", signature="")
    assert resp.status_code == 401
    assert bot.all_requests() == [] and len(bot.slack.calls()) == before
    assert bot.store.experiment(exp.id).snapshot.exposure == 10


async def test_old_and_future_timestamps_are_refused(bot: Bot) -> None:
    await bot.new_sandbox()
    before = len(bot.slack.calls())
    for skew in (-6 * 60, 6 * 60):
        resp = await bot.player.post(
            _form("start exp-1"), "application/x-www-form-urlencoded", timestamp=int(time.time()) + skew
        )
        assert resp.status_code == 401
    assert bot.all_requests() == [] and len(bot.slack.calls()) == before
    ok = await bot.player.post(_form("help"), "application/x-www-form-urlencoded")
    assert ok.status_code == 200  # the same request, signed now, is accepted


async def test_secrets_never_reach_logs_messages_or_audit(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await bot.new_sandbox()
    req = await bot.request("start exp-1")
    await bot.player.click("C1", req.message_ts, "request_approve", user="U2")
    await bot.until(lambda: bot.store.request(req.id).status.final)
    posted = " ".join(str(c.args) for c in bot.slack.calls() if c.method != "auth.test")
    audit = " ".join(str(e.detail) for e in bot.store.audit_events(1, 500))
    for secret in (TOKEN, SECRET):
        assert secret not in caplog.text and secret not in posted and secret not in audit
