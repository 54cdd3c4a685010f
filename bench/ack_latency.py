"""Benchmark: ack latency, memory and start-up of `expbot serve` next to a bare Bolt AsyncApp on the same stack."""

# Run: `python bench/ack_latency.py` (about 30 s). Both servers are separate processes started the same way
# (uvicorn, one worker, log level info, proxy headers); a load process fires bursts of signed slash commands at
# them, interleaved where both are idle. Round 2 keeps firing at expbot until its slow applies are all done, then
# gives the bare app as many bursts. Start-up is spawn -> first acked signed `/experiment help`, for both.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import multiprocessing
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata, util
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.slackfake.player import SlackPlayer
from tests.slackfake.web_api import FakeSlack

SECRET = "bench-signing-secret-0123456789ab"
TOKEN = "xoxb-bench"
TEAM = "T0BENCH"
BENCH = Path(__file__).resolve().parent
EXPBOT = Path(sys.executable).parent / "expbot"
TARGET_P99, TARGET_START, TARGET_RSS = 1.2, 1.3, 1.3
LATENCY = "2s"
IN_FLIGHT = ("approved", "applying")
KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")


# -- one server process -------------------------------------------------------------------------
@dataclass
class Server:
    """A server process (expbot or the bare app) on its own port, spawned as often as start-up is measured."""

    name: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    home: Path
    healthz: bool
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)
    healthz_at: list[float] = field(default_factory=list)
    ready_kb: int = 0
    first_ready_kb: int = 0
    ready_split_kb: tuple[int, int] = (0, 0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def log(self) -> Path:
        return self.home / f"{self.name}.log"

    async def start(self, http: aiohttp.ClientSession, signer: Signer) -> None:
        """Spawn, then wait for the first acked signed `/experiment help`; record the time it took."""
        self.port = _free_port()
        with self.log.open("ab") as out:
            began = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv(self.port), cwd=self.home, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = began + 60
        if self.healthz:
            while not await _answers(http, f"http://127.0.0.1:{self.port}/healthz", None):
                self._alive(deadline)
                await asyncio.sleep(0.005)
            self.healthz_at.append(time.perf_counter() - began)
        while not await _answers(http, self.url, signer.command("help")):
            self._alive(deadline)
            await asyncio.sleep(0.005)
        self.starts.append(time.perf_counter() - began)
        self.ready_kb = self.memory_kb()[0]
        self.first_ready_kb = self.first_ready_kb or self.ready_kb
        self.ready_split_kb = self.resident_split_kb()

    def _alive(self, deadline: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None or time.perf_counter() > deadline:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{self.name} did not come up (exit {self.proc.poll()}):\n{tail}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cpu_ticks(self) -> int:
        """User + system CPU time of the process so far, in clock ticks (/proc/<pid>/stat)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def memory_kb(self) -> tuple[int, int]:
        """VmRSS and VmHWM (peak) of the running process, in kB."""
        found = self._status_kb("VmRSS", "VmHWM")
        return found["VmRSS"], found["VmHWM"]

    def resident_split_kb(self) -> tuple[int, int]:
        """RssAnon and RssFile of the running process, in kB: its own memory, and the pages of files it maps
        (shared libraries such as pydantic-core's, which other processes can share)."""
        found = self._status_kb("RssAnon", "RssFile")
        return found["RssAnon"], found["RssFile"]

    def _status_kb(self, *keys: str) -> dict[str, int]:
        assert self.proc is not None
        found = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in keys:
                found[key] = int(value.split()[0])
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _answers(http: aiohttp.ClientSession, url: str, signed: tuple[bytes, dict[str, str]] | None) -> bool:
    try:
        if signed is None:
            async with http.get(url) as resp:
                return resp.status == 200
        async with http.post(url, data=signed[0], headers=signed[1]) as resp:
            await resp.read()
            return resp.status == 200
    except (aiohttp.ClientError, OSError):
        return False


# -- signed slash commands, built before a burst so the client does as little as possible in it ---------
class Signer:
    """Builds `/experiment` slash-command bodies as Slack sends them (form-encoded) and signs them."""

    def __init__(self, slack_base_url: str) -> None:
        self.response_base = slack_base_url + "/response/"
        self.verifier = SignatureVerifier(SECRET)
        self.seq = 0

    def command(self, text: str, user: str = "U1") -> tuple[bytes, dict[str, str]]:
        self.seq += 1
        body = urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": TEAM,
                "team_domain": "bench",
                "channel_id": "C1",
                "channel_name": "c1",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/experiment",
                "text": text,
                "api_app_id": "A0BENCH",
                "is_enterprise_install": "false",
                "response_url": f"{self.response_base}bench-{self.seq}",
                "trigger_id": f"{13345224609 + self.seq}.738474920.8088930838d88f008e0",
            }
        ).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body.decode()) or "",
        }
        return body, headers

    def burst(self, n: int) -> list[tuple[bytes, dict[str, str]]]:
        """`n` commands, `help` and `list` alternating, from four users."""
        return [self.command("help" if i % 2 == 0 else "list", f"U{1 + i % 4}") for i in range(n)]


@dataclass
class Samples:
    """Ack latencies (seconds) of one app in one round, how many acks were not a 200, and the server's CPU."""

    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    bursts: int = 0
    cpu_ticks: int = 0

    def pct(self, p: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000 if ordered else math.nan

    def cpu_ms_per_ack(self) -> float:
        """The server's CPU time per ack; NaN when too few clock ticks were counted to say."""
        if self.cpu_ticks < 20:
            return math.nan
        return 1000 * self.cpu_ticks / os.sysconf("SC_CLK_TCK") / len(self.seconds)


async def burst(
    http: aiohttp.ClientSession, url: str, signed: list[tuple[bytes, dict[str, str]]], into: Samples
) -> None:
    """Fire every command at once; each latency runs from the send to the last byte of the ack."""

    async def one(body: bytes, headers: dict[str, str]) -> None:
        began = time.perf_counter()
        try:
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, OSError):
            ok = False
        into.seconds.append(time.perf_counter() - began)
        into.errors += 0 if ok else 1

    await asyncio.gather(*(one(body, headers) for body, headers in signed))
    into.bursts += 1


class Load:
    """The load generator, in a process of its own: the fake Slack's threads here never hold its GIL."""

    def __init__(self, slack_base_url: str, concurrency: int) -> None:
        self.concurrency = concurrency
        self._conn, child = multiprocessing.Pipe()
        ctx = multiprocessing.get_context("spawn")
        self._proc = ctx.Process(target=_load_process, args=(child, slack_base_url, concurrency), daemon=True)
        self._proc.start()
        self._conn.recv()  # ready: its imports are done before any start-up is timed

    def _ask(self, url: str) -> tuple[list[float], int]:
        self._conn.send(url)
        seconds, errors = self._conn.recv()
        return seconds, errors

    async def burst(self, server: Server, into: Samples | None = None) -> None:
        """`concurrency` signed commands at once at `server`; unrecorded (a warm-up) without `into`."""
        cpu = server.cpu_ticks()
        seconds, errors = await asyncio.to_thread(self._ask, server.url)
        if into is not None:
            into.seconds += seconds
            into.errors += errors
            into.bursts += 1
            into.cpu_ticks += server.cpu_ticks() - cpu

    async def series(self, pairs: list[tuple[Server, Samples]], bursts: int) -> None:
        """A warm-up burst at each server (fresh keep-alive connections), then `bursts` each, interleaved."""
        for server, _ in pairs:
            await self.burst(server)
        for _ in range(bursts):
            for server, into in pairs:
                await self.burst(server, into)

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(timeout=10)


def _load_process(conn: Connection, slack_base_url: str, concurrency: int) -> None:
    asyncio.run(_fire_on_request(conn, slack_base_url, concurrency))


async def _fire_on_request(conn: Connection, slack_base_url: str, concurrency: int) -> None:
    signer = Signer(slack_base_url)
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        conn.send("ready")
        while (url := await loop.run_in_executor(None, conn.recv)) is not None:
            samples = Samples()
            await burst(http, url, signer.burst(concurrency), samples)
            conn.send((samples.seconds, samples.errors))


# -- the slow applies (round 2 on expbot) ------------------------------------------------------------
def _query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql, args).fetchall()


async def _until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark set-up timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def slow_applies(player: SlackPlayer, slack: FakeSlack, db: Path, count: int) -> None:
    """Create `count` sandbox experiments through the modal, request a ramp on each (U1), approve each (U2)."""
    views_before = set(slack.views)
    await asyncio.gather(*(player.command("new sandbox", user="U1", channel="C1") for _ in range(count)))
    await _until(lambda: len(set(slack.views) - views_before) >= count, "the create modals")
    fresh = [v for v in list(slack.views) if v not in views_before]
    answers = await asyncio.gather(
        *(player.submit(view_id, {"name": f"Bench {i + 1}"}, user="U1") for i, view_id in enumerate(fresh))
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    sql = "SELECT id FROM experiments WHERE card_ts IS NOT NULL ORDER BY id"
    await _until(lambda: len(_query(db, sql)) >= count, "the experiments and their cards")
    exp_ids = [row[0] for row in _query(db, sql)]
    await asyncio.gather(*(player.command(f"ramp exp-{i} 20", user="U1", channel="C1") for i in exp_ids))
    sql = "SELECT channel, message_ts FROM requests WHERE status = 'pending' AND message_ts IS NOT NULL"
    await _until(lambda: len(_query(db, sql)) >= count, "the change requests")
    posted = _query(db, sql)
    await asyncio.gather(*(player.click(ch, ts, "request_approve", user="U2") for ch, ts in posted))
    await _until(lambda: not _query(db, "SELECT 1 FROM requests WHERE status = 'pending'"), "the approvals")


def _tracked(db: Path) -> int:
    return int(_query(db, "SELECT COUNT(*) FROM experiments")[0][0])


def in_flight(db: Path) -> int:
    marks = ", ".join("?" * len(IN_FLIGHT))
    return int(_query(db, f"SELECT COUNT(*) FROM requests WHERE status IN ({marks})", IN_FLIGHT)[0][0])


async def quiesce(server: Server, still: float = 0.5, timeout: float = 20.0) -> None:
    """Wait until the server has used no CPU for `still` seconds (its last edits and DMs are out)."""
    deadline, last = time.monotonic() + timeout, server.cpu_ticks()
    while time.monotonic() < deadline:
        await asyncio.sleep(still)
        if (now := server.cpu_ticks()) == last:
            return
        last = now


# -- the report ---------------------------------------------------------------------------------------
def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    stack = "uvloop" if util.find_spec("uvloop") else "asyncio"
    stack += "+httptools" if util.find_spec("httptools") else "+h11"
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, Linux {platform.release()}, "
        f"load average {os.getloadavg()[0]:.2f} before the run; "
        f"uvicorn {metadata.version('uvicorn')} ({stack}), slack-bolt {metadata.version('slack-bolt')}"
    )


def _ratio(ours: float, base: float) -> float:
    return ours / base if base else math.nan


def _mark(ratio: float, target: float) -> str:
    return f"<= {target:.1f}x  {'pass' if ratio <= target else 'MISS'}"


def report(
    args: argparse.Namespace,
    rounds: dict[str, tuple[Samples, Samples, bool]],
    expbot: Server,
    bare: Server,
    memory: dict[str, tuple[int, int]],
    flight: str,
    host: str,
) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"expbot ack latency, memory and start-up next to a bare Bolt AsyncApp — {now}")
    print(f"machine: {host}")
    print(
        f"load: {args.concurrency} concurrent signed slash commands per burst (help/list alternating), "
        "one uvicorn worker each; load generator in its own process, fake Slack Web API in the benchmark's; loopback"
    )
    print(f"round 2: {flight}")
    print()
    print(f"{'':<34}{'expbot':>10}{'bare':>10}{'ratio':>8}   target")
    for title, (ours, base, targeted) in rounds.items():
        n = f"n={len(ours.seconds)}/{len(base.seconds)}, errors {ours.errors}/{base.errors}"
        print(f"ack, {title} ({n})")
        for p in (50, 95, 99):
            r = _ratio(ours.pct(p), base.pct(p))
            target = _mark(r, TARGET_P99) if p == 99 and targeted else ""
            print(f"  p{p} (ms){'':<25}{ours.pct(p):>10.1f}{base.pct(p):>10.1f}{r:>7.2f}x   {target}")
        cpu, cpu_base = ours.cpu_ms_per_ack(), base.cpu_ms_per_ack()
        print(f"  server CPU per ack (ms){'':<10}{cpu:>10.2f}{cpu_base:>10.2f}{_ratio(cpu, cpu_base):>7.2f}x")
    start_ours, start_base = _median(expbot.starts), _median(bare.starts)
    r = _ratio(start_ours, start_base)
    label = f"start to first ack, median of {len(expbot.starts)} (s)"
    print(f"{label:<34}{start_ours:>10.2f}{start_base:>10.2f}{r:>7.2f}x   {_mark(r, TARGET_START)}")
    if expbot.healthz_at:
        print(f"  (expbot /healthz answered at {_median(expbot.healthz_at):.2f} s)")
    r = _ratio(expbot.ready_kb, bare.ready_kb)
    label = "RSS when ready (MB)"
    print(f"{label:<34}{expbot.ready_kb / 1024:>10.1f}{bare.ready_kb / 1024:>10.1f}{r:>7.2f}x   {_mark(r, TARGET_RSS)}")
    (anon_ours, file_ours), (anon_base, file_base) = expbot.ready_split_kb, bare.ready_split_kb
    print(
        f"  (anonymous {anon_ours / 1024:.1f} / {anon_base / 1024:.1f} MB = {_ratio(anon_ours, anon_base):.2f}x; "
        f"file-backed {file_ours / 1024:.1f} / {file_base / 1024:.1f} MB)"
    )
    print(
        f"  (expbot's first start, which migrated a new database with sqlite-utils: {expbot.first_ready_kb / 1024:.1f}"
        f" MB = {_ratio(expbot.first_ready_kb, bare.ready_kb):.2f}x)"
    )
    (rss_ours, hwm_ours), (rss_base, hwm_base) = memory["expbot"], memory["bare"]
    r = _ratio(rss_ours, rss_base)
    label = "RSS after the rounds (MB), no target"
    print(f"{label:<34}{rss_ours / 1024:>10.1f}{rss_base / 1024:>10.1f}{r:>7.2f}x")
    print(
        f"  (expbot created and applied {args.slow_applies} experiments' changes, the bare app only acknowledged; "
        f"peak {hwm_ours / 1024:.1f} / {hwm_base / 1024:.1f} MB)"
    )
    print("Benchmarks report only; they never fail the build.")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else math.nan


# -- the run --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def servers(home: Path, slack: FakeSlack) -> Iterator[tuple[Server, Server]]:
    base_env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
    shared = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url}
    config = home / "expbot.toml"
    config.write_text(f'[providers.sandbox]\nlatency = "{LATENCY}"\n')

    expbot = Server(
        "expbot",
        lambda port: [str(EXPBOT), "serve", "--host", "127.0.0.1", "--port", str(port)],
        {**base_env, **shared, "EXPBOT_CONFIG": str(config), "EXPBOT_DB": str(home / "expbot.db")},
        home,
        healthz=True,
    )
    bare = Server(
        "bare",
        lambda port: [sys.executable, str(BENCH / "bare_app.py"), "--host", "127.0.0.1", "--port", str(port)],
        {**base_env, **shared},
        home,
        healthz=False,
    )
    try:
        yield expbot, bare
    finally:
        expbot.stop()
        bare.stop()


async def run(args: argparse.Namespace) -> None:
    host = machine()
    slack = FakeSlack(bot_token=TOKEN, team_id=TEAM)
    slack.start()
    for uid, name in {"U1": "alice", "U2": "bob", "U3": "carol", "U4": "dave"}.items():
        slack.add_user(uid, name=name)
    load = Load(slack.base_url, args.concurrency)
    with tempfile.TemporaryDirectory(prefix="expbot-bench-") as tmp, servers(Path(tmp), slack) as (expbot, bare):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            signer = Signer(slack.base_url)
            for i in range(args.starts):  # alternate which starts first; the last start of each stays up
                for server in (expbot, bare) if i % 2 == 0 else (bare, expbot):
                    await server.start(http, signer)
                    if i < args.starts - 1:
                        server.stop()

        idle = Samples(), Samples()
        await load.series([(expbot, idle[0]), (bare, idle[1])], args.rounds)  # interleaved: drift hits both alike

        db = Path(tmp) / "expbot.db"
        busy = Samples(), Samples()
        flight = "no slow applies (--slow-applies 0)"
        if args.slow_applies:
            player = SlackPlayer(expbot.url, SECRET, slack, team_id=TEAM, api_app_id="A0BENCH")
            began = time.perf_counter()
            await slow_applies(player, slack, db, args.slow_applies)
            setup = time.perf_counter() - began
            await load.burst(expbot)
            first, counts, give_up = in_flight(db), [], time.monotonic() + 120
            while ((flying := in_flight(db)) and time.monotonic() < give_up) or busy[0].bursts < args.rounds:
                counts.append(flying)
                await load.burst(expbot, busy[0])
            await _until(lambda: not in_flight(db), "the applies to finish", timeout=120)
            await player.aclose()
            applied = _query(db, "SELECT COUNT(*) FROM requests WHERE status = 'applied'")[0][0]
            flight = (
                f"{args.slow_applies} sandbox experiments created, ramped and approved through signed requests "
                f"({setup:.1f} s; sandbox latency {LATENCY}); {first} applies in flight at the first burst, "
                f"{sum(1 for c in counts if c)} of {len(counts)} bursts ran with applies in flight; "
                f"{applied} applied in the end (expbot's CPU per ack in round 2 includes the applies' work)"
            )
        else:
            await load.series([(expbot, busy[0])], args.rounds)
        await quiesce(expbot)
        after = Samples(), Samples()  # expbot idle again with its experiments tracked: what `list` costs alone
        await load.series([(expbot, after[0]), (bare, after[1])], args.rounds)
        await load.series([(bare, busy[1])], busy[0].bursts)  # the bare app has no applies: as many bursts
        memory = {"expbot": expbot.memory_kb(), "bare": bare.memory_kb()}
        load.close()
        rounds = {
            "idle": (*idle, True),
            f"{args.slow_applies} slow applies in flight" if args.slow_applies else "again": (*busy, True),
            f"{_tracked(db)} experiments tracked, nothing in flight (no target)": (*after, False),
        }
        report(args, rounds, expbot, bare, memory, flight, host)
    slack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="bursts per app in round 1 (and at least in round 2)")
    parser.add_argument("--concurrency", type=int, default=100, help="slash commands fired at once per burst")
    parser.add_argument("--slow-applies", type=int, default=50, help="approved ramps applying on expbot during round 2")
    parser.add_argument("--starts", type=int, default=9, help="spawns per app for the start-up time (median)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
