"""Create modals generated from a provider's pydantic draft model, and their submissions turned back into values.

Field metadata (`json_schema_extra`) a draft model may use: `{"choices": "<name>"}` — an external select whose
options come from `provider.choices(name, query, values)` (shown when the menu opens); `{"rebuild": True}` —
changing the field rebuilds the modal with `provider.form_defaults(values)` (pick a flag → its variations
appear). A `list[SubModel]` field is shown as repeated rows, one per item of its default; `bool` as a checkbox.
"""

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
    CheckboxesElement,
    ContextBlock,
    ExternalDataSelectElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.errors import FieldErrors
from bot.mrkdwn import clip
from providers.base import Provider

CREATE_CALLBACK = "create_experiment"
PROVIDER_BLOCK = "provider"
PROVIDER_ACTION = "provider_select"
CHOICES_ACTION = "choices"
REBUILD_ACTION = "rebuild"
ROW = "."


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


def _rows_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def _extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def _limit(field: FieldInfo, name: str) -> Any:
    return next((getattr(m, name) for m in field.metadata if hasattr(m, name)), None)


def field_default(field: FieldInfo, defaults: dict[str, Any], name: str) -> Any:
    if name in defaults:
        return defaults[name]
    return None if field.is_required() else field.get_default(call_default_factory=True)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{round(value, 4):g}"
    return str(value.value if isinstance(value, Enum) else value)


def field_blocks(name: str, field: FieldInfo, default: Any, label: str | None = None) -> list[InputBlock]:
    """The input block(s) of one draft field; block_ids are field names (`rows.0.weight` for repeated rows)."""
    annotation, nullable = _unwrap(field.annotation)
    rows = _rows_model(annotation)
    if rows is not None:
        items = default if isinstance(default, list) and default else [{}]
        return [
            block
            for i, item in enumerate(items[:10])
            for sub, sub_field in rows.model_fields.items()
            for block in field_blocks(
                f"{name}{ROW}{i}{ROW}{sub}",
                sub_field,
                (item.model_dump() if isinstance(item, BaseModel) else dict(item)).get(
                    sub, field_default(sub_field, {}, sub)
                ),
                f"{sub_field.title or sub} ({i + 1})",
            )
        ]
    extra, title = _extra(field), clip(label or field.title or name.replace("_", " ").capitalize(), 2000)
    element: Any
    options = _choices(annotation)
    initial = None if default in (None, "") else Option(text=clip(_text(default), 75), value=_text(default)[:150])
    if extra.get("choices"):
        element = ExternalDataSelectElement(action_id=CHOICES_ACTION, min_query_length=0, initial_option=initial)
    elif options is not None:
        opts = [Option(text=clip(c, 75), value=c[:150]) for c in options[:100]]
        chosen = next((o for o in opts if default is not None and o.value == _text(default)), None)
        element = StaticSelectElement(action_id="value", options=opts, initial_option=chosen)
    elif annotation is bool:
        yes = Option(text=title[:75], value="true")
        element = CheckboxesElement(action_id="value", options=[yes], initial_options=[yes] if default else None)
    elif annotation in (int, float):
        element = NumberInputElement(
            action_id="value",
            is_decimal_allowed=annotation is float,
            initial_value=None if default is None else _text(default),
            min_value=_limit(field, "ge"),
            max_value=_limit(field, "le"),
        )
    else:
        max_len = _limit(field, "max_length")
        text = ", ".join(map(str, default)) if isinstance(default, list) else default
        element = PlainTextInputElement(
            action_id="value",
            initial_value=None if text in (None, "") else str(text),
            max_length=min(max_len, 3000) if isinstance(max_len, int) and annotation is str else None,
            multiline=isinstance(max_len, int) and max_len > 150 and annotation is str,
        )
    rebuild = bool(extra.get("rebuild"))
    if rebuild and hasattr(element, "action_id") and element.action_id == "value":
        element.action_id = REBUILD_ACTION
    return [
        InputBlock(
            block_id=name,
            label=title,
            element=element,
            dispatch_action=rebuild,
            optional=nullable or not field.is_required() or annotation is bool,
            hint=clip(field.description, 2000) if field.description else None,
        )
    ]


async def create_modal(
    providers: dict[str, str], provider: Provider | None, channel: str, values: dict[str, Any]
) -> dict[str, Any]:
    """The create modal: a provider select, then that provider's fields pre-filled with its defaults."""
    options = [Option(text=label, value=name) for name, label in providers.items()]
    picked = next((o for o in options if provider is not None and o.value == provider.name), None)
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
    if provider is None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Pick a provider to see its fields.")]))
    else:
        defaults = provider.draft_defaults() | _unflat(values) | await provider.form_defaults(values)
        for name, field in provider.draft_model.model_fields.items():
            blocks += field_blocks(name, field, field_default(field, defaults, name))
        note = "The experiment is created as a draft that serves no traffic; starting it needs an approval."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    return View(
        type="modal",
        callback_id=CREATE_CALLBACK,
        title="New experiment",
        submit="Create",
        close="Cancel",
        blocks=blocks[:100],
        private_metadata=json.dumps({"provider": provider.name if provider else None, "channel": channel}),
    ).to_dict()


def state_value(entry: dict[str, Any]) -> Any:
    """The value of one element in `view.state.values`."""
    if "selected_option" in entry:
        option = entry["selected_option"]
        return option["value"] if option else None
    if "selected_options" in entry:
        values = [o["value"] for o in entry["selected_options"] or []]
        return values == ["true"] if entry.get("type") == "checkboxes" else values
    return entry.get("value")


def submitted(view: dict[str, Any]) -> dict[str, Any]:
    """Every input's value by block_id (empty inputs left out; an unticked checkbox is False)."""
    values: dict[str, Any] = {}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        for entry in actions.values():
            value = state_value(entry)
            if value not in (None, "", []):
                values[block_id] = value
    return values


def _unflat(values: dict[str, Any]) -> dict[str, Any]:
    """`rows.0.weight` style keys gathered into lists of dicts."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        parts = key.split(ROW)
        if len(parts) == 3 and parts[1].isdigit():
            rows = out.setdefault(parts[0], [])
            while len(rows) <= int(parts[1]):
                rows.append({})
            rows[int(parts[1])][parts[2]] = value
        else:
            out[key] = value
    return out


def parse_draft(draft: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """Validate a submission against the draft model; `FieldErrors` keyed by block_id otherwise."""
    data = {k: v for k, v in _unflat(values).items() if k in draft.model_fields}
    try:
        return draft.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]] or [next(iter(draft.model_fields))]
            key = ROW.join(loc[:3]) if len(loc) >= 3 and loc[1].isdigit() else loc[0]
            if key not in values and loc[0] in draft.model_fields:  # a rule over all rows: show it on the first
                key = next((k for k in values if k.startswith(loc[0] + ROW)), loc[0])
            msg = "This field is required." if err["type"] == "missing" else err["msg"]
            errors.setdefault(key, clip(msg.removeprefix("Value error, "), 2000))
        raise FieldErrors(errors) from None
