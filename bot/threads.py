"""Slack Web API calls for cards, change-request threads, DMs and ephemeral notes; messages come built."""

from __future__ import annotations

import asyncio

from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SLACK_UNANSWERED
from bot.models import ChangeRequest, Experiment
from bot.mrkdwn import clip
from bot.views import Message

PERMALINK_WAIT = 1.0
"""Seconds a permalink may take: it can be wanted inside an acknowledgement, which Slack drops after 3 s."""
NO_LINK: tuple[type[Exception], ...] = (SlackClientError, *SLACK_UNANSWERED)
"""Slack refused the permalink or did not answer: the text goes without it."""


class Threads:
    """Posts and edits the card (one message per experiment) and everything in its thread."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def post_card(self, exp: Experiment, msg: Message) -> tuple[str, str]:
        reply = await self.client.chat_postMessage(channel=exp.channel, text=msg.text, blocks=msg.blocks)
        return str(reply["channel"]), str(reply["ts"])

    async def update_card(self, exp: Experiment, msg: Message) -> None:
        if exp.card_ts:
            await self.edit(exp.channel, exp.card_ts, msg)

    async def post_request(self, exp: Experiment, msg: Message) -> str:
        reply = await self.client.chat_postMessage(
            channel=exp.channel, thread_ts=exp.card_ts, text=msg.text, blocks=msg.blocks
        )
        return str(reply["ts"])

    async def update_request(self, req: ChangeRequest, msg: Message) -> None:
        if req.message_ts:
            await self.edit(req.channel, req.message_ts, msg)

    async def edit(self, channel: str, ts: str, msg: Message) -> None:
        """Replace a message expbot posted: a card, a request, or a second copy of a request's post."""
        await self.client.chat_update(channel=channel, ts=ts, text=msg.text, blocks=msg.blocks)

    async def say(self, exp: Experiment, text: str) -> None:
        """A plain reply in the experiment's thread."""
        await self.client.chat_postMessage(channel=exp.channel, thread_ts=exp.card_ts, text=clip(text, 3900))

    async def dm(self, user: str, text: str) -> None:
        await self.client.chat_postMessage(channel=user, text=clip(text, 3900))

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        await self.client.chat_postEphemeral(channel=channel, user=user, text=clip(text, 3900), thread_ts=thread_ts)

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, or None when Slack will not give one within `PERMALINK_WAIT` (the text goes
        without it: a slow or rate-limited Slack never makes an acknowledgement late)."""
        try:
            reply = await asyncio.wait_for(
                self.client.chat_getPermalink(channel=channel, message_ts=ts), PERMALINK_WAIT
            )
        except NO_LINK:
            return None
        link = reply.get("permalink")
        return str(link) if link else None
