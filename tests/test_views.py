"""Pure builders: cards and requests stay inside Block Kit's limits and show what they must."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.models import Approval, ChangeRequest, Experiment, RequestStatus
from bot.views import card, request_message
from providers.base import Call, Change, ChangeKind, Snapshot, Status, Variant

LONG = "An experiment whose name goes on and on " * 10
SNAP = Snapshot(
    remote_id="x" * 300,
    name=LONG,
    status=Status.RUNNING,
    exposure=30,
    url="https://console.example.com/exp/1",
    variants=tuple(
        Variant(key=f"variant_{i}_" + "k" * 20, name=f"v{i}", weight=20, is_control=i == 0) for i in range(5)
    ),
)
EXP = Experiment(
    id=7,
    provider="sandbox",
    remote_id="x" * 300,
    name=LONG,
    channel="C1",
    card_ts="1.1",
    created_by="U1",
    snapshot=SNAP,
)


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return found + [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def test_card_shows_state_link_and_only_allowed_buttons() -> None:
    msg = card(EXP, frozenset({ChangeKind.PAUSE, ChangeKind.EXPOSURE}), "Sandbox")
    actions = next(b for b in msg.blocks if b["type"] == "actions")["elements"]
    assert [e["action_id"] for e in actions] == ["card_pause", "card_exposure", "card_console"]
    assert actions[-1]["url"] == "https://console.example.com/exp/1"
    header = next(b for b in msg.blocks if b["type"] == "header")
    assert len(header["text"]["text"]) <= 150
    assert "█" in json.dumps(msg.blocks, ensure_ascii=False) and "30%" in msg.text
    assert all(len(t) <= 3000 for t in _texts(msg.blocks))


def test_request_message_limits_and_outcome() -> None:
    plan = [Call(method="PATCH", path="/p/" + "y" * 200, body={"weights": {"a": 1} | {f"k{i}": i for i in range(300)}})]
    now = datetime.now(UTC)
    req = ChangeRequest(
        id=3,
        experiment_id=7,
        change=Change(kind=ChangeKind.EXPOSURE, exposure=50),
        before=SNAP,
        plan=plan,
        requested_by="U1",
        required=2,
        status=RequestStatus.PENDING,
        channel="C1",
        message_ts="1.2",
        created_at=now,
        expires_at=now + timedelta(hours=1),
        approvals=(Approval(user="U2", at=now),),
    )
    pending = request_message(req, EXP)
    assert len(pending.blocks) <= 50 and all(len(t) <= 3000 for t in _texts(pending.blocks))
    assert "Approvals 1/2: <@U2>" in json.dumps(pending.blocks)
    approve = pending.blocks[-1]["elements"][0]
    assert approve["confirm"]["title"]["text"] and len(approve["confirm"]["text"]["text"]) <= 300
    done = request_message(req.model_copy(update={"status": RequestStatus.REJECTED, "decided_by": "U3"}), EXP)
    assert all(b["type"] != "actions" for b in done.blocks)
    assert "Rejected* by <@U3>" in json.dumps(done.blocks)
