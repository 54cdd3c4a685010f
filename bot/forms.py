"""Modals generated from a provider's pydantic draft model, and turning their submissions back into values."""

from __future__ import annotations

import json
import types
import typing
from enum import Enum
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.errors import FieldErrors
from bot.views import clip, exposure_text, variant_lines
from providers.base import Change, ChangeKind, Snapshot

CREATE_CALLBACK = "create_experiment"
CHANGE_CALLBACK = "change_request"
PROVIDER_BLOCK = "provider"
PROVIDER_ACTION = "provider_select"


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `| None`, and whether None was allowed."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(get_args(annotation))
    return annotation, False


def _choices(annotation: Any) -> list[str] | None:
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(m.value) for m in annotation]
    return None


def _limit(field: FieldInfo, name: str) -> Any:
    for meta in field.metadata:
        if hasattr(meta, name):
            return getattr(meta, name)
    return None


def _default(field: FieldInfo, defaults: dict[str, Any], name: str) -> Any:
    if name in defaults:
        return defaults[name]
    if field.is_required():
        return None
    return field.get_default(call_default_factory=True)


def field_block(name: str, field: FieldInfo, default: Any) -> InputBlock:
    """One input block for one draft field; its block_id is the field's name."""
    annotation, nullable = _unwrap(field.annotation)
    label = clip(field.title or name.replace("_", " ").capitalize(), 2000)
    element: Any
    choices = _choices(annotation)
    if choices is not None:
        options = [Option(text=clip(c, 75), value=c[:150]) for c in choices[:100]]
        initial = next(
            (
                o
                for o in options
                if default is not None and o.value == str(default.value if isinstance(default, Enum) else default)
            ),
            None,
        )
        element = StaticSelectElement(action_id="value", options=options, initial_option=initial)
    elif annotation in (int, float):
        element = NumberInputElement(
            action_id="value",
            is_decimal_allowed=annotation is float,
            initial_value=None if default is None else str(default),
            min_value=_limit(field, "ge"),
            max_value=_limit(field, "le"),
        )
    else:
        max_len = _limit(field, "max_length")
        text = ", ".join(default) if isinstance(default, list) else default
        element = PlainTextInputElement(
            action_id="value",
            initial_value=None if text in (None, "") else str(text),
            max_length=min(max_len, 3000) if isinstance(max_len, int) and annotation is str else None,
            multiline=isinstance(max_len, int) and max_len > 150 and annotation is str,
        )
    return InputBlock(
        block_id=name,
        label=label,
        element=element,
        optional=nullable or not field.is_required(),
        hint=clip(field.description, 2000) if field.description else None,
    )


def create_modal(
    providers: dict[str, str],
    chosen: str | None,
    draft: type[BaseModel] | None,
    channel: str,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The create modal: a provider select that swaps in that provider's fields."""
    options = [Option(text=label, value=name) for name, label in providers.items()]
    picked = next((o for o in options if o.value == chosen), None)
    blocks: list[Block] = [
        InputBlock(
            block_id=PROVIDER_BLOCK,
            label="Provider",
            dispatch_action=True,
            element=StaticSelectElement(
                action_id=PROVIDER_ACTION,
                options=options,
                initial_option=picked,
                placeholder="Where the experiment runs",
            ),
        )
    ]
    if draft is None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Pick a provider to see its fields.")]))
    else:
        blocks += [field_block(n, f, _default(f, defaults or {}, n)) for n, f in draft.model_fields.items()]
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text="The experiment is created as a draft that serves no traffic; "
                        "starting it needs an approval."
                    )
                ]
            )
        )
    return View(
        type="modal",
        callback_id=CREATE_CALLBACK,
        title="New experiment",
        submit="Create",
        close="Cancel",
        blocks=blocks[:100],
        private_metadata=json.dumps({"provider": chosen, "channel": channel}),
    ).to_dict()


def state_value(entry: dict[str, Any]) -> Any:
    """The value of one element in `view.state.values`."""
    if "selected_option" in entry:
        option = entry["selected_option"]
        return option["value"] if option else None
    if "selected_options" in entry:
        return [o["value"] for o in entry["selected_options"] or []]
    return entry.get("value")


def submitted(view: dict[str, Any]) -> dict[str, Any]:
    """Every input's value by block_id (empty inputs left out)."""
    values: dict[str, Any] = {}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        for entry in actions.values():
            value = state_value(entry)
            if value not in (None, "", []):
                values[block_id] = value
    return values


def parse_draft(draft: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """Validate a submission against the draft model; `FieldErrors` keyed by block_id otherwise."""
    data = {k: v for k, v in values.items() if k in draft.model_fields}
    try:
        return draft.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else next(iter(draft.model_fields))
            msg = "This field is required." if err["type"] == "missing" else err["msg"]
            errors.setdefault(key, clip(msg.removeprefix("Value error, "), 2000))
        raise FieldErrors(errors) from None


def change_modal(exp_id: int, ref: str, kind: ChangeKind, snap: Snapshot) -> dict[str, Any]:
    """Asks the value a card button needs (ramp percent, weights, winner) before posting a request."""
    blocks: list[Block] = [
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=clip(
                        f"`{ref}` {snap.name}: {snap.status.value}, exposure {exposure_text(snap)}\n"
                        + variant_lines(snap),
                        3000,
                    )
                )
            ]
        )
    ]
    if kind is ChangeKind.EXPOSURE:
        blocks.append(
            InputBlock(
                block_id="exposure",
                label="New exposure (%)",
                element=NumberInputElement(
                    action_id="value",
                    is_decimal_allowed=False,
                    min_value=0,
                    max_value=100,
                    initial_value=None if snap.exposure is None else str(snap.exposure),
                ),
            )
        )
    elif kind is ChangeKind.WEIGHTS:
        blocks += [
            InputBlock(
                block_id=f"weight_{v.key}",
                label=clip(f"Weight of {v.key} (%)", 2000),
                element=NumberInputElement(
                    action_id="value", is_decimal_allowed=False, min_value=0, max_value=100, initial_value=str(v.weight)
                ),
            )
            for v in snap.variants
        ]
    else:
        blocks.append(
            InputBlock(
                block_id="variant",
                label="Winning variant",
                element=StaticSelectElement(
                    action_id="value", options=[Option(text=clip(v.key, 75), value=v.key) for v in snap.variants]
                ),
            )
        )
    title = {ChangeKind.EXPOSURE: "Ramp", ChangeKind.WEIGHTS: "Re-split", ChangeKind.SHIP: "Ship a winner"}[kind]
    return View(
        type="modal",
        callback_id=CHANGE_CALLBACK,
        title=title,
        submit="Request",
        close="Cancel",
        blocks=blocks,
        private_metadata=json.dumps({"experiment": exp_id, "kind": kind.value}),
    ).to_dict()


def parse_change(kind: ChangeKind, values: dict[str, Any]) -> Change:
    try:
        if kind is ChangeKind.EXPOSURE:
            return Change(kind=kind, exposure=int(values.get("exposure", "")))
        if kind is ChangeKind.WEIGHTS:
            weights = {k.removeprefix("weight_"): int(v) for k, v in values.items() if k.startswith("weight_")}
            return Change(kind=kind, weights=weights)
        if "variant" not in values:
            raise FieldErrors({"variant": "Pick the winning variant."})
        return Change(kind=kind, variant=str(values["variant"]))
    except (ValueError, ValidationError):
        block = "exposure" if kind is ChangeKind.EXPOSURE else next(iter(values), "exposure")
        raise FieldErrors({block: "Enter a whole number from 0 to 100."}) from None
