"""The front door of /slack/events: oversized bodies get 413 unread, bad signatures 401, bad bodies 400, quietly."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import logging
import select
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from slack_bolt.request.internals import parse_body
from starlette.types import Message, Receive, Scope, Send

from bot.intake import DEFAULT_LIMIT, Intake, IntakeCounts
from tests.conftest import SECRET, Bot

FORM = "application/x-www-form-urlencoded"
CLIENT_LOGGERS = ("httpx", "httpcore")  # the test's own HTTP client, not the server


class Logs(logging.Handler):
    """Every record the server side logs, uvicorn's own (which does not propagate to the root) included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(CLIENT_LOGGERS):
            self.records.append(record)

    def intake(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == "expbot.intake"]

    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)

    def assert_no_traceback(self) -> None:
        assert not [r for r in self.records if r.exc_info or r.levelno >= logging.ERROR], self.text()
        assert "Traceback" not in self.text()


@contextlib.contextmanager
def capture() -> Iterator[Logs]:
    handler = Logs()
    targets = [logging.getLogger(), logging.getLogger("uvicorn")]
    levels = [t.level for t in targets]
    for target in targets:
        target.addHandler(handler)
        target.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for target, level in zip(targets, levels, strict=True):
            target.removeHandler(handler)
            target.setLevel(level)


@pytest.fixture
def logs() -> Iterator[Logs]:
    with capture() as handler:
        yield handler


def counts(bot: Bot) -> IntakeCounts:
    assert bot.runtime.intake is not None
    return bot.runtime.intake.counts


async def unsigned(bot: Bot, body: bytes, content_type: str = FORM) -> httpx.Response:
    return await bot.player.http.post(bot.player.events_url, content=body, headers={"Content-Type": content_type})


def signature_of(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    """Slack's v0 signature over raw bytes (the player signs text, so it cannot sign a non-UTF-8 body)."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def signed(
    bot: Bot, body: bytes, content_type: str = FORM, stamp: bytes | None = None, signature: bytes | None = None
) -> httpx.Response:
    """Post `body` signed with the app's secret; `stamp` / `signature` replace the real header values."""
    now = int(time.time())
    headers = {
        b"Content-Type": content_type.encode(),
        b"X-Slack-Request-Timestamp": stamp if stamp is not None else str(now).encode(),
        b"X-Slack-Signature": signature if signature is not None else signature_of(body, now).encode(),
    }
    return await bot.player.http.post(bot.player.events_url, content=body, headers=headers)


def command(text: str = "help", **extra: str) -> bytes:
    fields = {"command": "/experiment", "text": text, "user_id": "U1", "channel_id": "C1", "team_id": "T0TEST"}
    return urlencode({**fields, "trigger_id": "1.2.abc", "response_url": "http://127.0.0.1:9/x", **extra}).encode()


# -- 401: nothing unsigned gets past the door ------------------------------------------------------------------------
async def test_unsigned_garbage_gets_401_and_one_line_no_traceback(bot: Bot, logs: Logs) -> None:
    before = len(bot.slack.calls())
    resp = await unsigned(bot, b"payload=x")
    assert resp.status_code == 401 and resp.text == "invalid request signature\n"
    assert counts(bot).rejected == {"unsigned": 1} and counts(bot).accepted == 0
    assert logs.intake() == ["rejected POST /slack/events: 401 unsigned, 9 bytes"]
    logs.assert_no_traceback()
    assert len(bot.slack.calls()) == before  # nothing reached Bolt or the listeners


async def test_mis_signed_requests_get_401(bot: Bot, logs: Logs) -> None:
    wrong = [b"v0=" + b"0" * 64, b"v0=nothex", b"v1=" + b"a" * 64, b"", b"v0=\xff" + b"a" * 63, b"V0=" + b"a" * 64]
    wrong.append(signature_of(b"payload=x", int(time.time()), secret="another-secret").encode())  # well-formed
    for signature in wrong:
        resp = await signed(bot, b"payload=x", signature=signature)
        assert resp.status_code == 401, signature
    assert counts(bot).rejected == {"bad_signature": len(wrong)}
    assert len(logs.intake()) == len(wrong)
    logs.assert_no_traceback()


async def test_stale_future_and_malformed_timestamps_get_401(bot: Bot, logs: Logs) -> None:
    for skew in (-301, 301, -(10**6)):
        resp = await bot.player.post(command(), FORM, timestamp=int(time.time()) + skew)
        assert resp.status_code == 401
    for stamp in (b"abc", b"12.5", b"+17", b"-5", b"1e9", b"9" * 40, b"\xd9\xa3", b""):
        resp = await signed(bot, command(), stamp=stamp)
        assert resp.status_code == 401, stamp
    assert counts(bot).rejected == {"stale_timestamp": 3, "bad_timestamp": 8}
    logs.assert_no_traceback()


def _q(raw: bytes) -> bytes:
    return quote_from_bytes(raw, safe="").encode()


# -- 400: signed, but not a body Slack would send ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"payload=x", FORM, "payload is not JSON"),
        (b"payload=%5B%5D", FORM, "payload is not a JSON object"),  # payload=[]
        (b"payload=" + b"%5B" * 5000, FORM, "payload is not JSON"),  # nested past the recursion limit
        (b"[1, 2]", "application/json", "body is not a JSON object"),
        (b"{not json", FORM, "body is not JSON"),  # Bolt reads any body starting with { as JSON
        (b"text=caf\xe9", FORM, "body is not UTF-8"),
        (b"", FORM, "empty body"),
        (b"a=1", "text/plain", "content type must be form-encoded or JSON"),
        (b"payload=" + _q(b'{"type":"block_actions","actions":null}'), FORM, "a block_actions payload needs actions"),
        (
            b"payload=" + _q(b'{"type":"block_actions","actions":[1],"user":{}}'),
            FORM,
            "a block_actions payload needs actions that are objects",
        ),
        (
            b"payload=" + _q(b'{"type":"view_submission","user":{"id":"U1"}}'),
            FORM,
            "a view_submission payload needs view",
        ),
    ],
)
async def test_signed_malformed_bodies_get_400_without_traceback(
    bot: Bot, logs: Logs, body: bytes, content_type: str, problem: str
) -> None:
    resp = await signed(bot, body, content_type)
    assert resp.status_code == 400 and resp.text == f"malformed request body: {problem}\n"
    assert resp.headers["content-type"].startswith("text/plain") and resp.headers["x-slack-no-retry"] == "1"
    assert counts(bot).rejected == {"malformed": 1} and len(logs.intake()) == 1
    logs.assert_no_traceback()


# -- 413: the size cap ------------------------------------------------------------------------------------------------
def upload(port: int, total: int) -> tuple[bytes, int]:
    """Stream an unsigned chunked body of `total` bytes as a raw HTTP/1.1 client that reads while it sends (as
    httpx cannot); stop at the first complete answer. Returns the answer and how many body bytes went out."""
    head = f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\r\n"
    frame = b"10000\r\n" + b"A" * 65536 + b"\r\n"
    answer, sent, pending = b"", 0, head.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setblocking(False)
        while not answer.endswith(b"too large\n") and sent < total:
            readable, writable, _ = select.select([sock], [sock] if pending or sent < total else [], [], 10)
            if not readable and not writable:
                break
            try:
                if readable:
                    data = sock.recv(65536)
                    answer += data
                    if not data:
                        break
                elif writable:
                    pending = pending[sock.send(pending) :]
                    if not pending:
                        pending, sent = frame, sent + 65536
            except OSError:  # reset once the server closes; what it answered was read first
                break
    return answer, sent


async def test_a_100_mb_unsigned_stream_gets_413_while_the_client_is_still_sending(bot: Bot, logs: Logs) -> None:
    total = 100 * 1024 * 1024
    answer, sent = await asyncio.to_thread(upload, port_of(bot), total)  # the server runs on this event loop
    assert answer.startswith(b"HTTP/1.1 413 ") and b"\r\nconnection: close\r\n" in answer.lower()
    assert answer.endswith(b"\r\n\r\nrequest body too large\n")
    assert sent < total // 4  # the answer came while the client was still sending
    # the limit, then at most one more limit dropped, each overshot by at most one server read (uvicorn: < 512 KiB)
    assert DEFAULT_LIMIT < counts(bot).bytes_read <= 3 * DEFAULT_LIMIT
    assert counts(bot).rejected == {"too_large": 1}
    [line] = logs.intake()
    assert line.startswith("rejected POST /slack/events: 413 too_large, ") and len(line) < 100
    assert "AAAA" not in logs.text()
    logs.assert_no_traceback()


def port_of(bot: Bot) -> int:
    return int(bot.player.events_url.split(":")[2].split("/")[0])


@pytest.mark.parametrize("declared", [DEFAULT_LIMIT + 1, 100 * 1024 * 1024])
async def test_content_length_over_the_limit_is_answered_before_any_body_is_sent(
    bot: Bot, logs: Logs, declared: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(bot))
    head = f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: {declared}\r\n\r\n"
    writer.write(head.encode())  # and not one byte of the body yet
    answer = await asyncio.wait_for(reader.readuntil(b"too large\n"), timeout=10)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"\r\nconnection: close\r\n" in answer.lower()
    assert counts(bot).bytes_read == 0 and counts(bot).rejected == {"too_large": 1}
    if declared <= 2 * DEFAULT_LIMIT:  # small enough to be read and dropped: the client may finish, then it closes
        writer.write(b"x" * declared)
    assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed, never waiting for 100 MB
    writer.close()
    assert counts(bot).bytes_read == (declared if declared <= 2 * DEFAULT_LIMIT else 0)
    assert logs.intake() == [f"rejected POST /slack/events: 413 too_large, {declared} bytes"]


async def test_a_signed_body_of_exactly_the_limit_is_served(bot: Bot, logs: Logs) -> None:
    base = command("help", pad="")
    body = base + b"x" * (DEFAULT_LIMIT - len(base))  # Bolt ignores fields it does not know
    assert len(body) == DEFAULT_LIMIT
    resp = await signed(bot, body)
    assert resp.status_code == 200, resp.text
    assert counts(bot).accepted == 1 and counts(bot).rejected == {} and logs.intake() == []
    resp = await signed(bot, body + b"x")  # one byte more: drained and dropped, so even httpx reads the 413
    assert resp.status_code == 413 and resp.text == "request body too large\n"
    assert counts(bot).rejected == {"too_large": 1}
    logs.assert_no_traceback()


# -- what is let through works as before, and the log stays small ----------------------------------------------------
async def test_a_normal_slash_command_still_works_and_logs_nothing(bot: Bot, logs: Logs) -> None:
    await bot.new_sandbox()  # a slash command, a modal submission (form payload), both through the door
    resp = await bot.player.command("help")
    assert resp.status_code == 200 and resp.text
    assert counts(bot).accepted >= 3 and counts(bot).rejected == {} and logs.intake() == []


async def test_three_rejected_requests_leave_three_short_lines(bot: Bot, logs: Logs) -> None:
    big = b"payload=" + b"B" * (DEFAULT_LIMIT - 100)
    await unsigned(bot, big)
    await signed(bot, big, signature=b"v0=" + b"1" * 64)
    await unsigned(bot, big + big)
    assert len(logs.records) == 3, logs.text()
    assert len(logs.text()) < 600 and "BBBB" not in logs.text()
    assert counts(bot).rejected == {"unsigned": 1, "bad_signature": 1, "too_large": 1}


# -- properties: whatever arrives, the answer is never a 5xx or a traceback ------------------------------------------
class Downstream:
    """Stands in for Bolt: records what the middleware passed on and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def drive(intake: Intake, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[Message]:
    """One request through the middleware directly; returns what it sent back."""
    pending: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/slack/events", "headers": headers}
    asyncio.run(intake(scope, receive, send))
    return sent


EXTRA_HEADERS = [b"x-slack-signature", b"x-slack-request-timestamp", b"content-type", b"content-length", b"expect"]
header_value = st.one_of(st.binary(max_size=80), st.text(max_size=80).map(lambda s: s.encode("utf-8")))
content_types = st.one_of(st.sampled_from([FORM, "application/json", "application/JSON; charset=utf-8"]), st.text())


@settings(max_examples=400, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=600), st.binary(min_size=1900, max_size=6000), st.text(max_size=600).map(str.encode)
    ),
    cuts=st.lists(st.integers(0, 6000), max_size=4),
    signed=st.booleans(),
    content_type=content_types,
    extra=st.lists(st.tuples(st.sampled_from(EXTRA_HEADERS), header_value | st.integers(0, 9000).map(b"%d".__mod__))),
)
@example(body=b"payload=%7B%7D", cuts=[], signed=True, content_type=FORM, extra=[])
@example(body=b'{"type": "x"}', cuts=[3], signed=True, content_type="application/json", extra=[])
@example(body=b"a=" + b"b" * 3000, cuts=[1000, 2040], signed=True, content_type=FORM, extra=[])  # drained
@example(body=b"a=" + b"b" * 5000, cuts=[2100], signed=False, content_type=FORM, extra=[])  # past the drain
@example(body=b"a=1", cuts=[], signed=True, content_type=FORM, extra=[(b"content-length", b"3000")])
@example(body=b"a=1", cuts=[], signed=True, content_type=FORM, extra=[(b"content-length", b"9000")])
def test_any_body_and_headers_get_a_clean_answer(
    body: bytes, cuts: list[int], signed: bool, content_type: str, extra: list[tuple[bytes, bytes]]
) -> None:
    downstream, seen = Downstream(), Logs()
    intake = Intake(downstream, SECRET, limit=2048)
    stamp = str(int(time.time()))
    headers = [(b"content-type", content_type.encode("utf-8"))]
    if signed:
        signature = signature_of(body, int(stamp)).encode()
        headers += [(b"x-slack-request-timestamp", stamp.encode()), (b"x-slack-signature", signature)]
    headers += extra
    bounds = sorted({0, len(body), *(c for c in cuts if c < len(body))})
    chunks = [body[a:b] for a, b in itertools.pairwise(bounds)] or [b""]
    logging.getLogger("expbot.intake").addHandler(seen)
    try:
        sent = drive(intake, headers, chunks)
    finally:
        logging.getLogger("expbot.intake").removeHandler(seen)
    status, answer = sent[0]["status"], b"".join(m["body"] for m in sent[1:])
    event(f"answered {status}")  # `pytest --hypothesis-show-statistics` shows every answer is reached
    assert status in (200, 400, 401, 413) and sent[0]["type"] == "http.response.start"
    assert not sent[-1].get("more_body") and (status == 200 or (answer.endswith(b"\n") and len(answer) < 100))
    assert len(seen.records) == (status != 200) and all(r.exc_info is None for r in seen.records)
    if status == 200:  # only a signed, well-formed, complete body, exactly as sent, and Bolt can parse it
        assert signed and len(body) <= 2048 and downstream.bodies == [body]
        assert not {name for name, _ in extra} & {b"x-slack-signature", b"x-slack-request-timestamp", b"content-type"}
        as_bolt_sees_it = content_type.encode().decode("latin-1").split(";")[0] or None
        assert isinstance(parse_body(body.decode(), as_bolt_sees_it), dict)
    else:
        assert downstream.bodies == []
        assert status != 400 or signed
        assert status != 413 or len(body) > 2048 or any(name == b"content-length" for name, _ in extra)
    assert intake.counts.accepted + sum(intake.counts.rejected.values()) == 1


wire_types = st.sampled_from([FORM, "application/json", "text/plain", "", "multipart/form-data; boundary=x"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000), is_signed=st.booleans(), content_type=wire_types)
@example(body=b"payload=x", is_signed=False, content_type=FORM)
@example(body=b"payload=x", is_signed=True, content_type=FORM)
@example(body=b"\xff\xfe", is_signed=True, content_type="application/json")
@example(body=b'{"type": "block_actions", "actions": 5}', is_signed=False, content_type="application/json")
async def test_the_real_server_never_answers_5xx(bot: Bot, body: bytes, is_signed: bool, content_type: str) -> None:
    with capture() as seen:
        if is_signed:
            resp = await signed(bot, body, content_type)
        else:
            resp = await unsigned(bot, body, content_type)
    assert resp.status_code < 500
    assert resp.status_code in (400, 401) or (is_signed and resp.status_code in (200, 404))
    seen.assert_no_traceback()
