"""Modal listeners: the provider select that swaps fields, and the create and change submissions."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import FieldErrors, PermissionDenied, UsageError
from bot.forms import (
    CHANGE_CALLBACK,
    CREATE_CALLBACK,
    PROVIDER_ACTION,
    PROVIDER_BLOCK,
    create_modal,
    parse_change,
    parse_draft,
    submitted,
)
from bot.models import Experiment
from bot.workflow import Workflow
from commands.guard import guarded
from providers.base import Change, ChangeKind, ProviderError


def register(app: AsyncApp, workflow: Workflow) -> None:
    guard = guarded(workflow)

    @app.action(PROVIDER_ACTION)
    @guard
    async def provider_chosen(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        view = body["view"]
        chosen = body["actions"][0]["selected_option"]["value"]
        meta = json.loads(view.get("private_metadata") or "{}")
        draft = workflow.provider(chosen).draft_model
        await client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=create_modal(workflow.labels, chosen, draft, meta.get("channel", "")),
        )

    @app.view(CREATE_CALLBACK)
    @guard
    async def create(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body["view"]
        values = submitted(view)
        meta = json.loads(view.get("private_metadata") or "{}")
        chosen = values.get(PROVIDER_BLOCK)
        if not chosen:
            raise FieldErrors({PROVIDER_BLOCK: "Pick a provider."})
        draft_model = workflow.provider(chosen).draft_model
        if chosen != meta.get("provider"):
            await ack(
                response_action="update",
                view=create_modal(workflow.labels, chosen, draft_model, meta.get("channel", "")),
            )
            return
        draft = parse_draft(draft_model, values)
        await ack()
        await workflow.create(chosen, draft, meta.get("channel", ""), body["user"]["id"])

    @app.view(CHANGE_CALLBACK)
    @guard
    async def change(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body["view"]
        meta = json.loads(view.get("private_metadata") or "{}")
        kind = ChangeKind(meta["kind"])
        exp = workflow.store.experiment(int(meta["experiment"]))
        if exp is None:
            raise UsageError("This experiment is no longer tracked.")
        requested = parse_change(kind, submitted(view))
        _precheck(workflow, exp, requested, kind)
        await ack()
        await workflow.request_change(exp, requested, body["user"]["id"])


def _precheck(workflow: Workflow, exp: Experiment, requested: Change, kind: ChangeKind) -> None:
    """Show what is plainly wrong inline, before the slow re-read the request itself does."""
    first = exp.snapshot.variants[0].key if exp.snapshot.variants else ""
    block = {ChangeKind.EXPOSURE: "exposure", ChangeKind.SHIP: "variant"}.get(kind, f"weight_{first}")
    try:
        workflow.plan(exp, exp.snapshot, requested)
    except ProviderError as err:
        raise FieldErrors({block: err.detail[:2000]}) from None
    except PermissionDenied as err:
        raise FieldErrors({block: str(err)[:2000]}) from None
