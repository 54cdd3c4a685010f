"""The one registry of providers (libcloud's DRIVERS): name → module, each module exporting its `DRIVER`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

from providers.base import Provider


class SandboxRecords(Protocol):
    """Where the sandbox keeps its experiments (the bot's store implements it)."""

    async def sandbox_insert(self, record: dict[str, Any]) -> str: ...

    async def sandbox_get(self, remote_id: str) -> dict[str, Any] | None: ...

    async def sandbox_put(self, remote_id: str, record: dict[str, Any]) -> None: ...

    async def sandbox_all(self) -> list[dict[str, Any]]: ...


def _http_url(value: str) -> str:
    """An absolute http(s) URL, with surrounding blanks trimmed; anything else is refused saying what was wrong."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number, or out of range, raises here
    except ValueError as err:
        raise ValueError(f"{value!r} is not a URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value


BaseUrl = Annotated[str, AfterValidator(_http_url)]
"""A provider's base URL as settings take it: absolute, http or https, with a host (pydantic's HttpUrl would
load pydantic.networks, 0.3 MB of resident memory when ready, for this one check)."""


class ProviderSettings(BaseModel):
    """`[providers.<name>]` of a provider: non-secret settings, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: BaseUrl | None = None


@dataclass(frozen=True)
class Deps:
    """What the bot hands a provider when it builds it."""

    records: SandboxRecords
    secrets: Mapping[str, str] = field(default_factory=dict)


def _no_problems(settings: Any, secrets: Mapping[str, str]) -> list[str]:
    return []


@dataclass(frozen=True)
class Driver:
    """How to build one provider: its settings model, the secrets it needs, a start-up check and its factory.

    `validate(settings, secrets)` returns start-up problems (each naming the variable or setting, never a
    secret's value), e.g. "APPSTORE_PRIVATE_KEY_PATH: /x.p8 cannot be read"; they stop start-up with the others.
    """

    name: str
    label: str
    settings_model: type[ProviderSettings]
    secrets: tuple[str, ...]
    build: Callable[[Any, Deps], Provider]
    validate: Callable[[Any, Mapping[str, str]], list[str]] = _no_problems


DRIVERS: dict[str, str] = {
    "sandbox": "providers.sandbox",
    "appstore": "providers.appstore",
    "amplitude": "providers.amplitude",
    "auth0": "providers.auth0",
    "launchdarkly": "providers.launchdarkly",
}
"""Every provider expbot knows, by config name; a module not in this version yet is reported as such."""


def driver(name: str) -> Driver | None:
    """The provider's driver, or None when its adapter is not in this version."""
    module = DRIVERS.get(name)
    if module is None:
        return None
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            return None
        raise
    built: Driver = found.DRIVER
    return built
