"""The sandbox's create fields (draft model), its settings and the ready-made variant templates its modal offers."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from providers.base import CommaList, Text
from providers.faults import FaultKind, Latency
from providers.registry import ProviderSettings

_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TEMPLATES = {
    "two-way": ("A/B: control and one treatment", ["control", "treatment"]),
    "three-way": ("A/B/C: control and two treatments", ["control", "a", "b"]),
    "five-way": ("A/B/n: control and four treatments", ["control", "a", "b", "c", "d"]),
}
"""Ready-made variant lists the create modal offers (choices read from the provider, as real adapters do)."""


class SandboxSettings(ProviderSettings):
    """`[providers.sandbox]`: a latency for every call and a fault for writes, for demos, benchmarks and tests."""

    latency: Latency = Field(default=0.0, description='every call takes this long, e.g. "400ms" or "2s"')
    fault: FaultKind = Field(default="none", description="how writes fail: conflict, stale, server_error, …")
    fault_rate: float = Field(default=1.0, ge=0, le=1, description="share of writes that fail when a fault is set")


class SandboxDraft(BaseModel):
    """Create fields of a sandbox experiment."""

    name: Text = Field(title="Name", min_length=1, max_length=80, description="Shown on the card")
    template: str | None = Field(
        default=None,
        title="Start from",
        description="A ready-made set of variants; picking one fills them in",
        json_schema_extra={"choices": "template", "rebuild": True},
    )
    variants: CommaList = Field(
        default=["control", "treatment"],
        title="Variants",
        min_length=2,
        max_length=5,
        description="2 to 5 comma-separated keys (lower case, digits, - or _); the first is the control",
    )
    exposure: int = Field(
        default=10, title="Exposure (%)", ge=0, le=100, description="Share of eligible traffic once it starts"
    )
    sticky: bool = Field(default=True, title="Keep each user in their variant")

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and value not in TEMPLATES:
            raise ValueError(f"no template {value!r}; pick one of the list")
        return value

    @field_validator("variants")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not _KEY.match(key):
                raise ValueError(f"{key!r} is not a valid key: start with a-z, then a-z 0-9 - _ (≤ 32)")
        if len(set(value)) != len(value):
            raise ValueError("variant keys must be different")
        return value
