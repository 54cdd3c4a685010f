"""Buttons: Approve / Reject / Cancel on change requests, and the card's change and action buttons."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.change_forms import NEEDS_INPUT, change_modal
from bot.errors import UsageError
from bot.workflow import Workflow
from commands.guard import guarded
from providers.models import Change, ChangeKind

_NUMBER = re.compile(r"^[0-9]{1,12}$")
_CHANGES = "|".join(k.value for k in ChangeKind if k is not ChangeKind.ACTION)


def _action(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["actions"][0])


def _requests_shown(message: object) -> frozenset[int]:
    """The requests whose decision buttons the clicked message carries, as Slack sent the message along."""
    blocks = message.get("blocks") if isinstance(message, dict) else None
    found: set[int] = set()
    for block in blocks if isinstance(blocks, list) else []:
        elements = block.get("elements") if isinstance(block, dict) else None
        for element in elements if isinstance(elements, list) else []:
            if not isinstance(element, dict) or not str(element.get("action_id", "")).startswith("request_"):
                continue
            value = element.get("value")
            if isinstance(value, str) and _NUMBER.match(value):
                found.add(int(value))
    return frozenset(found)


def _id(value: object) -> int:
    """A button's numeric value, or a usage error (never a traceback) for anything else."""
    if not isinstance(value, str) or not _NUMBER.match(value):
        raise UsageError("This button is not one expbot made; nothing was changed.")
    return int(value)


def register(app: AsyncApp, workflow: Workflow) -> None:
    guard = guarded(workflow)
    decisions = {
        "request_approve": workflow.decisions.approve,
        "request_reject": workflow.decisions.reject,
        "request_cancel": workflow.decisions.cancel,
    }

    @app.action(re.compile(r"^request_(approve|reject|cancel)$"))
    @guard
    async def decide(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        action = _action(body)
        request_id = _id(action.get("value"))
        container, user = body.get("container") or {}, body["user"]["id"]
        where = container.get("channel_id"), container.get("message_ts")
        await workflow.decisions.check_clicked_on(request_id, *where, user, _requests_shown(body.get("message")))
        await decisions[action["action_id"]](request_id, user)

    @app.action("card_console")
    async def console(ack: AsyncAck) -> None:
        await ack()

    @app.action(re.compile(rf"^card_({_CHANGES})$"))
    @guard
    async def card_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        action = _action(body)
        kind = ChangeKind(action["action_id"].removeprefix("card_"))
        exp = workflow.experiments.by_id(_id(action.get("value")))
        if kind in NEEDS_INPUT:
            opts = workflow.experiments.provider_of(exp).options(exp.snapshot, kind)
            view = change_modal(exp.id, exp.ref, kind, exp.snapshot, opts)
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        else:
            await workflow.decisions.request_change(exp, Change(kind=kind), body["user"]["id"])

    @app.action("card_action")
    @guard
    async def card_action(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """A provider action (no traffic moves): carried out at once, journaled and audited like a change."""
        await ack()
        exp_id, _, key = str(_action(body).get("value", "")).partition(":")
        exp = workflow.experiments.by_id(_id(exp_id))
        await workflow.decisions.request_change(exp, Change(kind=ChangeKind.ACTION, action=key), body["user"]["id"])
