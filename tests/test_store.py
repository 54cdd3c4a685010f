"""The SQLite store: migrations, compare-and-set transitions across connections and processes, audit rows."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import timedelta
from pathlib import Path

from bot.models import RequestStatus
from bot.store import Store, now
from providers.base import Call, Change, ChangeKind, Snapshot, Status, Variant

SNAP = Snapshot(
    remote_id="sbx-1",
    name="Checkout",
    status=Status.DRAFT,
    exposure=10,
    variants=(
        Variant(key="control", name="control", weight=50, is_control=True),
        Variant(key="treatment", name="treatment", weight=50),
    ),
)


def _request(store: Store) -> int:
    exp, new = store.add_experiment("sandbox", SNAP, "C1", "U1")
    assert new
    req = store.add_request(
        exp,
        Change(kind=ChangeKind.START),
        SNAP,
        [Call(method="PATCH", path="/x", body={"status": "running"})],
        "U1",
        1,
        now() + timedelta(hours=1),
    )
    return req.id


def test_migrations_create_schema_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "expbot.db"
    Store(db).close()
    Store(db).close()  # applying again is a no-op
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"experiments", "requests", "approvals", "audit", "sandbox_experiments"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0] == 1


def test_experiment_is_tracked_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    first, new1 = store.add_experiment("sandbox", SNAP, "C1", "U1")
    second, new2 = store.add_experiment("sandbox", SNAP, "C2", "U2")
    assert new1 and not new2 and first.id == second.id
    assert store.find_experiment("exp-1") == first == store.find_experiment("sbx-1")
    assert store.find_experiment("exp-99") is None


def test_transition_is_compare_and_set(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    a, b = Store(path), Store(path)
    rid = _request(a)
    assert a.transition(rid, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
    assert not b.transition(rid, [RequestStatus.PENDING], RequestStatus.APPROVED, "U3")
    assert not b.transition(rid, [RequestStatus.PENDING], RequestStatus.CANCELLED, "U1")
    req = b.request(rid)
    assert req is not None and req.status is RequestStatus.APPROVED
    actions = [e.action for e in b.audit_events(req.experiment_id)]
    assert actions == ["request.created", "request.approved"]


def test_approval_counts_once_and_only_while_pending(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    rid = _request(store)
    assert store.add_approval(rid, "U2")
    assert not store.add_approval(rid, "U2")
    store.transition(rid, [RequestStatus.PENDING], RequestStatus.REJECTED, "U3")
    assert not store.add_approval(rid, "U4")
    req = store.request(rid)
    assert req is not None and [a.user for a in req.approvals] == ["U2"]


def _race(path: str, rid: int, user: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = Store(path)
    results.put(store.transition(rid, [RequestStatus.PENDING], RequestStatus.APPROVED, user))


def test_only_one_process_wins_a_transition(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    rid = _request(Store(path))
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(path), rid, f"U{i}", results)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    wins = [results.get(timeout=5) for _ in procs]
    assert wins.count(True) == 1 and wins.count(False) == 3
    events = Store(path).audit_events(1)
    assert [e.action for e in events].count("request.approved") == 1
