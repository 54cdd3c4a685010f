"""Pure builders: cards and requests stay inside Block Kit's limits and show what they must."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot import texts
from bot.errors import explain
from bot.models import (
    Approval,
    AuditEvent,
    ChangeRequest,
    Experiment,
    ExperimentSummary,
    JournalEntry,
    RequestStatus,
)
from bot.views import card, request_message
from providers.base import Action, Capabilities
from providers.errors import BadRequest
from providers.models import Change, ChangeKind, Snapshot, Status, Variant
from providers.plan import Answer, Plan, Step
from tests.conftest import mrkdwn_texts

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
    caps = Capabilities(
        changes=frozenset({ChangeKind.PAUSE, ChangeKind.EXPOSURE}), actions=(Action(key="r", label="R"),)
    )
    msg = card(EXP, caps, "Sandbox")
    actions = next(b for b in msg.blocks if b["type"] == "actions")["elements"]
    assert [e["action_id"] for e in actions] == ["card_pause", "card_exposure", "card_action", "card_console"]
    assert actions[2]["value"] == "7:r"
    assert actions[-1]["url"] == "https://console.example.com/exp/1"
    header = next(b for b in msg.blocks if b["type"] == "header")
    assert len(header["text"]["text"]) <= 150
    assert "█" in json.dumps(msg.blocks, ensure_ascii=False) and "30%" in msg.text
    assert all(len(t) <= 3000 for t in _texts(msg.blocks))


def test_request_message_limits_and_outcome() -> None:
    body = {"weights": {"a": 1} | {f"k{i}": i for i in range(300)}}
    plan = Plan(steps=[Step(method="PATCH", path="/p/" + "y" * 200, body=body)], notes=["n" * 4000])
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
    pending = request_message(req, EXP, SNAP)
    assert len(pending.blocks) <= 50 and all(len(t) <= 3000 for t in _texts(pending.blocks))
    assert "Approvals 1/2: <@U2>" in json.dumps(pending.blocks)
    approve = pending.blocks[-1]["elements"][0]
    assert approve["confirm"]["title"]["text"] and len(approve["confirm"]["text"]["text"]) <= 300
    done = request_message(req.model_copy(update={"status": RequestStatus.REJECTED, "decided_by": "U3"}), EXP, SNAP)
    assert all(b["type"] != "actions" for b in done.blocks)
    assert "Rejected* by <@U3>" in json.dumps(done.blocks)


EVIL = "<!channel> <https://evil.example|approve here> & co"


def _assert_inert(*texts_: str) -> None:
    for text in texts_:
        assert "<!channel>" not in text and "<https://evil" not in text and "& co" not in text, text


def test_user_and_provider_text_is_escaped_everywhere() -> None:
    snap = SNAP.model_copy(
        update={"name": EVIL, "note": EVIL, "variants": (Variant(key="a<b>", name="x", weight=100, is_control=True),)}
    )
    exp = EXP.model_copy(update={"name": EVIL, "remote_id": EVIL, "snapshot": snap})
    now = datetime.now(UTC)
    change = Change(kind=ChangeKind.SHIP, variant=EVIL)
    req = ChangeRequest(
        id=1,
        experiment_id=7,
        change=change,
        before=snap,
        requested_by="U1",
        required=1,
        plan=Plan(steps=[Step(method="POST", path="/x", body={"v": EVIL}, label=EVIL)], notes=[EVIL]),
        status=RequestStatus.FAILED,
        outcome=EVIL,
        channel="C1",
        message_ts="1",
        created_at=now,
        expires_at=now,
    )
    pending = req.model_copy(update={"status": RequestStatus.PENDING})
    caps = Capabilities(changes=frozenset({ChangeKind.STOP}), actions=(Action(key="x", label=EVIL),))
    messages = [card(exp, caps, EVIL), request_message(req, exp, snap), request_message(pending, exp, snap)]
    for msg in messages:
        _assert_inert(msg.text, *mrkdwn_texts(msg.blocks))
        assert "&lt;!channel&gt;" in json.dumps(msg.blocks)
    journal = {0: JournalEntry(idx=0, status="failed", step=req.plan.steps[0], answer=Answer(status=409), error=EVIL)}
    event = AuditEvent(
        id=1, ts=now, actor=EVIL, experiment_id=7, request_id=1, action="provider.call", detail={"error": EVIL}
    )
    _assert_inert(
        texts.experiment_list(
            ([ExperimentSummary(id=7, provider="sandbox", name=EVIL, status="running", exposure=30)], 1),
            {"sandbox": EVIL},
        ),
        texts.experiment_detail(exp, EVIL, [pending]),
        texts.audit_text(exp, [event]),
        texts.already_tracked(exp, None),
        texts.tracking(exp, [EVIL]),
        texts.missing_note([EVIL]),
        texts.stale_note(req, snap),
        texts.failed_note(
            req, explain(BadRequest(EVIL, EVIL, status=422, code=EVIL)), texts.step_report(req.plan, journal)
        ),
        texts.outcome_dm(req, exp, RequestStatus.FAILED, EVIL),
        texts.rejected_dm(req, exp, "U2"),
        texts.expired_dm(req, exp),
        texts.asked(req, exp),
    )
    assert "&lt;!channel&gt;" in texts.outcome_dm(req, exp, RequestStatus.FAILED, EVIL)
