"""LaunchDarkly's settings (`[providers.launchdarkly]`) and the draft model its create modal is generated from."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from providers.base import Text, even_weights
from providers.errors import BadRequest
from providers.launchdarkly_mapping import NAME, Json, allocations, variation_name
from providers.models import WEIGHT_TOLERANCE
from providers.registry import BaseUrl, ProviderSettings

DEFAULT_BASE_URL = "https://app.launchdarkly.com"
_KEY = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,255}$")
_PART = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")


def derive_key(name: str) -> str:
    """An experiment key from its name: lower case, runs of anything else turned into one dash (≤ 64)."""
    key = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return key or "experiment"


def _part(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not _PART.match(value):
        raise ValueError(f"{value!r} is not a LaunchDarkly {what} key (letters, digits, . _ -)")
    return value


ProjectKey = Annotated[str | None, AfterValidator(lambda v: _part(v, "project"))]
EnvironmentKey = Annotated[str | None, AfterValidator(lambda v: _part(v, "environment"))]
"""A project or environment key as settings and drafts take it: trimmed, blank for none, refused if malformed."""


class LaunchDarklySettings(ProviderSettings):
    """`[providers.launchdarkly]`: the instance (commercial, federal, EU, a test server) and the default
    project and environment for the create modal and for `track <key>`."""

    base_url: BaseUrl | None = Field(default=DEFAULT_BASE_URL, description="LaunchDarkly instance")
    project: ProjectKey = Field(default=None, description="default project key")
    environment: EnvironmentKey = Field(default=None, description="default environment key")

    @property
    def root(self) -> str:
        return str(self.base_url or DEFAULT_BASE_URL).rstrip("/")


class TreatmentRow(BaseModel):
    """One treatment of the first iteration: a variation of the flag and its share of the experiment's traffic."""

    name: Text = Field(title="Treatment", min_length=1, max_length=200, description="A variation of the flag")
    weight: float = Field(title="Share (%)", ge=0, le=100, description="Its share of the experiment's traffic")


class LaunchDarklyDraft(BaseModel):
    """Create fields of a LaunchDarkly experiment; the flag's version and rule are read from the flag."""

    name: Text = Field(title="Name", min_length=1, max_length=200, description="Shown on the card and in LaunchDarkly")
    key: str | None = Field(
        default=None, title="Key", max_length=256, description="Leave blank to derive it from the name"
    )
    hypothesis: Text = Field(
        default="The treatment improves the primary metric",
        title="Hypothesis",
        min_length=1,
        max_length=1000,
        description="The expected outcome",
    )
    project: ProjectKey = Field(default=None, title="Project", max_length=100, description="LaunchDarkly project key")
    environment: EnvironmentKey = Field(
        default=None, title="Environment", max_length=100, description="LaunchDarkly environment key"
    )
    flag_key: str = Field(
        title="Flag",
        description="Its variations become the treatments (the first is the baseline)",
        json_schema_extra={"choices": "flag_key", "rebuild": True},
    )
    metric_key: str = Field(
        title="Primary metric", description="A metric of the project", json_schema_extra={"choices": "metric_key"}
    )
    randomization_unit: str = Field(
        default="user",
        title="Randomization unit",
        description="The context kind users are randomized by",
        json_schema_extra={"choices": "randomization_unit"},
    )
    exposure: float = Field(
        default=10, title="Exposure (%)", ge=0.01, le=100, description="Share of the flag's traffic in the experiment"
    )
    treatments: list[TreatmentRow] = Field(
        default_factory=list,
        title="Treatments",
        description="Filled in from the flag: every variation, split evenly; a share of 0 leaves one out",
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _KEY.match(value.strip()):
            raise ValueError("a key is letters, digits, . _ or - (starting with a letter or digit)")
        return value.strip()

    @model_validator(mode="after")
    def _shares(self) -> LaunchDarklyDraft:
        """Checks across the treatment rows, reported on the first row's share (the modal shows it there)."""
        chosen = [t for t in self.treatments if t.weight > 0]
        if not self.treatments:
            return self
        total = sum(t.weight for t in chosen)
        if not math.isclose(total, 100, abs_tol=WEIGHT_TOLERANCE * max(1, len(chosen))):
            self._row_error(f"the treatments' shares must add up to 100 (they add up to {round(total, 2):g})")
        if len(chosen) < 2:
            self._row_error("an experiment needs at least two treatments with a share above 0")
        names = [t.name for t in chosen]
        if len(set(names)) != len(names):
            self._row_error("each treatment must be a different variation")
        return self

    def _row_error(self, message: str) -> None:
        detail = InitErrorDetails(
            type=PydanticCustomError("treatments", message),
            loc=("treatments", 0, "weight"),
            input=self.treatments[0].weight,
        )
        raise ValidationError.from_exception_data(type(self).__name__, [detail])

    @property
    def experiment_key(self) -> str:
        return self.key or derive_key(self.name)


def create_body(draft: LaunchDarklyDraft, flag: Json) -> Json:
    """The `ExperimentPost` of a draft: its first iteration is a draft on the flag's default rule, pinned to the
    flag's version; treatments are the chosen variations (all of them, split evenly, when none were chosen)."""
    variations = {variation_name(v): v for v in flag.get("variations") or []}
    rows = [(t.name, t.weight) for t in draft.treatments if t.weight > 0]
    if not rows:
        rows = list(zip(variations, even_weights(len(variations)), strict=True))
    unknown = [name for name, _ in rows if name not in variations]
    if unknown:
        raise BadRequest(
            NAME, f"the flag {draft.flag_key} has no variation {unknown[0]!r} (it has: {', '.join(variations)})"
        )
    allocs = allocations(draft.exposure, [w for _, w in rows])
    treatments = [
        {
            "name": name,
            "baseline": i == 0,
            "allocationPercent": alloc,
            "parameters": [{"flagKey": draft.flag_key, "variationId": str(variations[name].get("_id"))}],
        }
        for i, ((name, _), alloc) in enumerate(zip(rows, allocs, strict=True))
    ]
    iteration = {
        "hypothesis": draft.hypothesis,
        "metrics": [{"key": draft.metric_key, "isGroup": False}],
        "primarySingleMetricKey": draft.metric_key,
        "treatments": treatments,
        "flags": {draft.flag_key: {"ruleId": "fallthrough", "flagConfigVersion": int(flag["_version"])}},
        "randomizationUnit": draft.randomization_unit,
    }
    return {"name": draft.name, "key": draft.experiment_key, "iteration": iteration}
