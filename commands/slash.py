"""The `/experiment` slash command: parse, answer in the ack when the answer is ready, else ack and work."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import texts
from bot.forms import create_modal
from bot.mrkdwn import code
from bot.texts import USAGE
from bot.views import ephemeral
from bot.workflow import Workflow
from commands.grammar import Audit, Help, ListExperiments, New, RequestChange, Show, Track, parse
from commands.guard import guarded

COMMAND = "/experiment"


def register(app: AsyncApp, workflow: Workflow) -> None:
    experiments = workflow.experiments

    @app.command(COMMAND)
    @guarded(workflow)
    async def experiment(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        command = body
        cmd = parse(command.get("text", ""))
        user, channel = command["user_id"], command["channel_id"]
        if isinstance(cmd, Help):
            await ack(ephemeral(texts.help_text()))
        elif isinstance(cmd, ListExperiments):
            if cmd.provider:
                experiments.provider(cmd.provider, USAGE["list"])
            await ack(ephemeral(texts.experiment_list(experiments.list(cmd.provider, cmd.status), experiments.labels)))
        elif isinstance(cmd, Show):
            exp = experiments.find(cmd.ref, USAGE["show"])
            label = experiments.labels[exp.provider]
            await ack(ephemeral(texts.experiment_detail(exp, label, experiments.open_requests(exp))))
        elif isinstance(cmd, Audit):
            exp = experiments.find(cmd.ref, USAGE["audit"])
            await ack(ephemeral(texts.audit_text(exp, experiments.audit_events(exp))))
        elif isinstance(cmd, New):
            provider = experiments.provider(cmd.provider) if cmd.provider else None
            await ack()
            view = await create_modal(experiments.labels, provider, channel, {})
            await client.views_open(trigger_id=command["trigger_id"], view=view)
        elif isinstance(cmd, Track):
            await experiments.check_untracked(cmd.provider, cmd.remote_id)
            await ack(ephemeral(f"Looking up {code(cmd.remote_id)} on {cmd.provider}…"))
            exp = await experiments.track(cmd.provider, cmd.remote_id, channel, user)
            await workflow.threads.ephemeral(channel, user, texts.tracking(exp, []))
        elif isinstance(cmd, RequestChange):
            exp = experiments.find(cmd.ref, USAGE[_verb(cmd)])
            await ack()
            req = await workflow.decisions.request_change(exp, cmd.change, user)
            await workflow.threads.ephemeral(channel, user, texts.asked(req, exp))


def _verb(cmd: RequestChange) -> str:
    return {"exposure": "ramp", "weights": "split"}.get(cmd.change.kind.value, cmd.change.kind.value)
