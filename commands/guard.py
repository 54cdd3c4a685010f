"""The one place errors become what the user sees: in the ack when not yet acked, else ephemerally."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import FieldErrors, PermissionDenied, UsageError, explain
from bot.views import ephemeral
from bot.workflow import Workflow
from providers.errors import ProviderError

log = logging.getLogger("expbot")
EXPECTED = (UsageError, PermissionDenied, ProviderError, FieldErrors, SlackApiError, aiohttp.ClientError)
Listener = Callable[[AsyncAck, dict[str, Any], AsyncWebClient], Awaitable[None]]


def guarded(workflow: Workflow) -> Callable[[Listener], Listener]:
    """Wrap a listener so that any error it raises is reported once, the same way everywhere.

    Bolt's own error handler cannot be used for errors raised after `ack()`: in async mode a fast
    failure after the ack resets the acknowledgement and Slack sees a 404 (slack_bolt 1.30). The
    wrapper keeps the fixed signature (ack, body, client) that Bolt injects by name.
    """

    def wrap(listener: Listener) -> Listener:
        async def run(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
            try:
                await listener(ack, body, client)
            except Exception as error:  # reported below, never dropped
                await report(workflow, ack, body, error)

        run.__name__ = run.__qualname__ = listener.__name__  # Bolt names listeners in its logs
        return run

    return wrap


async def report(workflow: Workflow, ack: AsyncAck, body: dict[str, Any], error: Exception) -> None:
    if isinstance(error, SlackApiError):  # an expected refusal: one line, no traceback
        code = error.response.get("error", "unknown") if error.response is not None else "unknown"
        workflow.metrics.slack_api_errors.labels(str(code)).inc()
        log.warning("Slack refused a call while handling a %s: %s", body.get("type") or "command", code)
    elif isinstance(error, aiohttp.ClientError):  # Slack did not answer (after slack_sdk's own retry): one line
        log.warning("Slack did not answer a call while handling a %s: %r", body.get("type") or "command", error)
    elif not isinstance(error, EXPECTED):
        log.error("unexpected error handling a Slack %s", body.get("type") or "command", exc_info=error)
    acked = ack.response is not None
    if isinstance(error, FieldErrors) and not acked:
        await ack(response_action="errors", errors=error.errors)
        return
    text = explain(error)
    if not acked and "command" in body:
        await ack(ephemeral(text))
        return
    if not acked:
        await ack()
    await _tell(workflow, body, text)


async def _tell(workflow: Workflow, body: dict[str, Any], text: str) -> None:
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    if not user:
        return
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    thread = (body.get("message") or {}).get("thread_ts") or (body.get("container") or {}).get("thread_ts")
    try:
        if channel:
            await workflow.threads.ephemeral(channel, user, text, thread)
        else:
            await workflow.threads.dm(user, text)
    except Exception:  # telling the user failed too: the log is all that is left
        log.exception("could not tell %s about an error", user)
