"""Settings: the only module that reads the environment, `.env` and `expbot.toml`."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.config_file import check_db, read_toml, section_tables, suggestion, table, validated
from providers.registry import DRIVERS, ProviderSettings, driver

Mode = Literal["serve", "socket", "check"]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
PROVIDER_NAMES = tuple(DRIVERS)


class ConfigError(Exception):
    """Settings that stop start-up; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class Env(BaseModel):
    """Environment variables (and `.env`), as named in DESIGN section 7; `Env.read()` reads them."""

    model_config = ConfigDict(extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    expbot_config: str | None = None
    expbot_db: str = "expbot.db"
    appstore_issuer_id: str | None = None
    appstore_key_id: str | None = None
    appstore_private_key: SecretStr | None = None
    appstore_private_key_path: str | None = None
    amplitude_api_key: SecretStr | None = None
    auth0_domain: str | None = None
    auth0_client_id: str | None = None
    auth0_client_secret: SecretStr | None = None
    launchdarkly_api_token: SecretStr | None = None

    @classmethod
    def read(cls, env_file: Path = Path(".env")) -> Env:
        """The process environment over `.env` (if there is one); names are matched ignoring case.

        python-dotenv parses the file. pydantic-settings would do all of this, but it costs ~14 ms of start-up and
        2 MB of memory for these few names (bench/ack_latency.py), which the start-up and memory targets cannot spare.
        """
        names = set(cls.model_fields)
        found: dict[str, str] = {}
        if env_file.is_file():
            from dotenv import dotenv_values  # loaded only when there is a `.env` to read

            found |= {k.lower(): v for k, v in dotenv_values(env_file, encoding="utf-8").items() if v is not None}
        found |= {k.lower(): v for k, v in os.environ.items()}
        return cls.model_validate({k: v for k, v in found.items() if k in names})


class Policy(BaseModel):
    """Approval policy (DESIGN section 6) for all providers or one."""

    model_config = ConfigDict(extra="forbid")

    approvers: list[str] = Field(default_factory=list)
    required: int = Field(default=1, ge=1, le=20)
    allow_self_approval: bool = False
    expires_after: str = "24h"
    max_step: int | None = Field(default=None, ge=1, le=100)
    allow_guests: bool = False
    allow_external: bool = False

    @field_validator("approvers")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(r"^[UWS][A-Z0-9]+$", v)]
        if bad:
            raise ValueError(f"not Slack user (U…/W…) or user-group (S…) ids: {', '.join(bad)}")
        return value

    @field_validator("expires_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def expiry(self) -> timedelta:
        return parse_duration(self.expires_after)


class SlackConfig(BaseModel):
    """`[slack]` of the config file."""

    model_config = ConfigDict(extra="forbid")

    channel: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[CGD][A-Z0-9]{2,}$", value):
            raise ValueError(f"{value!r} is not a channel id (C…, G…)")
        return value


class Settings(BaseModel):
    """Everything expbot runs with, validated."""

    bot_token: SecretStr
    signing_secret: SecretStr | None
    app_token: SecretStr | None
    api_url: str
    db_path: Path
    channel: str | None
    policy: Policy
    overrides: dict[str, Policy]
    providers: dict[str, ProviderSettings]
    secrets: dict[str, dict[str, SecretStr]]
    enabled: list[str]
    config_path: Path | None

    def policy_for(self, provider: str) -> Policy:
        return self.overrides.get(provider, self.policy)


def enabled_providers(env: Env) -> tuple[list[str], list[str], dict[str, dict[str, SecretStr]]]:
    """Providers whose credentials are complete, problems with half-given credentials, and the credentials."""
    groups: dict[str, dict[str, object]] = {
        "appstore": {
            "APPSTORE_ISSUER_ID": env.appstore_issuer_id,
            "APPSTORE_KEY_ID": env.appstore_key_id,
            "APPSTORE_PRIVATE_KEY or APPSTORE_PRIVATE_KEY_PATH": env.appstore_private_key
            or env.appstore_private_key_path,
        },
        "amplitude": {"AMPLITUDE_API_KEY": env.amplitude_api_key},
        "auth0": {
            "AUTH0_DOMAIN": env.auth0_domain,
            "AUTH0_CLIENT_ID": env.auth0_client_id,
            "AUTH0_CLIENT_SECRET": env.auth0_client_secret,
        },
        "launchdarkly": {"LAUNCHDARKLY_API_TOKEN": env.launchdarkly_api_token},
    }
    enabled, problems, secrets = ["sandbox"], [], {}
    for name, values in groups.items():
        missing = [k for k, v in values.items() if not v]
        if not missing:
            enabled.append(name)
            secrets[name] = {
                k: v if isinstance(v, SecretStr) else SecretStr(str(v)) for k, v in _named(env, name).items()
            }
        elif len(missing) < len(values):
            problems.append(f"{name}: {', '.join(missing)} missing (the other {name} settings are set)")
    return enabled, problems, secrets


def _named(env: Env, provider: str) -> dict[str, object]:
    """The provider's environment variables that are set, by their upper-case names."""
    prefix = {"appstore": "appstore_", "amplitude": "amplitude_", "auth0": "auth0_", "launchdarkly": "launchdarkly_"}
    return {k.upper(): v for k, v in env.model_dump().items() if k.startswith(prefix[provider]) and v}


def _provider_settings(raw: dict[str, Any], where: str, problems: list[str]) -> dict[str, ProviderSettings]:
    """`[providers.<name>]` validated by each provider's own settings model; unknown keys are errors."""
    found: dict[str, ProviderSettings] = {}
    for name, section in raw.items():
        if name not in DRIVERS:
            problems.append(f"{where} [providers.{name}]: unknown provider{suggestion(name, DRIVERS)}")
            continue
        known = driver(name)
        if not isinstance(section, dict):
            problems.append(f"{where} [providers.{name}]: must be a table of settings")
            continue
        model = known.settings_model if known else ProviderSettings
        if (settings := validated(model, section, where, f"providers.{name}", problems)) is not None:
            found[name] = settings
    return found


def _read_file(env: Env, problems: list[str]) -> tuple[dict[str, Any], Path | None]:
    path = Path(env.expbot_config) if env.expbot_config else Path("expbot.toml")
    try:
        missing = not path.exists()
    except OSError:
        missing = False  # read_toml says why it cannot be read
    if missing:
        if env.expbot_config:
            problems.append(f"EXPBOT_CONFIG: {path} does not exist")
        return {}, None
    raw = read_toml(path, problems) or {}
    section_tables(raw, str(path), {"slack": SlackConfig.model_fields, "approvals": Policy.model_fields}, problems)
    return raw, path


def _policies(raw: dict[str, Any], where: str, problems: list[str]) -> tuple[Policy, dict[str, Policy]]:
    base_raw = {k: v for k, v in raw.items() if not isinstance(v, dict) or k in Policy.model_fields}
    policy = validated(Policy, base_raw, where, "approvals", problems) or Policy()
    overrides: dict[str, Policy] = {}
    for name, section in raw.items():
        if name in base_raw:
            continue
        if name not in PROVIDER_NAMES:
            problems.append(f"{where} [approvals.{name}]: unknown provider{suggestion(name, PROVIDER_NAMES)}")
            continue
        found = validated(Policy, policy.model_dump() | section, where, f"approvals.{name}", problems)
        if found is not None:
            overrides[name] = found
    return policy, overrides


def _env() -> Env:
    try:
        return Env.read()
    except ValidationError as exc:
        raise ConfigError([f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    except UnicodeDecodeError:
        raise ConfigError([".env: is not UTF-8 text; save it as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError([f".env: cannot be read ({exc.strerror or type(exc).__name__})"]) from None


def load_settings(mode: Mode, env: Env | None = None) -> Settings:
    """Read and validate everything; raise `ConfigError` listing every problem at once."""
    problems: list[str] = []
    env = env or _env()
    token = env.slack_bot_token.get_secret_value() if env.slack_bot_token else ""
    if not token:
        problems.append("SLACK_BOT_TOKEN is missing (the bot token, xoxb-…)")
    elif not token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    app_token = env.slack_app_token.get_secret_value() if env.slack_app_token else ""
    socket_only = mode == "check" and bool(app_token)
    if mode in ("serve", "check") and not env.slack_signing_secret and not socket_only:
        problems.append(
            "SLACK_SIGNING_SECRET is missing (needed by `expbot serve` to verify requests; "
            "for Socket Mode set SLACK_APP_TOKEN instead)"
        )
    if mode == "socket" and not app_token:
        problems.append("SLACK_APP_TOKEN is missing (the app-level token, xapp-…, for Socket Mode)")
    if app_token and not app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    if not re.match(r"^https?://[^\s/]+", env.slack_api_url):
        problems.append(f"SLACK_API_URL is not an http(s) URL: {env.slack_api_url!r}")
    db_path = Path(env.expbot_db)
    problems.extend(check_db(db_path))
    file, config_path = _read_file(env, problems)
    where = str(config_path or "expbot.toml")
    channel = (validated(SlackConfig, table(file, "slack"), where, "slack", problems) or SlackConfig()).channel
    policy, overrides = _policies(table(file, "approvals"), where, problems)
    providers = _provider_settings(table(file, "providers"), where, problems)
    enabled, provider_problems, secrets = enabled_providers(env)
    problems.extend(provider_problems)
    for name in enabled:
        found = driver(name)
        if found is not None:
            options = providers.get(name) or found.settings_model()
            plain = {k: v.get_secret_value() for k, v in secrets.get(name, {}).items()}
            problems.extend(found.validate(options, plain))
    if problems:
        raise ConfigError(problems)
    api_url = env.slack_api_url if env.slack_api_url.endswith("/") else env.slack_api_url + "/"
    return Settings(
        bot_token=SecretStr(token),
        signing_secret=env.slack_signing_secret,
        app_token=env.slack_app_token,
        api_url=api_url,
        db_path=db_path,
        channel=channel,
        policy=policy,
        overrides=overrides,
        providers=providers,
        secrets=secrets,
        enabled=enabled,
        config_path=config_path,
    )
