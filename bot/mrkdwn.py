"""Text that goes into Slack mrkdwn: the one escaping function for user and provider text, and clipping."""

from __future__ import annotations

from providers.models import pct

__all__ = ["clip", "code", "escape", "pct"]


def escape(text: object) -> str:
    """User or provider text shown literally: `&`, `<` and `>` escaped, so it never pings or hides a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut (never inside an escape sequence)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def code(text: object) -> str:
    """Inline code of escaped text (backticks inside are replaced so the span cannot be broken)."""
    return "`" + escape(text).replace("`", "ˋ") + "`"
