"""Config that catches mistakes: every section's keys checked with the nearest key suggested, bad files named."""

from __future__ import annotations

import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, Env, Settings, load_settings
from bot.config_file import suggestion


def env(tmp_path: Path, **extra: str) -> Env:
    values = {
        "slack_bot_token": "xoxb-1",
        "slack_signing_secret": "s",
        "expbot_config": str(tmp_path / "expbot.toml"),
        "expbot_db": str(tmp_path / "expbot.db"),
        **extra,
    }
    return Env.model_validate(values)


def problems(tmp_path: Path, config: str, **extra: str) -> list[str]:
    (tmp_path / "expbot.toml").write_text(config)
    with pytest.raises(ConfigError) as err:
        load_settings("check", env(tmp_path, **extra))
    where = str(tmp_path / "expbot.toml")
    return [p.replace(where, "F") for p in err.value.problems]


def test_suggestion_names_the_nearest_key_or_lists_the_known_ones() -> None:
    assert suggestion("chanel", ["channel"]) == '; did you mean "channel"?'
    assert suggestion("Channel", ["channel"]) == '; did you mean "channel"?'
    assert suggestion("requierd", ["approvers", "required", "max_step"]) == '; did you mean "required"?'
    assert suggestion("zzz", ["channel", "x"]) == " (known: channel, x)"


def test_every_section_names_its_unknown_keys_with_the_nearest_one(tmp_path: Path) -> None:
    config = """
[slack]
chanel = "C123"
[approvals]
requierd = 2
allow_guest = true
[approvals.sandbox]
max_stp = 3
[approvals.sandbx]
required = 2
[providers.sandbox]
latncy = "1s"
[providers.sandbx]
latency = "1s"
[slak]
channel = "C1"
"""
    assert problems(tmp_path, config) == [
        'F [slak]: unknown section; did you mean "slack"?',
        'F [slack] chanel: unknown key; did you mean "channel"?',
        'F [approvals] requierd: unknown key; did you mean "required"?',
        'F [approvals] allow_guest: unknown key; did you mean "allow_guests"?',
        'F [approvals.sandbox] max_stp: unknown key; did you mean "max_step"?',
        'F [approvals.sandbx]: unknown provider; did you mean "sandbox"?',
        'F [providers.sandbox] latncy: unknown key; did you mean "latency"?',
        'F [providers.sandbx]: unknown provider; did you mean "sandbox"?',
    ]


def test_misplaced_keys_and_sections_that_are_not_tables(tmp_path: Path) -> None:
    config = 'channel = "C1"\nslack = "C1"\nprovider = 1\n[providers]\nsandbox = 1\n'
    assert problems(tmp_path, config) == [
        "F channel: unknown key; it belongs under [slack]",
        "F slack: must be a table ([slack] followed by its keys)",
        'F provider: unknown key; did you mean "providers"?',
        "F [providers.sandbox]: must be a table of settings",
    ]


def test_values_are_checked_with_plain_messages(tmp_path: Path) -> None:
    config = '[slack]\nchannel = "#general"\n[approvals]\nallow_external = "maybe"\nexpires_after = "soon"\n'
    assert problems(tmp_path, config) == [
        "F [slack] channel: '#general' is not a channel id (C…, G…)",
        "F [approvals] expires_after: 'soon' is not a duration like 90s, 15m, 24h or 7d",
        "F [approvals] allow_external: Input should be a valid boolean, unable to interpret input",
    ]


def test_a_provider_base_url_must_be_an_http_url(tmp_path: Path) -> None:
    config = (
        '[providers.sandbox]\nbase_url = "sandbox.example.com"\n'
        '[providers.launchdarkly]\nbase_url = "https://ld.example.com:99999"\n'
    )
    assert problems(tmp_path, config, launchdarkly_api_token="api-1") == [
        "F [providers.sandbox] base_url: 'sandbox.example.com' is not an http:// or https:// URL with a host",
        "F [providers.launchdarkly] base_url: 'https://ld.example.com:99999' is not a URL (Port out of range 0-65535)",
    ]


def test_guest_and_external_policy_keys_are_settings(tmp_path: Path) -> None:
    (tmp_path / "expbot.toml").write_text(
        "[approvals]\nallow_guests = true\n[approvals.sandbox]\nallow_external = true\n"
    )
    found = load_settings("check", env(tmp_path))
    assert found.policy.allow_guests and not found.policy.allow_external
    assert found.policy_for("sandbox").allow_guests and found.policy_for("sandbox").allow_external
    (tmp_path / "expbot.toml").write_text("")
    default = load_settings("check", env(tmp_path)).policy
    assert default.allow_guests is False and default.allow_external is False


def test_files_that_cannot_be_read_are_one_problem_each(tmp_path: Path) -> None:
    (tmp_path / "expbot.toml").write_bytes(b'[slack]\nchannel = "C1"\n# caf\xe9\n')
    (tmp_path / "expbot.db").write_text("not a database at all")
    with pytest.raises(ConfigError) as err:
        load_settings("check", env(tmp_path))
    assert err.value.problems == [
        f"EXPBOT_DB: {tmp_path}/expbot.db is not a SQLite database; give a new file name or an expbot database",
        f"{tmp_path}/expbot.toml: is not UTF-8 text (byte 0xe9 on line 3); save it as UTF-8",
    ]
    folder = tmp_path / "conf.d"
    folder.mkdir()
    with pytest.raises(ConfigError) as err:
        load_settings("check", env(tmp_path, expbot_config=str(folder), expbot_db=str(folder)))
    assert err.value.problems == [
        f"EXPBOT_DB: {folder} is a folder; give the path of a SQLite file, e.g. {folder}/expbot.db",
        f"{folder}: is a folder, not a config file (give the path of a TOML file)",
    ]


def test_unreadable_config_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "expbot.toml").write_text("")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ConfigError) as err:
        load_settings("check", env(tmp_path))
    assert err.value.problems == [f"{tmp_path}/expbot.toml: cannot be read (Permission denied)"]


def test_new_empty_or_real_sqlite_files_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "expbot.toml").write_text("")
    (tmp_path / "empty.db").write_bytes(b"")
    assert isinstance(load_settings("check", env(tmp_path, expbot_db=str(tmp_path / "empty.db"))), Settings)
    sqlite3.connect(tmp_path / "real.db").execute("CREATE TABLE t (x)").connection.commit()
    assert isinstance(load_settings("check", env(tmp_path, expbot_db=str(tmp_path / "real.db"))), Settings)
    assert isinstance(load_settings("check", env(tmp_path, expbot_db=str(tmp_path / "new.db"))), Settings)


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(("SLACK_", "EXPBOT_", "LAUNCHDARKLY_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "# a comment\n"
        "SLACK_BOT_TOKEN=xoxb-from-file\n"
        'export SLACK_SIGNING_SECRET="quoted secret"\n'
        "slack_api_url=http://127.0.0.1:9/api/\n"  # names are matched ignoring case
        "EXPBOT_DB=from-file.db\n"
        "UNRELATED=ignored\n"
    )
    monkeypatch.setenv("EXPBOT_DB", "from-env.db")
    env = Env.read()
    assert env.slack_bot_token is not None and env.slack_bot_token.get_secret_value() == "xoxb-from-file"
    assert env.slack_signing_secret is not None and env.slack_signing_secret.get_secret_value() == "quoted secret"
    assert env.slack_api_url == "http://127.0.0.1:9/api/"
    assert env.expbot_db == "from-env.db"
    assert "quoted secret" not in repr(env)  # secrets stay secret once read
    (tmp_path / ".env").unlink()
    (tmp_path / ".env").mkdir()  # a folder named .env is not a file of settings: it is left alone
    assert Env.read().slack_bot_token is None


def test_env_file_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "EXPBOT_CONFIG", "EXPBOT_DB"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_bytes(b"SLACK_BOT_TOKEN=xoxb-\xff\n")
    with pytest.raises(ConfigError) as err:
        load_settings("check")
    assert err.value.problems == [".env: is not UTF-8 text; save it as UTF-8"]


# -- property: arbitrary TOML-ish text never ends in a traceback -------------------------------------------------
NAMES = "slack approvals providers slak chanel channel required requierd approvers allow_guests allow_external"
NAMES += " expires_after max_step allow_self_approval sandbox sandbx latency fault fault_rate base_url launchdarkly"
KEY = st.sampled_from(NAMES.split()) | st.text(min_size=1, max_size=6)
SCALAR = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.dates(),
    st.sampled_from(["C123", "U1", "S1", "24h", "2s", "soon", "http://x.test", "conflict", ""]),
    st.text(max_size=8),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=3),
    max_leaves=6,
)
FRAGMENTS = ["[slack]", "[approvals]", "[approvals.sandbox]", "[providers.sandbox]", "[[providers]]", "[slack.x]"]
FRAGMENTS += ['chanel = "C1"', "required = 0", 'approvers = ["bob"]', "= =", "a.b.c = 1", '"\\ud800" = 1', "\x00"]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int | date):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return toml_string(str(value))


def toml_string(text: str) -> str:
    def one(c: str) -> str:
        if c in '\\"':
            return "\\" + c
        return f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c

    return '"' + "".join(one(c) for c in text) + '"'


def toml_document(doc: dict[str, Any]) -> str:
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_string(name)}]")
            lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


NAME = st.sampled_from(NAMES.split())
TABLE = st.dictionaries(NAME, VALUE, max_size=4)
DOCUMENT = st.dictionaries(KEY, TABLE | VALUE, max_size=4).map(toml_document)
SECTIONED = st.fixed_dictionaries(
    {},
    optional={
        "slack": TABLE,
        "approvals": st.dictionaries(NAME, VALUE | TABLE, max_size=4),
        "providers": st.dictionaries(NAME, TABLE | VALUE, max_size=3),
    },
).map(toml_document)
GARBAGE = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=20), max_size=8).map("\n".join)
CONFIG_BYTES = st.one_of(
    DOCUMENT.map(str.encode),
    SECTIONED.map(str.encode),
    GARBAGE.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=64),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hypothesis-config")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=CONFIG_BYTES)
def test_any_config_text_is_settings_or_a_config_error(scratch: Path, data: bytes) -> None:
    (scratch / "expbot.toml").write_bytes(data)
    try:
        found = load_settings("check", env(scratch))
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
        assert not any("Traceback" in p for p in err.problems)
    else:
        assert isinstance(found, Settings)
