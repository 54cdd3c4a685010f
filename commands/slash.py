"""The `/experiment` slash command: parse, answer in the ack when the answer is ready, else ack and work."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.forms import create_modal
from bot.models import RequestStatus
from bot.views import USAGE, audit_text, ephemeral, experiment_detail, experiment_list, help_text
from bot.workflow import Workflow
from commands.grammar import Audit, Help, ListExperiments, New, RequestChange, Show, Track, parse
from commands.guard import guarded

COMMAND = "/experiment"
OPEN = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.APPLYING)


def register(app: AsyncApp, workflow: Workflow) -> None:
    @app.command(COMMAND)
    @guarded(workflow)
    async def experiment(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        command = body
        cmd = parse(command.get("text", ""))
        user, channel = command["user_id"], command["channel_id"]
        if isinstance(cmd, Help):
            await ack(ephemeral(help_text()))
        elif isinstance(cmd, ListExperiments):
            if cmd.provider:
                workflow.provider(cmd.provider, USAGE["list"])
            await ack(ephemeral(experiment_list(workflow.list(cmd.provider, cmd.status), workflow.labels)))
        elif isinstance(cmd, Show):
            exp = workflow.experiment(cmd.ref, USAGE["show"])
            pending = workflow.store.requests(OPEN, exp.id)
            await ack(ephemeral(experiment_detail(exp, workflow.labels[exp.provider], pending)))
        elif isinstance(cmd, Audit):
            exp = workflow.experiment(cmd.ref, USAGE["audit"])
            await ack(ephemeral(audit_text(exp, workflow.store.audit_events(exp.id))))
        elif isinstance(cmd, New):
            draft = workflow.provider(cmd.provider).draft_model if cmd.provider else None
            await ack()
            view = create_modal(workflow.labels, cmd.provider, draft, channel)
            await client.views_open(trigger_id=command["trigger_id"], view=view)
        elif isinstance(cmd, Track):
            workflow.check_untracked(cmd.provider, cmd.remote_id)
            await ack(ephemeral(f"Looking up `{cmd.remote_id}` on {cmd.provider}…"))
            exp = await workflow.track(cmd.provider, cmd.remote_id, channel, user)
            await workflow.threads.ephemeral(channel, user, f"Tracking it as `{exp.ref}`; its card is posted.")
        elif isinstance(cmd, RequestChange):
            exp = workflow.experiment(cmd.ref, USAGE[_verb(cmd)])
            await ack(ephemeral(f"Asking for approval to {cmd.change.describe()} on `{exp.ref}` in its thread…"))
            await workflow.request_change(exp, cmd.change, user)


def _verb(cmd: RequestChange) -> str:
    return {"exposure": "ramp", "weights": "split"}.get(cmd.change.kind.value, cmd.change.kind.value)
