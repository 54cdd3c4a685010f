"""App Store Connect's create fields (the draft model), `[providers.appstore]` settings and start-up key check."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from providers.auth import load_ec_key
from providers.base import CommaList, Text
from providers.registry import ProviderSettings

ISSUER, KEY_ID = "APPSTORE_ISSUER_ID", "APPSTORE_KEY_ID"
KEY, KEY_PATH = "APPSTORE_PRIVATE_KEY", "APPSTORE_PRIVATE_KEY_PATH"
DEFAULT_BASE_URL = "https://api.appstoreconnect.apple.com"
APP_ID = re.compile(r"^\d{1,20}$")
MAX_TREATMENTS = 3
Platform = Literal["IOS", "MAC_OS", "VISION_OS"]


class AppStoreSettings(ProviderSettings):
    """`[providers.appstore]`: the API base URL, the modal's default app and the unconfirmed-stop switch."""

    app_id: str | None = Field(default=None, description="default app (its numeric Apple ID) for the create modal")
    allow_stop: bool = Field(
        default=False,
        description="offer Stop (PATCH started: false); Apple does not document stopping a test through the API",
    )

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str | None) -> str | None:
        if value is not None and not APP_ID.match(value.strip()):
            raise ValueError("must be the app's numeric Apple ID, e.g. 1452013590")
        return value.strip() if value else None


def slug(name: str) -> str:
    """A treatment's variant key: its name in lower case, words joined by '-' (`Dark icon` → `dark-icon`)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "treatment"


class AppStoreDraft(BaseModel):
    """Create fields of a product page optimization test (only the name needs typing)."""

    name: Text = Field(title="Name", min_length=1, max_length=100, description="The test's name in App Store Connect")
    app_id: str = Field(
        title="App",
        description="The app whose product page is tested",
        json_schema_extra={"choices": "app_id"},
    )
    platform: Platform = Field(default="IOS", title="Platform")
    traffic_proportion: int = Field(
        default=50,
        title="Traffic proportion (%)",
        ge=1,
        le=100,
        description="Share of App Store visitors sent to the treatments, split evenly between them",
    )
    treatments: CommaList = Field(
        default=["Treatment A", "Treatment B"],
        title="Treatments",
        min_length=1,
        max_length=MAX_TREATMENTS,
        description="1 to 3 comma-separated treatment names; the original product page is the control",
    )

    @field_validator("app_id")
    @classmethod
    def _app(cls, value: str) -> str:
        if not APP_ID.match(value.strip()):
            raise ValueError("pick an app from the list (its numeric Apple ID)")
        return value.strip()

    @field_validator("treatments")
    @classmethod
    def _treatments(cls, value: list[str]) -> list[str]:
        for name in value:
            if len(name) > 64:
                raise ValueError(f"{name[:20]!r}… is too long: treatment names have at most 64 characters")
        keys = [slug(name) for name in value]
        if len(set(keys)) != len(keys):
            raise ValueError("treatment names must differ (ignoring case and punctuation)")
        if "original" in keys:
            raise ValueError("'original' is the name of the control (the current product page)")
        return value


def private_key(secrets: Mapping[str, str]) -> tuple[str, str]:
    """The PEM text and the variable it came from; `ValueError` naming the variable (never echoing the key)."""
    if secrets.get(KEY):
        return secrets[KEY], KEY
    path = Path(secrets.get(KEY_PATH, ""))
    try:
        return path.read_text(), KEY_PATH
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise ValueError(f"{KEY_PATH}: {path} cannot be read ({why})") from None


def validate(settings: AppStoreSettings, secrets: Mapping[str, str]) -> list[str]:
    """Start-up problems: a missing, unreadable or non-EC key, each naming its variable."""
    try:
        pem, var = private_key(secrets)
    except ValueError as err:
        return [str(err)]
    try:
        load_ec_key(pem)
    except ValueError as err:
        return [f"{var}: {err}"]
    return []
