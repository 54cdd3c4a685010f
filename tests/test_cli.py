"""The `expbot` command line: `check`, and start-up refusing bad settings with one message and exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXPBOT = shutil.which("expbot", path=str(Path(sys.executable).parent)) or "expbot"
CLEAN = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "EXPBOT_", "APPSTORE_", "AMPLITUDE_", "AUTH0_", "LAUNCHDARKLY_"))
}


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXPBOT, *args], cwd=cwd, env={**CLEAN, **env}, capture_output=True, text=True, timeout=60)


def test_check_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "expbot.toml").write_text(
        '[approvals]\nrequired = 0\napprovers = ["bob"]\nexpires_after = "soon"\n[approvals.nosuch]\nrequired = 2\n'
    )
    result = run(["check"], tmp_path, SLACK_BOT_TOKEN="xoxp-user", AUTH0_DOMAIN="x.eu.auth0.com")
    assert result.returncode == 2
    err = result.stderr
    for needle in (
        "SLACK_BOT_TOKEN must be a bot token",
        "SLACK_SIGNING_SECRET is missing",
        "required",
        "not Slack user",
        "'soon' is not a duration",
        "[approvals.nosuch]: unknown provider",
        "auth0: AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET missing",
    ):
        assert needle in err, needle
    assert "Traceback" not in err and "xoxp-user" not in err + result.stdout


def test_check_reports_enabled_providers(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-1\nSLACK_SIGNING_SECRET=shh\n")
    result = run(["check"], tmp_path, LAUNCHDARKLY_API_TOKEN="api-123")
    assert result.returncode == 0, result.stderr
    assert "Provider enabled: sandbox" in result.stdout
    assert "Provider enabled: launchdarkly" in result.stdout  # its adapter is in this version
    assert "xoxb-1" not in result.stdout and "api-123" not in result.stdout


def test_serve_and_socket_refuse_to_start_without_settings(tmp_path: Path) -> None:
    served = run(["serve", "--port", "1"], tmp_path)
    assert served.returncode == 2 and "SLACK_BOT_TOKEN is missing" in served.stderr
    assert "Traceback" not in served.stderr
    socket = run(["socket"], tmp_path, SLACK_BOT_TOKEN="xoxb-1")
    assert socket.returncode == 2 and "SLACK_APP_TOKEN is missing" in socket.stderr
    assert "SLACK_SIGNING_SECRET" not in socket.stderr  # not needed in Socket Mode
    socket_check = run(["check"], tmp_path, SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1")
    assert socket_check.returncode == 0, socket_check.stderr
    missing = run(
        ["check"],
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="s",
        EXPBOT_CONFIG="nope.toml",
        EXPBOT_DB="/no/such/dir/x.db",
    )
    assert missing.returncode == 2
    assert "nope.toml does not exist" in missing.stderr and "/no/such/dir does not exist" in missing.stderr
