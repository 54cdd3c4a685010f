"""Durable, ordered delivery to Slack: messages queued in the store, rendered from the latest state when sent,
retried with backoff (honouring Retry-After) until Slack takes them or answers with an error retrying cannot fix."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import timedelta

from slack_sdk.errors import SlackApiError

from bot import texts, views
from bot.errors import SLACK_UNANSWERED
from bot.logs import event
from bot.models import ChangeRequest, Experiment, OutboxItem, OutboxRow
from bot.store import Store, now
from bot.threads import Threads
from bot.views import Message

log = logging.getLogger("expbot.outbox")
CLAIM_TTL = timedelta(seconds=60)
MAX_BACKOFF = 300.0
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "user_not_found",
        "cannot_dm_bot",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "not_authed",
        "restricted_action",
        "restricted_action_thread_locked",
        "team_access_not_granted",
    }
)
"""Slack errors that retrying cannot fix: the message is given up, logged once and counted."""


class NotYet(Exception):
    """A message that has to wait for another one (a thread note for its card)."""


class Outbox:
    """Sends what the store has queued; one process sends a given message at a time, so edits never go back."""

    def __init__(
        self,
        store: Store,
        threads: Threads,
        card: Callable[[Experiment], Message],
        request: Callable[[ChangeRequest, Experiment], Message],
        owner: str,
        on_result: Callable[[str, str, str | None], None] | None = None,
    ) -> None:
        self.store, self.threads, self.owner = store, threads, owner
        self._card, self._request = card, request
        self.on_result = on_result
        """Called per try with (kind, result: sent, retry or dead, Slack's error code if any): metrics hang here."""
        self._sending = asyncio.Lock()  # one drain at a time: a burst of edits is spread out, acks go between

    async def send(self, items: list[OutboxItem]) -> dict[str, SlackApiError]:
        """Queue `items` and deliver them now; the permanent Slack refusals among them, by key."""
        await self.store.enqueue(items)
        return await self.drain([i.key for i in items])

    async def drain(self, keys: list[str] | None = None) -> dict[str, SlackApiError]:
        """Deliver what is due (only `keys`, if given) until nothing due is left; permanent refusals by key."""
        refused: dict[str, SlackApiError] = {}
        if keys is not None and not keys:
            return refused
        async with self._sending:
            for _ in range(50):
                rows = await self.store.claim_due(self.owner, CLAIM_TTL, keys)
                if not rows:
                    break
                for row in rows:
                    error = await self._one(row)
                    if error is not None:
                        refused[row.key] = error
        return refused

    async def _one(self, row: OutboxRow) -> SlackApiError | None:
        try:
            await self._deliver(row)
        except SlackApiError as err:
            code = str(err.response.get("error", "unknown")) if err.response is not None else "unknown"
            if code in PERMANENT:
                log.warning("gave up a Slack %s message (%s): %s", row.kind, row.key, code)
                await self.store.outbox_failed(row, self.owner, code, None)
                self._result(row.kind, "dead", code)
                return err
            wait = _retry_after(err) or _backoff(row.attempts)
            await self._retry(row, code, wait, code)
        except Exception as err:  # no answer, it must wait, or a bug building it: kept and retried, never raised
            if not isinstance(err, (*SLACK_UNANSWERED, NotYet)):
                log.exception("could not send Slack %s message %s", row.kind, row.key)
            await self._retry(row, type(err).__name__, _backoff(row.attempts))
        else:
            await self.store.outbox_sent(row, self.owner)
            self._result(row.kind, "sent")
        return None

    async def _retry(self, row: OutboxRow, error: str, wait: float, code: str | None = None) -> None:
        fields = {"kind": row.kind, "request": row.request_id, "experiment": row.experiment_id}
        event(
            log, "outbox.retry", f"Slack {row.kind} message {row.key} failed ({error}); retry in {wait:.1f}s", **fields
        )
        await self.store.outbox_failed(row, self.owner, error, now() + timedelta(seconds=wait))
        self._result(row.kind, "retry", code)

    def _result(self, kind: str, result: str, code: str | None = None) -> None:
        if self.on_result is not None:
            self.on_result(kind, result, code)

    async def _deliver(self, row: OutboxRow) -> None:
        if row.kind == "dm":
            await self.threads.dm(str(row.target), row.text or "")
            return
        if row.kind == "request_copy":
            notice = views.notice(texts.request_copy(row.request_id or 0))
            await self.threads.edit(str(row.target), row.text or "", notice)
            return
        if row.kind == "request":
            req = self.store.request(row.request_id or 0)
            exp = self.store.experiment(req.experiment_id) if req else None
            if req is not None and exp is not None:
                await self.threads.update_request(req, self._request(req, exp))
            return
        exp = self.store.experiment(row.experiment_id or 0)
        if exp is None:
            return
        if row.kind == "note":
            if exp.card_ts is None:
                raise NotYet("the card is not in Slack yet")  # the note belongs in its thread: wait for it
            await self.threads.say(exp, row.text or "")
        elif exp.card_ts is None:
            channel, ts = await self.threads.post_card(exp, self._card(exp))
            await self.store.set_card(exp.id, channel, ts)
        else:
            await self.threads.update_card(exp, self._card(exp))


def _retry_after(err: SlackApiError) -> float | None:
    headers = getattr(err.response, "headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(1.0, float(value[0] if isinstance(value, list) else value)) if value is not None else None
    except ValueError:
        return None


def _backoff(attempts: int) -> float:
    return min(MAX_BACKOFF, (2.0**attempts) * (0.5 + random.random()))
