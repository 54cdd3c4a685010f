"""A loopback HTTP server for the HTTP client tests: scripted answers, dropped connections and slow replies."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the server received it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer: a status, a body (dict/list → JSON, str/bytes as is), headers; or wait first, or hang up."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


Handler = Callable[[Seen], Reply]


class Countdown(Protocol):
    """A fault that lets `skip` matching requests through, then fires on the next `times` of them."""

    skip: int
    times: int


F = TypeVar("F", bound=Countdown)


def take_fault(faults: list[F], matches: Callable[[F], bool]) -> F | None:
    """The fault (if any) for this request: the first that matches, counted down, dropped once spent."""
    for fault in faults:
        if not matches(fault):
            continue
        if fault.skip > 0:
            fault.skip -= 1
            return None
        fault.times -= 1
        if fault.times <= 0:
            faults.remove(fault)
        return fault
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow reply is expected here


class Loopback:
    """A threaded HTTP server on 127.0.0.1 that hands every request to `answer` and writes back its `Reply`:
    a slow reply waits (released on stop), a dropped one is hung up on without a word."""

    def __init__(self, answer: Callable[[Seen], Reply]) -> None:
        self.answer = answer
        self._release = threading.Event()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait(self, seconds: float) -> None:
        """Wait as a slow server would; cut short when the server stops."""
        self._release.wait(seconds)

    def start(self) -> Loopback:
        loopback = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answer in one go: no 40 ms delayed-ACK stalls between header and body

            def serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = loopback.answer(Seen(self.command, parts.path, dict(parse_qsl(parts.query)), headers, raw))
                if reply.delay:
                    loopback.wait(reply.delay)
                if reply.drop:  # hang up without a word
                    self.close_connection = True
                    return
                body = reply.body
                if isinstance(body, dict | list):
                    payload, kind = json.dumps(body).encode(), "application/json"
                else:
                    payload = body.encode() if isinstance(body, str) else (body or b"")
                    kind = "text/plain; charset=utf-8"
                self.send_response(reply.status)
                if payload and not any(k.lower() == "content-type" for k in reply.headers):
                    self.send_header("Content-Type", kind)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), RequestHandler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()  # wake any slow reply still waiting
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class FakeServer:
    """Answers each (method, path) from its script (the last reply repeats) or a handler; records every request."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._scripts: dict[tuple[str, str], list[Reply]] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._lock = threading.Lock()
        self._loopback = Loopback(self._answer)

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Answer with these replies in turn, the last one from then on (replaces any handler)."""
        self._handlers.pop((method, path), None)
        self._scripts[(method, path)] = list(replies)

    def handle(self, method: str, path: str, handler: Handler) -> None:
        """Answer with whatever the handler returns for each request (replaces any script)."""
        self._scripts.pop((method, path), None)
        self._handlers[(method, path)] = handler

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if (method in (None, s.method)) and (path in (None, s.path))]

    @property
    def url(self) -> str:
        return self._loopback.url

    def _answer(self, seen: Seen) -> Reply:
        key = (seen.method, seen.path)
        with self._lock:
            self.seen.append(seen)
            if key in self._handlers:
                handler = self._handlers[key]
            elif key in self._scripts:
                queue = self._scripts[key]
                return queue.pop(0) if len(queue) > 1 else queue[0]
            else:
                return Reply(404, {"message": f"nothing scripted for {seen.method} {seen.path}"})
        return handler(seen)

    def start(self) -> FakeServer:
        self._loopback.start()
        return self

    def stop(self) -> None:
        self._loopback.stop()
