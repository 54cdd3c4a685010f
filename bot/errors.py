"""The bot's own errors and the one place that turns any error into words for the user."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.mrkdwn import escape
from providers.errors import (
    InvalidChange,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Stale,
    Unauthorized,
    Unavailable,
)

SLACK_UNANSWERED: tuple[type[Exception], ...] = (aiohttp.ClientError, OSError, TimeoutError)
"""Slack never answered a call (a dropped connection, a timeout), after slack_sdk's own retry."""


class UsageError(Exception):
    """Bad or missing command input; `usage` is the line to show with it."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class PermissionDenied(Exception):
    """The user may not do this (not an approver, own request, not the requester …)."""


class FieldErrors(Exception):
    """Modal input that failed validation, keyed by the input's block_id."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def explain(error: BaseException) -> str:
    """What the user is told about `error`: what failed and what to do. Never secrets, never a traceback."""
    if isinstance(error, UsageError):
        return f"{error.message}\nUsage: `{error.usage}`" if error.usage else error.message
    if isinstance(error, PermissionDenied):
        return f":no_entry: {error}"
    if isinstance(error, ProviderError):
        return _provider(error, escape(error.provider), escape(error.detail))
    if isinstance(error, SlackApiError):
        code = error.response.get("error", "unknown") if error.response is not None else "unknown"
        hint = _SLACK_HINTS.get(code, "Try again; if it keeps failing, run `expbot check` and look at expbot's log.")
        return f":warning: Slack refused a call from expbot ({code}). {hint}"
    if isinstance(error, aiohttp.ClientError):  # the Slack Web API client's transport (providers raise their own)
        return (
            f":warning: Slack did not answer expbot ({type(error).__name__}). Try again in a moment; if it keeps "
            "happening, run `expbot check`."
        )
    return (
        ":boom: Something went wrong on our side and nothing was changed by this step. "
        "The details are in expbot's log; try again, and tell your admin if it keeps happening."
    )


def _provider(error: ProviderError, name: str, detail: str) -> str:
    if isinstance(error, InvalidChange):
        return f":warning: {name} can't do that: {detail}."
    if isinstance(error, NotFound):
        return f":mag: {name} says it does not exist: {detail}."
    if isinstance(error, Unauthorized):
        return (
            f":lock: {name} refused our credentials ({error.status}): {detail}. "
            "Check the token and its role, then run `expbot check`."
        )
    if isinstance(error, RateLimited):
        wait = f" for {error.retry_after:g}s" if error.retry_after else ""
        return f":hourglass: {name} is rate limiting us{wait}. Try again in a moment."
    if isinstance(error, Stale):
        return f":warning: {name} says the experiment changed meanwhile: {detail}. Nothing was applied; ask again."
    if isinstance(error, OutcomeUnknown):
        return (
            f":grey_question: {name} did not answer in time: {detail}. It may have been carried out; "
            "check the experiment in the provider's console before asking again."
        )
    if isinstance(error, Unavailable):
        return f":electric_plug: {name} is not answering: {detail}. Try again later."
    status = f" ({error.status} {escape(error.code or '')})".rstrip() if error.status else ""
    return f":x: {name} refused{status}: {detail}."


_SLACK_HINTS = {
    "not_in_channel": "Invite expbot to the channel (`/invite @expbot`) or give it chat:write.public, then "
    "run the command again: a missing card is posted with the next change.",
    "channel_not_found": "expbot cannot see that channel: invite it, or check `[slack] channel` in expbot.toml.",
    "is_archived": "The channel is archived: set another status channel in expbot.toml.",
    "ratelimited": "Slack is rate limiting expbot; wait a minute and try again.",
    "invalid_auth": "The bot token is not valid: check SLACK_BOT_TOKEN.",
    "missing_scope": "The app lacks a scope: reinstall it from manifest.yml.",
    "no_such_subteam": "A user group in `[approvals] approvers` does not exist: fix expbot.toml.",
    "plan_upgrade_required": "User groups need a paid Slack plan: list user ids in `[approvals] approvers`.",
}
