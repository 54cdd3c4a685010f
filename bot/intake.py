"""Front door for /slack/events: a body size cap, then Slack's signature, then the body's shape, before Bolt runs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.signature import Clock, SignatureVerifier
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("expbot.intake")

# Slack's largest deliveries carry a whole view: block_actions from a modal or the Home tab and view_submission
# include `view` (views.open/publish refuse views over 250 kB) plus `state.values`, form-encoded, where only
# punctuation and non-ASCII bytes grow (at most 3x). 1 MiB holds a 250 kB view at that worst case with room for the
# state and the envelope; it is also nginx's default `client_max_body_size`.
DEFAULT_LIMIT = 1024 * 1024
REPLAY_WINDOW = 60 * 5  # seconds either side of now, as slack_sdk checks it
DRAIN_SECONDS = 2.0  # after a 413, how long the rest of a body (at most one more `limit`) is read and dropped
_TIMESTAMP = re.compile(rb"[0-9]{1,12}")
_SIGNATURE = re.compile(rb"v0=[0-9a-f]{64}")
_MEDIA_TYPES = (b"application/x-www-form-urlencoded", b"application/json")


class Reason(StrEnum):
    """Why a request was turned away; the keys of `IntakeCounts.rejected`."""

    TOO_LARGE = "too_large"
    UNSIGNED = "unsigned"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE = "stale_timestamp"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    DISCONNECTED = "disconnected"


@dataclass
class IntakeCounts:
    """What the front door let through and turned away, for a metrics endpoint to read."""

    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0  # request body bytes pulled from clients, accepted or not

    def reject(self, reason: Reason) -> None:
        self.rejected[reason.value] = self.rejected.get(reason.value, 0) + 1


@dataclass
class _Refusal:
    reason: Reason
    size: str  # bytes read, or the size the client declared
    detail: str = ""
    drain: bool = False  # the body has not ended but is small enough to read and drop after answering


class Intake:
    """Pure ASGI middleware: answers 413/401/400 itself and hands only verified, well-formed bodies downstream."""

    def __init__(
        self, app: ASGIApp, signing_secret: str, limit: int = DEFAULT_LIMIT, clock: Clock | None = None
    ) -> None:
        self.app, self.limit = app, limit
        self.verifier = SignatureVerifier(signing_secret, clock=clock or Clock())
        self.counts = IntakeCounts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(bytes(name).lower(), []).append(bytes(value))
        body = await self._read(headers, receive)
        if isinstance(body, _Refusal):
            await self._refuse(scope, receive, send, body)
            return
        refusal = self._verify(headers, body)
        kind, problem = ("unknown", "") if refusal else _shape(headers, body)
        if problem:
            refusal = _Refusal(Reason.MALFORMED, f"{len(body)}", problem)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal)
            return
        self.counts.accepted += 1
        scope.setdefault("state", {})["slack_kind"] = kind  # for the metrics: the body is not parsed again
        await self.app(scope, _replay(_unconfused(body), receive), send)

    async def _read(self, headers: Mapping[bytes, list[bytes]], receive: Receive) -> bytes | _Refusal:
        """The whole body, read in the chunks the server hands over, and never more than `limit` bytes of it."""
        declared = headers.get(b"content-length", [b""])[-1]
        waits = b"100-continue" in b",".join(headers.get(b"expect", [])).lower()  # sends nothing unless told to
        if declared.isdigit() and int(declared) > self.limit:
            return _Refusal(Reason.TOO_LARGE, declared.decode(), drain=not waits and int(declared) <= 2 * self.limit)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _Refusal(Reason.DISCONNECTED, f"{len(body)}")
            chunk: bytes = message.get("body", b"")
            self.counts.bytes_read += len(chunk)
            if len(body) + len(chunk) > self.limit:
                return _Refusal(Reason.TOO_LARGE, f"{len(body) + len(chunk)}+", drain=message.get("more_body", False))
            body += chunk
            if not message.get("more_body", False):
                return bytes(body)

    def _verify(self, headers: Mapping[bytes, list[bytes]], body: bytes) -> _Refusal | None:
        """Slack's v0 signature over the raw body, with the timestamp inside the replay window."""
        size = f"{len(body)}"
        stamps = headers.get(b"x-slack-request-timestamp", [])
        signatures = headers.get(b"x-slack-signature", [])
        if not stamps or not signatures:
            return _Refusal(Reason.UNSIGNED, size)
        if len(stamps) > 1 or not _TIMESTAMP.fullmatch(stamps[0]):
            return _Refusal(Reason.BAD_TIMESTAMP, size)
        if abs(self.verifier.clock.now() - int(stamps[0])) > REPLAY_WINDOW:
            return _Refusal(Reason.STALE, size)
        if len(signatures) > 1 or not _SIGNATURE.fullmatch(signatures[0]):
            return _Refusal(Reason.BAD_SIGNATURE, size)
        if not self._signed(body, stamps[0].decode(), signatures[0].decode()):
            return _Refusal(Reason.BAD_SIGNATURE, size)
        return None

    def _signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            # SignatureVerifier signs text; Slack sends UTF-8, so only a secret holder gets here. Same HMAC, raw bytes.
            base = f"v0:{timestamp}:".encode() + body
            digest = hmac.new(self.verifier.signing_secret.encode(), base, hashlib.sha256).hexdigest()
            return hmac.compare_digest(f"v0={digest}", signature)
        return self.verifier.is_valid(text, timestamp, signature)

    async def _drain(self, receive: Receive) -> None:
        """Read and drop up to one more `limit` of body for a short while, so a client that sends its whole body
        before reading (most do) finds the 413 instead of a reset; a longer or slower body gets the reset."""
        left = self.limit
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while left >= 0:
                    message = await receive()
                    chunk: bytes = message.get("body", b"")
                    self.counts.bytes_read += len(chunk)
                    left -= len(chunk)
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        return

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: _Refusal) -> None:
        """One short warning line (never the body, headers or signature) and a short plain-text answer."""
        self.counts.reject(refusal.reason)
        method, path = _printable(str(scope.get("method", ""))), _printable(str(scope.get("path", "")))
        status, text, close = _ANSWERS[refusal.reason]
        log.warning(
            "rejected %s %s: %s %s, %s bytes%s",
            method,
            path,
            status or "no answer",
            refusal.reason.value,
            refusal.size,
            f" ({refusal.detail})" if refusal.detail else "",
        )
        if not status:
            return  # the client has gone; there is nobody to answer
        content = f"{text}{': ' + refusal.detail if refusal.detail else ''}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(content)).encode())]
        if status != 401:
            headers.append((b"x-slack-no-retry", b"1"))  # the same delivery would be refused again
        if close:
            headers.append((b"connection", b"close"))  # the rest of the body is not read (at most drained): hang up
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": refusal.drain})
        if refusal.drain:  # the answer is already on the wire; the connection closes when this ends
            await self._drain(receive)
            await send({"type": "http.response.body", "body": b""})


_ANSWERS: dict[Reason, tuple[int, str, bool]] = {
    Reason.TOO_LARGE: (413, "request body too large", True),
    Reason.UNSIGNED: (401, "invalid request signature", False),
    Reason.BAD_TIMESTAMP: (401, "invalid request signature", False),
    Reason.STALE: (401, "invalid request signature", False),
    Reason.BAD_SIGNATURE: (401, "invalid request signature", False),
    Reason.MALFORMED: (400, "malformed request body", False),
    Reason.DISCONNECTED: (0, "", False),
}


def _shape(headers: Mapping[bytes, list[bytes]], body: bytes) -> tuple[str, str]:
    """What the body is (command, event, or the interaction's type) and, if it does not parse the way Bolt will
    parse it (a JSON object, or a form whose `payload` is a JSON object), the problem."""
    types = headers.get(b"content-type", [])
    if len(types) != 1 or types[0].split(b";")[0].strip().lower() not in _MEDIA_TYPES:
        return "unknown", "content type must be form-encoded or JSON"
    if not body:
        return "unknown", "empty body"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown", "body is not UTF-8"
    # Bolt's own rule (slack_bolt.request.internals.parse_body): JSON when the type is exactly JSON or it starts with {
    if types[0].decode("latin-1").split(";")[0] == "application/json" or text.startswith("{"):
        return "event", _json_object(text, "body")[1]
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form:
        parsed, problem = _json_object(form["payload"], "payload")
        kind = parsed.get("type")
        named = kind if isinstance(kind, str) and kind.isidentifier() and len(kind) < 40 else "unknown"
        return named, problem or _interaction(parsed)
    return ("command" if "command" in form else "unknown"), ""


def _json_object(text: str, what: str) -> tuple[dict[str, Any], str]:
    """The text parsed as a JSON object, or a problem saying why it is not one."""
    try:
        parsed: Any = json.loads(text)
    except (ValueError, RecursionError):
        return {}, f"{what} is not JSON"
    return (parsed, "") if isinstance(parsed, dict) else ({}, f"{what} is not a JSON object")


_NEEDS = {
    "block_actions": (("actions", list), ("user", dict)),
    "view_submission": (("view", dict), ("user", dict)),
    "view_closed": (("view", dict), ("user", dict)),
    "block_suggestion": (("user", dict),),
    "shortcut": (("user", dict),),
    "message_action": (("user", dict),),
}
"""What an interaction of each type must carry for Bolt to route it (a missing one made Bolt answer 500)."""


def _interaction(payload: dict[str, Any]) -> str:
    kind = payload.get("type")
    for key, shape in _NEEDS.get(kind if isinstance(kind, str) else "", ()):
        if not isinstance(payload.get(key), shape):
            return f"a {kind} payload needs {key}"
    actions = payload.get("actions")
    if kind == "block_actions" and not all(isinstance(a, dict) for a in actions or []):
        return "a block_actions payload needs actions that are objects"
    return ""


def _unconfused(body: bytes) -> bytes:
    """A verified form body whose text merely *mentions* "payload" (`/experiment track x payload-test`) would be
    read by Bolt as an empty interaction (its parse_body looks for the substring): spell the word with an escape
    that decodes to the same text. Bolt's own signature check is off for this reason; this check stands in for it."""
    if b"payload" not in body or body.startswith(b"{") or body.startswith(b"payload=") or b"&payload=" in body:
        return body
    return body.replace(b"payload", b"p%61yload")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over the buffered body once, then defers to the server (for http.disconnect)."""
    pending = [body]

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replay


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in text[:100])
