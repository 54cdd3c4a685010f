"""The Auth0 create modal: the draft model with the Management API's own rules for a new experiment."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, field_validator

TEXT = re.compile(r"(?!.*\x00)\S(.*\S)?")
"""Auth0's pattern for names and descriptions: no NUL, no leading or trailing blank, one line."""
FLAG_ID = re.compile(r"flg_[A-HJ-NP-Za-km-z1-9]+")
EXPERIMENT_ID = re.compile(r"exp_[A-HJ-NP-Za-km-z1-9]+")
AuthenticationFlow = Literal[
    "authentication", "mfa_enrollment", "mfa_challenge", "password_reset", "passkey_enrollment", "all"
]
AllocationStrategy = Literal["percentage", "segment"]


def check_text(value: str, what: str) -> str:
    """Auth0's documented text rule, said in words."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"Auth0 takes the {what} on one line")
    if not TEXT.fullmatch(value):
        raise ValueError(f"the {what} cannot start or end with a blank (or contain a NUL character)")
    return value


def _levels_in(value: object) -> object:
    if isinstance(value, str):
        return [part.strip().removesuffix("%").strip() for part in value.split(",") if part.strip()]
    return value


class Allocation(BaseModel):
    """One variation of the picked flag: its share of the traffic, whether it is the control, its segment."""

    variation: str = Field(title="Variation", min_length=1, description="Name or id (var_…) of the flag's variation")
    weight: int = Field(default=0, title="Weight (%)", ge=0, le=100)
    control: bool = Field(default=False, title="Control")
    segment_id: str | None = Field(default=None, title="Segment", description="Segment strategy only: its id")
    fallback: bool = Field(default=False, title="Fallback", description="Segment strategy only: serves everyone else")


class Auth0Draft(BaseModel):
    """Create fields of an Auth0 Experiment Center experiment (POST /api/v2/experimentation/experiments)."""

    name: str = Field(title="Name", min_length=3, max_length=255, description="3 to 255 characters, one line")
    feature_flag_id: str = Field(
        title="Feature flag",
        description="The flag whose variations are compared; picking one fills in its variations",
        json_schema_extra={"choices": "feature_flag_id", "rebuild": True},
    )
    authentication_flow: AuthenticationFlow = Field(default="authentication", title="Authentication flow")
    allocation_strategy: AllocationStrategy = Field(
        default="percentage", title="Allocation", description="percentage: by weight; segment: by user segment"
    )
    weights: list[Allocation] = Field(
        default_factory=list, title="Variations", description="Weights add up to 100; exactly one control"
    )
    levels: Annotated[list[int], BeforeValidator(_levels_in)] = Field(
        default_factory=list,
        title="Ramp levels (%)",
        description="Optional, e.g. 10, 25, 50, 100: exposure starts at the first and is advanced one level at a time",
    )
    description: str | None = Field(default=None, title="Description", min_length=3, max_length=1024)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_text(value, "name")

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value, "description")

    @field_validator("feature_flag_id")
    @classmethod
    def _flag(cls, value: str) -> str:
        if not FLAG_ID.fullmatch(value.strip()):
            raise ValueError("pick a feature flag from the list (its id looks like flg_…)")
        return value.strip()

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[int]) -> list[int]:
        if any(not 0 <= level <= 100 for level in value):
            raise ValueError("each ramp level is a percentage from 0 to 100")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("ramp levels must go strictly up, e.g. 10, 25, 50, 100")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, rows: list[Allocation], info: ValidationInfo) -> list[Allocation]:
        if not rows:
            raise ValueError("pick a feature flag first: its variations appear here")
        names = [r.variation.strip() for r in rows]
        if len(set(names)) != len(names):
            raise ValueError("each variation may appear once")
        if sum(r.control for r in rows) != 1:
            raise ValueError("tick exactly one variation as the control")
        if info.data.get("allocation_strategy", "percentage") == "segment":
            if sum(r.fallback for r in rows) != 1:
                raise ValueError("with segments, tick exactly one variation as the fallback")
            if any(not r.fallback and not (r.segment_id or "").strip() for r in rows):
                raise ValueError("with segments, every variation but the fallback needs a segment id")
        elif sum(r.weight for r in rows) != 100:
            raise ValueError(f"the weights must add up to 100 (they add up to {sum(r.weight for r in rows)})")
        return rows


def body_of(draft: Auth0Draft, variation_ids: dict[str, str]) -> dict[str, Any]:
    """The create body; `variation_ids` maps what the rows say (a name, key or id) to the variation's id."""
    allocations: list[dict[str, Any]] = []
    for priority, row in enumerate(draft.weights, start=1):
        item: dict[str, Any] = {"variation_id": variation_ids[row.variation.strip()], "is_control": row.control}
        if draft.allocation_strategy == "percentage":
            item["weight"] = row.weight
        else:
            item |= {"priority": priority, "is_fallback": row.fallback}
            if row.segment_id and row.segment_id.strip():
                item["segment_id"] = row.segment_id.strip()
        allocations.append(item)
    body: dict[str, Any] = {
        "name": draft.name,
        "feature_flag_id": draft.feature_flag_id,
        "authentication_flow": draft.authentication_flow,
        "allocation_strategy": draft.allocation_strategy,
        "assignment_config": {"subject": "device"},
        "allocations": allocations,
    }
    if draft.description:
        body["description"] = draft.description
    return body
