"""The `expbot` command line: start-up refusing bad settings with one message and exit 2, and `check`'s table."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from bot.checks import REQUIRED_SCOPES
from bot.store import Store
from tests.slackfake.web_api import FakeSlack

EXPBOT = shutil.which("expbot", path=str(Path(sys.executable).parent)) or "expbot"
CLEAN = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "EXPBOT_", "APPSTORE_", "AMPLITUDE_", "AUTH0_", "LAUNCHDARKLY_"))
}
GOOD = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "shh-secret"}
FOOTER = "See the configuration reference in README.md."


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXPBOT, *args], cwd=cwd, env={**CLEAN, **env}, capture_output=True, text=True, timeout=60)


def refused(result: subprocess.CompletedProcess[str], *problems: str) -> None:
    """The run stopped with exit 2 and exactly these problems, one line each, and no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    header = f"expbot cannot start: {len(problems)} setting(s) need attention:"
    assert result.stderr.splitlines() == [header, *(f"  - {p}" for p in problems), FOOTER]
    assert result.stdout == ""


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


def test_typos_in_every_section_name_the_nearest_key(tmp_path: Path) -> None:
    (tmp_path / "expbot.toml").write_text(
        '[slack]\nchanel = "C123"\n[approvals]\nrequierd = 2\nallow_guests = true\nallow_externals = true\n'
        '[approvals.sandbox]\nmax_stp = 3\n[providers.sandbox]\nlatncy = "1s"\n[provider.sandbox]\nlatency = "1s"\n'
    )
    refused(
        run(["check"], tmp_path, **GOOD),
        'expbot.toml [provider]: unknown section; did you mean "providers"?',
        'expbot.toml [slack] chanel: unknown key; did you mean "channel"?',
        'expbot.toml [approvals] requierd: unknown key; did you mean "required"?',
        'expbot.toml [approvals] allow_externals: unknown key; did you mean "allow_external"?',
        'expbot.toml [approvals.sandbox] max_stp: unknown key; did you mean "max_step"?',
        'expbot.toml [providers.sandbox] latncy: unknown key; did you mean "latency"?',
    )


def test_config_not_utf8_and_db_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / "expbot.toml").write_bytes(b'[slack]\nchannel = "C123" # \xff\n')
    (tmp_path / "notes.txt").write_text("shopping list\n")
    refused(
        run(["serve"], tmp_path, **GOOD, EXPBOT_DB="notes.txt"),
        "EXPBOT_DB: notes.txt is not a SQLite database; give a new file name or an expbot database",
        "expbot.toml: is not UTF-8 text (byte 0xff on line 2); save it as UTF-8",
    )


def test_config_and_db_that_are_folders(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "data").mkdir()
    refused(
        run(["check"], tmp_path, **GOOD, EXPBOT_CONFIG="conf", EXPBOT_DB="data"),
        "EXPBOT_DB: data is a folder; give the path of a SQLite file, e.g. data/expbot.db",
        "conf: is a folder, not a config file (give the path of a TOML file)",
    )


def test_config_that_cannot_be_opened(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as listener:  # open() of a socket fails, even for root
        listener.bind(str(tmp_path / "expbot.sock"))
        refused(
            run(["check"], tmp_path, **GOOD, EXPBOT_CONFIG="expbot.sock"),
            "expbot.sock: cannot be read (No such device or address)",
        )


def test_serve_and_socket_refuse_to_start_without_settings(tmp_path: Path, slack: FakeSlack) -> None:
    served = run(["serve", "--port", "1"], tmp_path)
    assert served.returncode == 2 and "SLACK_BOT_TOKEN is missing" in served.stderr
    assert "Traceback" not in served.stderr
    socket_run = run(["socket"], tmp_path, SLACK_BOT_TOKEN="xoxb-1")
    assert socket_run.returncode == 2 and "SLACK_APP_TOKEN is missing" in socket_run.stderr
    assert "SLACK_SIGNING_SECRET" not in socket_run.stderr  # not needed in Socket Mode
    socket_check = run(
        ["check"], tmp_path, SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-1", SLACK_API_URL=slack.api_url
    )
    assert socket_check.returncode == 0, socket_check.stdout + socket_check.stderr
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


# -- expbot check against the fake Slack -----------------------------------------------------------------------
def check(tmp_path: Path, slack: FakeSlack, channel: str = "C0STATUS") -> subprocess.CompletedProcess[str]:
    (tmp_path / "expbot.toml").write_text(f'[slack]\nchannel = "{channel}"\n')
    Store(tmp_path / "expbot.db").close()  # as after a first `expbot serve`
    result = run(["check"], tmp_path, **GOOD, SLACK_API_URL=slack.api_url)
    assert "Traceback" not in result.stderr
    assert not any(secret in result.stdout + result.stderr for secret in ("xoxb-test", "shh-secret"))
    return result


def table_rows(stdout: str) -> dict[str, tuple[str, str]]:
    lines = stdout.split("\n\n")[1].splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "DETAIL"]
    at, detail_at = lines[0].index("RESULT"), lines[0].index("DETAIL")
    return {line[:at].strip(): (line[at:detail_at].strip(), line[detail_at:]) for line in lines[1:]}


def test_check_good_token_prints_the_table(tmp_path: Path, slack: FakeSlack) -> None:
    slack.scopes = [*REQUIRED_SCOPES, "channels:read"]
    result = check(tmp_path, slack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (
        "Settings are valid.\n"
        "Config file: expbot.toml\n"
        f"Slack Web API: {slack.api_url}\n"
        "\n"
        "CHECK             RESULT  DETAIL\n"
        "database          ok      expbot.db answers (0 change request(s))\n"
        "slack auth        ok      team Fake (T0TEST), bot user @expbot (UBOT)\n"
        "slack scopes      ok      commands, chat:write, chat:write.public, usergroups:read, users:read\n"
        "status channel    ok      #c0status (C0STATUS)\n"
        "slack outbox      ok      0 message(s) waiting; 0 given up\n"
        "provider sandbox  ok      0 experiment(s) visible\n"
        "\n"
        "All checks passed.\n"
    )
    assert [c.method for c in slack.calls()] == ["auth.test", "conversations.info"]


def test_check_revoked_token_is_a_failed_row(tmp_path: Path, slack: FakeSlack) -> None:
    slack.revoke_token()
    result = check(tmp_path, slack)
    assert result.returncode == 1
    rows = table_rows(result.stdout)
    assert rows["slack auth"] == (
        "FAIL",
        "token_revoked: the bot token was revoked; reinstall the app and set SLACK_BOT_TOKEN to its new bot token",
    )
    assert rows["slack scopes"] == rows["status channel"] == ("skip", "needs a bot token Slack accepts")
    assert rows["database"][0] == rows["provider sandbox"][0] == "ok"
    assert result.stdout.endswith("1 of 6 checks failed: fix the rows marked FAIL and run `expbot check` again.\n")
    assert "Settings are complete" not in result.stdout


def test_check_missing_scope(tmp_path: Path, slack: FakeSlack) -> None:
    slack.scopes = ["commands", "chat:write", "chat:write.public", "usergroups:read"]
    result = check(tmp_path, slack)
    assert result.returncode == 1
    assert table_rows(result.stdout)["slack scopes"] == (
        "FAIL",
        "missing users:read: add under OAuth & Permissions > Bot Token Scopes (or update the app from manifest.yml), "
        "then reinstall the app",
    )
    assert "1 of 6 checks failed" in result.stdout


def test_check_unreachable_channel(tmp_path: Path, slack: FakeSlack) -> None:
    slack.scopes = list(REQUIRED_SCOPES)
    slack.channels_not_found.add("C0GONE")
    result = check(tmp_path, slack, channel="C0GONE")
    assert result.returncode == 1
    assert table_rows(result.stdout)["status channel"] == (
        "FAIL",
        "C0GONE not found: check [slack] channel; a private channel needs the bot invited",
    )
    assert table_rows(result.stdout)["slack auth"][0] == "ok"
