"""Slack Web API calls for cards, change-request threads, DMs and ephemeral notes."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.models import ChangeRequest, Experiment
from bot.views import Message, card, clip, request_message
from providers.base import ChangeKind


class Threads:
    """Posts and edits the card (one message per experiment) and everything in its thread."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def post_card(self, exp: Experiment, allowed: frozenset[ChangeKind], label: str) -> tuple[str, str]:
        msg = card(exp, allowed, label)
        reply = await self.client.chat_postMessage(channel=exp.channel, text=msg.text, blocks=msg.blocks)
        return str(reply["channel"]), str(reply["ts"])

    async def update_card(self, exp: Experiment, allowed: frozenset[ChangeKind], label: str) -> None:
        if exp.card_ts:
            await self._update(exp.channel, exp.card_ts, card(exp, allowed, label))

    async def post_request(self, exp: Experiment, req: ChangeRequest) -> str:
        msg = request_message(req, exp)
        reply = await self.client.chat_postMessage(
            channel=exp.channel, thread_ts=exp.card_ts, text=msg.text, blocks=msg.blocks
        )
        return str(reply["ts"])

    async def update_request(self, exp: Experiment, req: ChangeRequest) -> None:
        if req.message_ts:
            await self._update(req.channel, req.message_ts, request_message(req, exp))

    async def say(self, exp: Experiment, text: str) -> None:
        """A plain reply in the experiment's thread."""
        await self.client.chat_postMessage(channel=exp.channel, thread_ts=exp.card_ts, text=clip(text, 3900))

    async def dm(self, user: str, text: str) -> None:
        await self.client.chat_postMessage(channel=user, text=clip(text, 3900))

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        await self.client.chat_postEphemeral(channel=channel, user=user, text=clip(text, 3900), thread_ts=thread_ts)

    async def _update(self, channel: str, ts: str, msg: Message) -> None:
        await self.client.chat_update(channel=channel, ts=ts, text=msg.text, blocks=msg.blocks)
