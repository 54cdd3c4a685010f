"""End to end: `expbot serve` as a real process, driven by signed HTTP requests against the fake Slack."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, TOKEN
from tests.slackfake.player import SlackPlayer
from tests.slackfake.web_api import FakeSlack
from tests.test_cli import CLEAN, EXPBOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    yield from serve(slack, tmp_path, '[approvals]\nexpires_after = "2h"\n', "--log-format", "json")


def serve(
    slack: FakeSlack, tmp_path: Path, config: str, *args: str
) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """Run `expbot serve` as a process with `config` as its expbot.toml; yields its address, process and home."""
    port = _free_port()
    (tmp_path / "expbot.toml").write_text(config)
    env = {
        **CLEAN,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "EXPBOT_DB": str(tmp_path / "expbot.db"),
    }
    proc = subprocess.Popen(
        [EXPBOT, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).json() == {"ok": True}:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"expbot serve did not come up: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.1)
    yield base, proc, tmp_path
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


async def _until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if result := check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_the_whole_story_against_a_served_process(
    slack: FakeSlack, served: tuple[str, subprocess.Popen[str], Path]
) -> None:
    base, proc, home = served
    player = SlackPlayer(base + "/slack/events", SECRET, slack)
    try:
        assert (await player.command("new sandbox", user="U1", channel="C1")).status_code == 200
        await slack.wait_for_async("views.open")
        view_id = list(slack.views)[-1]
        resp = await player.submit(view_id, {"name": "Paywall copy", "variants": "control, bold"}, user="U1")
        assert resp.status_code == 200 and resp.text == ""
        card = (await slack.wait_for_async("chat.postMessage", lambda a: "Paywall copy" in a.get("text", "")))[-1]
        card_ts = next(m["ts"] for m in slack.messages("C1") if "Paywall copy" in m["text"])
        assert card.args["channel"] == "C1"

        ack = await player.command("ramp exp-1 25", user="U1", channel="C1")
        assert ack.status_code == 200 and ack.text == ""  # nothing is claimed before it is true
        await slack.wait_for_async("chat.postEphemeral", lambda a: "Asked for approval" in a["text"])
        request_msg = await _until(lambda: next(iter(slack.thread("C1", card_ts)), None))
        assert "request_approve" in json.dumps(request_msg["blocks"])

        await player.click("C1", request_msg["ts"], "request_approve", user="U1")
        await slack.wait_for_async("chat.postEphemeral", lambda a: "someone else" in a["text"])
        await player.click("C1", request_msg["ts"], "request_approve", user="U2")
        await slack.wait_for_async(
            "chat.postMessage", lambda a: a["channel"] == "U1" and "was applied" in a["text"], timeout=10
        )
        assert not player.has_button("C1", request_msg["ts"], "request_approve")
        assert "exposure 25%" in slack.message("C1", card_ts)["text"]

        bad = await player.post(
            b"command=%2Fexperiment&text=stop+exp-1", "application/x-www-form-urlencoded", signature="v0=bad"
        )
        assert bad.status_code == 401

        audit = (await player.command("audit exp-1", user="U3")).json()["text"]
        assert "request.applied" in audit and "PATCH /sandbox/experiments/sbx-1" in audit
        metrics = httpx.get(base + "/metrics").text
        assert 'expbot_requests{status="applied"} 1' in metrics
        for name, kind in (
            ("expbot_slack_requests_total", "counter"),
            ("expbot_ack_seconds", "histogram"),
            ("expbot_provider_calls_total", "counter"),
            ("expbot_provider_call_seconds", "histogram"),
            ("expbot_request_transitions_total", "counter"),
            ("expbot_outbox_depth", "gauge"),
            ("expbot_slack_api_errors_total", "counter"),
        ):
            assert f"# HELP {name} " in metrics and f"# TYPE {name} {kind}" in metrics
        assert 'expbot_request_transitions_total{to="applied"} 1.0' in metrics
        assert 'expbot_slack_requests_rejected_total{reason="bad_signature"} 1.0' in metrics
        assert 'expbot_slack_requests_total{kind="command",outcome="200"}' in metrics
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 200 and ready.json()["outbox"]["depth"] == 0
    finally:
        await player.aclose()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    assert "Application shutdown complete" in output  # uvicorn then re-raises SIGTERM as its exit status
    assert TOKEN not in output and SECRET not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is one JSON object
    events = {(e.get("event"), e.get("request"), e.get("experiment")) for e in lines if e.get("event")}
    for name in ("request.created", "request.approved", "request.applying", "request.applied"):
        assert (name, 1, 1) in events
    assert any(e["logger"].startswith("uvicorn") for e in lines)  # uvicorn's lines in the same format
    warned = [e["msg"] for e in lines if e["level"] not in ("info", "debug")]
    assert warned == ["rejected POST /slack/events: 401 bad_signature, 37 bytes"]  # the forged request, and only it
    rows = sqlite3.connect(home / "expbot.db").execute("SELECT status FROM requests").fetchall()
    assert rows == [("applied",)]
