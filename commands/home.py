"""The App Home tab: what expbot tracks and how to use it."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.blocks import HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.mrkdwn import clip
from bot.texts import experiment_list, help_text
from bot.workflow import Workflow
from commands.guard import guarded


def register(app: AsyncApp, workflow: Workflow) -> None:
    @app.event("app_home_opened")
    @guarded(workflow)
    async def home_opened(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        event = body["event"]
        if event.get("tab") != "home":
            return
        experiments = workflow.experiments
        listing = experiment_list(experiments.list(None, None), experiments.labels)
        view = View(
            type="home",
            blocks=[
                HeaderBlock(text="expbot"),
                SectionBlock(text=MarkdownTextObject(text=clip(help_text(), 3000))),
                SectionBlock(text=MarkdownTextObject(text=clip("*Experiments*\n" + listing, 3000))),
            ],
        )
        await client.views_publish(user_id=event["user"], view=view.to_dict())
