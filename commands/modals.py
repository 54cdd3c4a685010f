"""Modal listeners: provider select and rebuilt fields, provider-backed choices, create and change submissions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.change_forms import CHANGE_CALLBACK, parse_change
from bot.errors import FieldErrors, PermissionDenied
from bot.forms import (
    CHOICES_ACTION,
    CREATE_CALLBACK,
    PROVIDER_ACTION,
    PROVIDER_BLOCK,
    REBUILD_ACTION,
    create_modal,
    parse_draft,
    submitted,
)
from bot.mrkdwn import clip
from bot.workflow import Workflow
from commands.guard import guarded
from providers.errors import BadRequest, Conflict, InvalidChange, ProviderError
from providers.models import ChangeKind

CREATE_BUDGET = 2.0
"""Seconds a create may take before the modal closes: a refusal within it is shown inline in the modal."""
CHOICES_BUDGET = 2.5
"""Seconds a provider has to list choices: Slack waits 3 s for an options answer."""


def _meta(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def register(app: AsyncApp, workflow: Workflow) -> None:
    guard = guarded(workflow)
    experiments = workflow.experiments

    @app.action(PROVIDER_ACTION)
    @app.action(REBUILD_ACTION)
    @app.action(CHOICES_ACTION)
    @guard
    async def rebuild(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """A provider was picked, or a field others depend on changed: rebuild the modal from what is filled in."""
        await ack()
        view = body["view"]
        values = submitted(view)
        provider = experiments.provider(str(values.get(PROVIDER_BLOCK) or _meta(view).get("provider")))
        if values.get(PROVIDER_BLOCK) != _meta(view).get("provider"):
            values = {PROVIDER_BLOCK: provider.name}
        modal = await create_modal(experiments.labels, provider, _meta(view).get("channel", ""), values)
        await client.views_update(view_id=view["id"], hash=view.get("hash"), view=modal)

    @app.options(CHOICES_ACTION)
    async def choices(ack: AsyncAck, body: dict[str, Any]) -> None:
        """Options of an external select, read from the provider within Slack's 3 seconds."""
        view = body.get("view") or {}
        name = _meta(view).get("provider")
        provider = workflow.providers.get(str(name))
        found = []
        if provider is not None:
            try:
                found = await asyncio.wait_for(
                    provider.choices(body.get("block_id", ""), body.get("value", ""), submitted(view)), CHOICES_BUDGET
                )
            except (TimeoutError, ProviderError):
                found = []
        options = [{"text": {"type": "plain_text", "text": clip(c.label, 75)}, "value": c.value[:150]} for c in found]
        await ack(options=options[:100])

    @app.view(CREATE_CALLBACK)
    @guard
    async def create(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body["view"]
        values, meta = submitted(view), _meta(view)
        chosen = values.get(PROVIDER_BLOCK)
        if not chosen:
            raise FieldErrors({PROVIDER_BLOCK: "Pick a provider."})
        provider = experiments.provider(chosen)
        if chosen != meta.get("provider"):
            modal = await create_modal(experiments.labels, provider, meta.get("channel", ""), {PROVIDER_BLOCK: chosen})
            await ack(response_action="update", view=modal)
            return
        draft = parse_draft(provider.draft_model, values)
        creating = asyncio.ensure_future(experiments.create(chosen, draft, meta.get("channel", ""), body["user"]["id"]))
        done, _ = await asyncio.wait({creating}, timeout=CREATE_BUDGET)
        refused = creating.exception() if creating in done else None
        if isinstance(refused, BadRequest | Conflict | InvalidChange):  # the provider's words, inline, where it fits
            first = next(iter(provider.draft_model.model_fields))
            await ack(response_action="errors", errors={first: clip(refused.detail, 2000)})
            return
        await ack()
        await creating  # slower than the budget: its outcome is told in the channel or a DM

    @app.view(CHANGE_CALLBACK)
    @guard
    async def change(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body["view"]
        meta = _meta(view)
        kind = ChangeKind(meta["kind"])
        exp = experiments.by_id(int(meta["experiment"]))
        requested = parse_change(kind, submitted(view))
        first = exp.snapshot.variants[0].key if exp.snapshot.variants else ""
        block = {ChangeKind.EXPOSURE: "exposure", ChangeKind.SHIP: "variant"}.get(kind, f"weight_{first}")
        try:  # what is plainly wrong is shown inline, before the slow re-read the request itself does
            workflow.decisions.plan_check(exp, exp.snapshot, requested)
        except (ProviderError, PermissionDenied) as err:
            raise FieldErrors({block: clip(err.detail if isinstance(err, ProviderError) else str(err), 2000)}) from None
        await ack()
        await workflow.decisions.request_change(exp, requested, body["user"]["id"])
