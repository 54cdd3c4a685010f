"""The Auth0 create modal: the documented rules checked inline, flags read from Auth0, variations filled in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.errors import FieldErrors
from bot.forms import field_blocks, field_default, parse_draft
from providers.auth0 import Auth0Provider
from providers.auth0_forms import Allocation, Auth0Draft, body_of
from tests.contract.harness_auth0 import provider_for
from tests.fake_auth0 import FakeAuth0

FLAG = "flg_abcDEF123"
ROWS = {
    "weights.0.variation": "control",
    "weights.0.weight": "50",
    "weights.0.control": True,
    "weights.1.variation": "b",
    "weights.1.weight": "50",
}


@pytest.fixture
def fake() -> Iterator[FakeAuth0]:
    server = FakeAuth0().start()
    yield server
    server.stop()


@pytest.fixture
async def provider(fake: FakeAuth0) -> AsyncIterator[Auth0Provider]:
    built = provider_for(fake)
    yield built
    await built.aclose()


def _errors(values: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(FieldErrors) as err:
        parse_draft(Auth0Draft, {"name": "Login copy", "feature_flag_id": FLAG, **ROWS, **values})
    return err.value.errors


def test_only_the_name_needs_typing_once_a_flag_is_picked() -> None:
    draft = parse_draft(Auth0Draft, {"name": "Login copy", "feature_flag_id": FLAG, **ROWS})
    assert isinstance(draft, Auth0Draft)
    assert draft.authentication_flow == "authentication" and draft.allocation_strategy == "percentage"
    assert draft.levels == [] and draft.description is None
    body = body_of(draft, {"control": "var_1", "b": "var_2"})
    assert body == {
        "name": "Login copy",
        "feature_flag_id": FLAG,
        "authentication_flow": "authentication",
        "allocation_strategy": "percentage",
        "assignment_config": {"subject": "device"},
        "allocations": [
            {"variation_id": "var_1", "is_control": True, "weight": 50},
            {"variation_id": "var_2", "is_control": False, "weight": 50},
        ],
    }


@pytest.mark.parametrize(
    ("values", "block", "says"),
    [
        ({"name": " Login"}, "name", "cannot start or end with a blank"),
        ({"name": "ab"}, "name", "at least 3 characters"),
        ({"description": "two\nlines"}, "description", "on one line"),
        ({"description": "ok "}, "description", "cannot start or end with a blank"),
        ({"feature_flag_id": "flag-1"}, "feature_flag_id", "pick a feature flag"),
        ({"levels": "10, 5"}, "levels", "strictly up"),
        ({"levels": "10, 120"}, "levels", "from 0 to 100"),
        ({"weights.1.weight": "40"}, "weights.0.variation", "add up to 100 (they add up to 90)"),
        ({"weights.1.control": True}, "weights.0.variation", "exactly one variation as the control"),
        ({"weights.1.variation": "control"}, "weights.0.variation", "each variation may appear once"),
        ({"allocation_strategy": "segment"}, "weights.0.variation", "exactly one variation as the fallback"),
        (
            {"allocation_strategy": "segment", "weights.1.fallback": True},
            "weights.0.variation",
            "needs a segment id",
        ),
    ],
)
def test_documented_rules_are_checked_inline(values: dict[str, Any], block: str, says: str) -> None:
    errors = _errors(values)
    assert block in errors and says in errors[block], errors


def test_levels_and_segments_become_the_documented_body() -> None:
    values = {"allocation_strategy": "segment", "weights.0.segment_id": "seg_1", "weights.1.fallback": True}
    draft = parse_draft(
        Auth0Draft, {"name": "Seg", "feature_flag_id": FLAG, "levels": "10, 25%, 100", **ROWS, **values}
    )
    assert isinstance(draft, Auth0Draft) and draft.levels == [10, 25, 100]
    assert body_of(draft, {"control": "var_1", "b": "var_2"})["allocations"] == [
        {"variation_id": "var_1", "is_control": True, "priority": 1, "is_fallback": False, "segment_id": "seg_1"},
        {"variation_id": "var_2", "is_control": False, "priority": 2, "is_fallback": True},
    ]


def test_the_modal_blocks_are_named_for_the_fields() -> None:
    rows = [Allocation(variation="control", weight=50, control=True), Allocation(variation="b", weight=50)]
    blocks = [
        b.to_dict()
        for n, f in Auth0Draft.model_fields.items()
        for b in field_blocks(n, f, field_default(f, {"weights": rows}, n))
    ]
    by_id = {b["block_id"]: b for b in blocks}
    flag = by_id["feature_flag_id"]
    assert flag["element"]["type"] == "external_select" and flag["dispatch_action"] is True
    assert by_id["authentication_flow"]["element"]["initial_option"]["value"] == "authentication"
    assert [o["value"] for o in by_id["allocation_strategy"]["element"]["options"]] == ["percentage", "segment"]
    assert by_id["weights.1.variation"]["element"]["initial_value"] == "b"
    assert by_id["weights.0.weight"]["element"]["initial_value"] == "50"
    assert by_id["weights.0.control"]["element"]["type"] == "checkboxes"
    assert by_id["name"]["element"]["max_length"] == 255 and by_id["description"]["optional"] is True


async def test_flags_come_from_auth0_and_a_pick_fills_in_its_variations(
    fake: FakeAuth0, provider: Auth0Provider
) -> None:
    login = fake.add_flag("Login button", ("control", "green", "blue"))
    fake.add_flag("Old flag", status="archived")
    beta = fake.add_flag("Beta banner", status="draft")
    offered = await provider.choices("feature_flag_id", "", {})
    assert [(c.value, c.label) for c in offered] == [
        (login, f"Login button · {login}"),
        (beta, f"Beta banner · {beta} (draft)"),
    ]
    assert [c.value for c in await provider.choices("feature_flag_id", "login", {})] == [login]
    assert await provider.choices("name", "", {}) == []
    defaults = await provider.form_defaults({"feature_flag_id": login})
    assert defaults == {
        "weights": [
            {"variation": "control", "weight": 34, "control": True},
            {"variation": "green", "weight": 33, "control": False},
            {"variation": "blue", "weight": 33, "control": False},
        ]
    }
    assert await provider.form_defaults({}) == {}
