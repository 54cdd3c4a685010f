"""Amplitude Experiment's settings (`[providers.amplitude]`) and the draft model its create modal is built from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, field_validator

from providers.base import CommaList, Text
from providers.registry import ProviderSettings

DEFAULT_BASE_URL = "https://experiment.amplitude.com"
EU_BASE_URL = "https://experiment.eu.amplitude.com"
SECRET = "AMPLITUDE_API_KEY"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _as_text(value: object) -> object:
    """Project and deployment ids are strings to Amplitude; TOML may spell them as numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


class AmplitudeSettings(ProviderSettings):
    """`[providers.amplitude]`: the API host (EU: https://experiment.eu.amplitude.com), project and deployments."""

    project_id: Annotated[str | None, BeforeValidator(_as_text)] = Field(
        default=None, description="the Amplitude project experiments are created in (its id)"
    )
    deployments: Annotated[list[str], BeforeValidator(_as_text)] = Field(
        default_factory=list, description="deployment ids the create modal picks by default"
    )

    @property
    def api_base(self) -> str:
        return str(self.base_url).rstrip("/") if self.base_url else DEFAULT_BASE_URL


def validate_settings(settings: AmplitudeSettings, secrets: Mapping[str, str]) -> list[str]:
    """Start-up problems: a blank key, no project (create and track by key need one)."""
    problems = []
    if not secrets.get(SECRET, "").strip():
        problems.append(f"{SECRET}: is blank")
    if not (settings.project_id or "").strip():
        problems.append(
            "[providers.amplitude] project_id: missing (the Amplitude project experiments are created in; "
            "its id is in the project's settings)"
        )
    return problems


def key_from(name: str) -> str:
    """An experiment key from its name, as Amplitude's console derives one: lower case, words joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100].rstrip("-")


class AmplitudeDraft(BaseModel):
    """Create fields of an Amplitude experiment (POST /api/1/experiments); only the name needs typing."""

    name: Text = Field(title="Name", min_length=1, max_length=200, description="Shown in Amplitude and on the card")
    key: str | None = Field(
        default=None,
        title="Key",
        max_length=100,
        description="The flag key your code asks for; left blank, it is made from the name",
        validate_default=True,
    )
    description: str | None = Field(default=None, title="Description", max_length=1000)
    variants: CommaList = Field(
        default=["control", "treatment"],
        title="Variants",
        min_length=2,
        max_length=10,
        description="2 to 10 comma-separated keys; the first is the control; they start with equal weights",
    )
    deployments: CommaList = Field(
        default_factory=list,
        title="Deployment",
        description="Where the experiment is served (the project's deployments); without one it serves nobody",
        json_schema_extra={"choices": "deployments"},
    )
    evaluation_mode: Literal["remote", "local"] = Field(default="remote", title="Evaluation mode")
    bucketing_key: Text = Field(
        default="amplitude_id",
        title="Bucketing key",
        min_length=1,
        max_length=100,
        description="The user property users are bucketed by",
    )

    @field_validator("description", "key", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("variants")
    @classmethod
    def _variant_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not _VARIANT.match(key):
                raise ValueError(f"{key!r} is not a valid variant key: letters, digits, '.', '-' or '_' (≤ 64)")
        if len(set(value)) != len(value):
            raise ValueError("variant keys must be different")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None, info: ValidationInfo) -> str:
        key = (value or "").strip() or key_from(str(info.data.get("name") or ""))
        if not key:
            raise ValueError("give a key: the name has no letters or digits to make one from")
        if not _KEY.match(key):
            raise ValueError(f"{key!r} is not a valid key: letters, digits, '.', '-' or '_' (≤ 100)")
        return key

    def create_body(self, project_id: str) -> dict[str, Any]:
        """The POST /api/1/experiments body: a draft (not enabled, rollout 0) with equal weights."""
        body: dict[str, Any] = {"projectId": project_id, "key": self.key, "name": self.name}
        if self.description:
            body["description"] = self.description
        body["variants"] = [{"key": key} for key in self.variants]
        body["rolloutWeights"] = dict.fromkeys(self.variants, 1)
        body["bucketingKey"] = self.bucketing_key
        body["evaluationMode"] = self.evaluation_mode
        if self.deployments:
            body["deployments"] = list(self.deployments)
        return body
