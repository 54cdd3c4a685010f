"""The change modals (ramp, re-split, ship) built from what the provider offers, and their submissions parsed."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.errors import FieldErrors
from bot.mrkdwn import clip, escape, pct
from bot.views import variant_lines
from providers.base import ChangeOptions
from providers.models import Change, ChangeKind, Snapshot

CHANGE_CALLBACK = "change_request"
NEEDS_INPUT = (ChangeKind.EXPOSURE, ChangeKind.WEIGHTS, ChangeKind.SHIP)
_TITLES = {ChangeKind.EXPOSURE: "Ramp", ChangeKind.WEIGHTS: "Re-split", ChangeKind.SHIP: "Ship a winner"}


def _number(value: float | None, decimals: bool) -> str | None:
    if value is None:
        return None
    return f"{round(value, 2):g}" if decimals else str(round(value))


def change_modal(exp_id: int, ref: str, kind: ChangeKind, snap: Snapshot, opts: ChangeOptions) -> dict[str, Any]:
    """Asks the value a card button needs before posting a request; only the choices the provider offers."""
    summary = f"`{ref}` {escape(snap.name)}: {snap.status.value}, exposure {pct(snap.exposure)}\n" + variant_lines(snap)
    blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(text=clip(summary, 3000))])]
    if kind is ChangeKind.EXPOSURE and opts.exposure_levels is not None:
        levels = [Option(text=pct(lv), value=f"{lv:g}") for lv in opts.exposure_levels]
        element: Any = StaticSelectElement(action_id="value", options=levels or [Option(text="—", value="none")])
        blocks.append(InputBlock(block_id="exposure", label="Next ramp level", element=element))
    elif kind is ChangeKind.EXPOSURE:
        element = NumberInputElement(
            action_id="value",
            is_decimal_allowed=opts.decimals,
            min_value=_number(opts.exposure_min, opts.decimals),
            max_value=_number(opts.exposure_max, opts.decimals),
            initial_value=_number(snap.exposure, opts.decimals),
        )
        blocks.append(InputBlock(block_id="exposure", label="New exposure (%)", element=element))
    elif kind is ChangeKind.WEIGHTS:
        blocks += [
            InputBlock(
                block_id=f"weight_{v.key}"[:255],
                label=clip(f"Weight of {v.key} (%)", 2000),
                element=NumberInputElement(
                    action_id="value",
                    is_decimal_allowed=True,
                    min_value="0",
                    max_value="100",
                    initial_value=_number(v.weight, True),
                ),
            )
            for v in snap.variants
        ]
    else:
        variants = [Option(text=clip(k, 75), value=k[:150]) for k in opts.variants] or [Option(text="—", value="none")]
        blocks.append(
            InputBlock(
                block_id="variant",
                label="Winning variant",
                element=StaticSelectElement(action_id="value", options=variants),
            )
        )
    return View(
        type="modal",
        callback_id=CHANGE_CALLBACK,
        title=_TITLES[kind],
        submit="Request",
        close="Cancel",
        blocks=blocks,
        private_metadata=json.dumps({"experiment": exp_id, "kind": kind.value}),
    ).to_dict()


def parse_change(kind: ChangeKind, values: dict[str, Any]) -> Change:
    """The change a modal asked for; `FieldErrors` keyed by block_id for what cannot be read."""
    try:
        if kind is ChangeKind.EXPOSURE:
            return Change(kind=kind, exposure=float(values.get("exposure", "")))
        if kind is ChangeKind.WEIGHTS:
            weights = {k.removeprefix("weight_"): float(v) for k, v in values.items() if k.startswith("weight_")}
            return Change(kind=kind, weights=weights)
        if "variant" not in values:
            raise FieldErrors({"variant": "Pick the winning variant."})
        return Change(kind=kind, variant=str(values["variant"]))
    except (ValueError, TypeError, ValidationError):
        block = "exposure" if kind is ChangeKind.EXPOSURE else next(iter(values), "exposure")
        raise FieldErrors({block: "Enter a number from 0 to 100."}) from None
