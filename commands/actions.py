"""Buttons: Approve / Reject / Cancel on change requests, and the card's change buttons."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import UsageError
from bot.forms import change_modal
from bot.workflow import Workflow
from commands.guard import guarded
from providers.base import Change, ChangeKind

NEEDS_INPUT = (ChangeKind.EXPOSURE, ChangeKind.WEIGHTS, ChangeKind.SHIP)


def _action(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["actions"][0])


def register(app: AsyncApp, workflow: Workflow) -> None:
    guard = guarded(workflow)

    decisions = {
        "request_approve": workflow.approve,
        "request_reject": workflow.reject,
        "request_cancel": workflow.cancel,
    }

    @app.action(re.compile(r"^request_(approve|reject|cancel)$"))
    @guard
    async def decide(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        action = _action(body)
        await decisions[action["action_id"]](int(action["value"]), body["user"]["id"])

    @app.action("card_console")
    async def console(ack: AsyncAck) -> None:
        await ack()

    @app.action(re.compile(r"^card_(start|pause|resume|stop|exposure|weights|ship)$"))
    @guard
    async def card_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        action = _action(body)
        kind = ChangeKind(action["action_id"].removeprefix("card_"))
        exp = workflow.store.experiment(int(action["value"]))
        if exp is None:
            raise UsageError("This card's experiment is no longer tracked.")
        if kind in NEEDS_INPUT:
            view = change_modal(exp.id, exp.ref, kind, exp.snapshot)
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        else:
            await workflow.request_change(exp, Change(kind=kind), body["user"]["id"])
