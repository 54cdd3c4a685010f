"""Benchmark: slash-command ack latency and click-to-applied time of the approval loop, over real HTTP."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import build
from bot.config import Env, load_settings
from bot.models import RequestStatus
from commands import register
from tests.slackfake.player import SlackPlayer
from tests.slackfake.web_api import FakeSlack

SECRET = "bench-secret"


def _report(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{name:<34} n={len(ms):<4} p50={statistics.median(ms):7.2f} ms  p95={p95:7.2f} ms  max={ms[-1]:7.2f} ms")


async def main(rounds: int) -> None:
    slack = FakeSlack(bot_token="xoxb-bench")
    for uid, name in (("U1", "alice"), ("U2", "bob")):
        slack.add_user(uid, name=name)
    slack.start()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "expbot.toml"
        cfg.write_text("")
        env = Env(
            slack_bot_token="xoxb-bench",
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            expbot_config=str(cfg),
            expbot_db=str(Path(tmp) / "bench.db"),
        )
        runtime = build(load_settings("serve", env), register)
        server = uvicorn.Server(uvicorn.Config(runtime.asgi(), host="127.0.0.1", port=0, log_level="warning"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        player = SlackPlayer(f"http://127.0.0.1:{port}/slack/events", SECRET, slack)
        sandbox = runtime.workflow.providers["sandbox"]
        from providers.sandbox import SandboxDraft

        await runtime.workflow.experiments.create("sandbox", SandboxDraft(name="Bench"), "C1", "U1")
        acks_help, acks_ramp, applied = [], [], []
        for i in range(rounds):
            start = time.perf_counter()
            await player.command("help", user="U1")
            acks_help.append(time.perf_counter() - start)
            known = len(runtime.store.requests(list(RequestStatus)))
            start = time.perf_counter()
            await player.command(f"ramp exp-1 {20 + i % 2}", user="U1")
            acks_ramp.append(time.perf_counter() - start)
            while True:
                reqs = runtime.store.requests(list(RequestStatus))
                if len(reqs) > known and reqs[-1].message_ts:
                    break
                await asyncio.sleep(0.001)
            req = reqs[-1]
            start = time.perf_counter()
            await player.click(req.channel, req.message_ts or "", "request_approve", user="U2")
            while runtime.store.request(req.id).status is not RequestStatus.APPLIED:  # type: ignore[union-attr]
                await asyncio.sleep(0.001)
            applied.append(time.perf_counter() - start)
        print(f"expbot approval loop, {rounds} rounds, fake Slack and sandbox on loopback, SQLite in WAL mode")
        _report("ack of /experiment help", acks_help)
        _report("ack of /experiment ramp", acks_ramp)
        _report("approve click -> applied", applied)
        print(f"sandbox exposure now {(await sandbox.get('sbx-1')).exposure}%")
        await player.aclose()
        server.should_exit = True
        await task
        runtime.store.close()
    slack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    asyncio.run(main(parser.parse_args().rounds))
