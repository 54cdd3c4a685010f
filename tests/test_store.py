"""The SQLite store: migrations, compare-and-set transitions across connections and processes, audit rows."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlite_utils
import sqlite_utils.plugins

from bot.models import RequestStatus
from bot.store import MIGRATIONS, Store, now
from providers.models import Change, ChangeKind, Snapshot, Status, Variant
from providers.plan import Plan, Step

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


async def _request(store: Store) -> int:
    exp, new = await store.add_experiment("sandbox", SNAP, "C1", "U1")
    assert new
    plan = Plan(steps=[Step(method="PATCH", path="/x", body={"status": "running"})])
    return await store.add_request(exp, Change(kind=ChangeKind.START), SNAP, plan, "U1", 1, now() + timedelta(hours=1))


def test_migrations_create_schema_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "expbot.db"
    Store(db).close()
    Store(db).close()  # applying again is a no-op
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"experiments", "requests", "approvals", "audit", "sandbox_experiments"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0] == 4
    assert {"leases", "steps", "outbox"} <= tables


def test_a_database_of_an_older_version_is_brought_up_to_date(tmp_path: Path) -> None:
    path, stamp = tmp_path / "old.db", now().isoformat()
    first = sqlite_utils.migrations.Migrations("expbot")
    first()(MIGRATIONS[0])
    old = sqlite_utils.Database(path)
    first.apply(old)  # the schema as version 1 left it, with a request whose plan is a bare list of calls
    old.execute(
        "INSERT INTO experiments VALUES (1, 'sandbox', 'sbx-1', 'Checkout', 'C1', NULL, 'U1', ?, ?, ?)",
        [SNAP.model_dump_json(), stamp, stamp],
    )
    calls = [{"method": "PATCH", "path": "/x", "body": {"status": "running"}}]
    old.execute(
        "INSERT INTO requests VALUES (1, 1, ?, ?, ?, 'U1', 1, 'pending', 'C1', NULL, ?, ?, NULL, NULL)",
        [Change(kind=ChangeKind.START).model_dump_json(), SNAP.model_dump_json(), json.dumps(calls), stamp, stamp],
    )
    old.close()
    store = Store(path)
    try:
        req = store.request(1)
        assert req is not None and [s.path for s in req.plan.steps] == ["/x"]
        listed, total = store.summaries(None, "draft", 10)
        assert total == 1 and listed[0].exposure == 10  # the listing columns were filled from the snapshot
        names = [r[0] for r in store.db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
        assert names == [fn.__name__ for fn in MIGRATIONS]
    finally:
        store.close()


def test_sqlite_utils_is_loaded_only_to_migrate(tmp_path: Path) -> None:
    """An up-to-date database opens without sqlite-utils (2 MB of memory that a restart should not pay)."""
    probe = "import sys; from bot.store import Store; Store(sys.argv[1]).close(); print('sqlite_utils' in sys.modules)"
    path = str(tmp_path / "expbot.db")
    opened = [subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True) for _ in range(2)]
    assert [run.stdout.strip() for run in opened] == ["True", "False"], [run.stderr for run in opened]


def test_processes_starting_together_on_a_new_database_migrate_it_once(tmp_path: Path) -> None:
    """Replicas (or a new version rolling out) open one new database at once: one migrates, the others wait."""
    probe = "import sys; from bot.store import Store; Store(sys.argv[1]).close()"
    path = str(tmp_path / "expbot.db")
    procs = [subprocess.Popen([sys.executable, "-c", probe, path], stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outcomes = [(proc.wait(timeout=60), proc.stderr.read() if proc.stderr else "") for proc in procs]
    assert [code for code, _ in outcomes] == [0] * 6, [err[-800:] for _, err in outcomes]
    names = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == [fn.__name__ for fn in MIGRATIONS]


def test_a_write_that_fails_midway_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    try:
        with pytest.raises(RuntimeError), store.db.atomic():
            store.db.execute("INSERT INTO audit (ts, actor, action, detail) VALUES ('t', 'U1', 'a', 'd')")
            raise RuntimeError("boom")
        assert store.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 0
        with store.db.atomic():
            store.db.execute("INSERT INTO audit (ts, actor, action, detail) VALUES ('t', 'U1', 'a', 'd')")
        assert sqlite3.connect(tmp_path / "x.db").execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 1
    finally:
        store.close()


async def test_experiment_is_tracked_once_and_older_reads_never_win(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    first, new1 = await store.add_experiment("sandbox", SNAP, "C1", "U1")
    second, new2 = await store.add_experiment("sandbox", SNAP, "C2", "U2")
    assert new1 and not new2 and first.id == second.id
    assert store.experiment(1) == first == store.experiment_by_remote("sandbox", "sbx-1")
    assert store.experiment(99) is None
    early, late = now(), now() + timedelta(seconds=1)
    newer = SNAP.model_copy(update={"exposure": 50})
    assert await store.save_snapshot(1, newer, late)
    assert not await store.save_snapshot(
        1, SNAP.model_copy(update={"exposure": 20}), early
    )  # answered last, read first
    assert store.experiment(1).snapshot.exposure == 50


async def test_outbox_sends_each_message_once_and_edits_in_order(tmp_path: Path) -> None:
    from bot.models import OutboxItem

    a, b = Store(tmp_path / "x.db"), Store(tmp_path / "x.db")
    await a.enqueue([OutboxItem.card(1), OutboxItem.dm("U1", "1:applied", "hi")])
    await a.enqueue([OutboxItem.dm("U1", "1:applied", "again")])  # an event is queued once
    first = await a.claim_due("p1", timedelta(seconds=60))
    assert [r.key for r in first] == ["card:1", "dm:U1:1:applied"] and first[1].text == "hi"
    assert await b.claim_due("p2", timedelta(seconds=60)) == []  # nobody else sends them meanwhile
    await b.enqueue([OutboxItem.card(1)])  # a newer state arrives while p1 sends the older one
    assert not await a.outbox_sent(first[0], "p1")  # so it stays due, to be rendered again
    assert await a.outbox_sent(first[1], "p1")
    again = await b.claim_due("p2", timedelta(seconds=60))
    assert [(r.key, r.version) for r in again] == [("card:1", 2)]
    await b.outbox_failed(again[0], "p2", "ratelimited", now() + timedelta(seconds=30))
    stats = a.outbox_stats()
    assert stats.depth == 1 and stats.dead == 0 and stats.oldest_age is not None
    assert await a.claim_due("p1", timedelta(seconds=60)) == []  # not due before Retry-After
    assert a.outbox_rows("pending")[0].attempts == 1 and a.outbox_rows("pending")[0].last_error == "ratelimited"


async def test_leases_are_exclusive_until_released_or_expired(tmp_path: Path) -> None:
    a, b = Store(tmp_path / "x.db"), Store(tmp_path / "x.db")
    rid = await _request(a)
    assert await a.take_lease(1, rid, "p1", timedelta(seconds=60))
    assert not await b.take_lease(1, rid, "p2", timedelta(seconds=60))
    assert not await a.take_lease(1, rid, "p1", timedelta(seconds=60))  # not even twice by its holder
    assert b.lease_holder(1) == (rid, "p1")
    await a.release_lease(1, "p1")
    assert await b.take_lease(1, rid, "p2", timedelta(seconds=-1))  # taken, but already run out
    assert await a.take_lease(1, rid, "p1", timedelta(seconds=60))  # so anyone may take it over


async def test_journal_records_each_step_with_its_audit_row(tmp_path: Path) -> None:
    from providers.plan import Answer

    store = Store(tmp_path / "x.db")
    rid = await _request(store)
    step = Step(method="POST", path="/x/decisions", body={"variant": "a"})
    await store.step_sent(rid, 0, step)
    assert store.journal(rid)[0].status == "sent"
    await store.step_finished(rid, 0, "done", Answer(status=201, data={"id": "dec-1"}))
    await store.step_sent(rid, 1, step)
    await store.step_finished(rid, 1, "failed", None, "409 no")
    journal = store.journal(rid)
    assert journal[0].answer == Answer(status=201, data={"id": "dec-1"}) and journal[1].error == "409 no"
    calls = [e.detail for e in store.audit_events(1) if e.action == "provider.call"]
    assert [(c["step"], c["status"]) for c in calls] == [(1, "done"), (2, "failed")] and calls[0]["ids"] == {
        "id": "dec-1"
    }
    big = Answer(status=200, data={"_id": "it-9", "items": ["x" * 100] * 500})  # a provider's whole experiment
    await store.step_sent(rid, 2, step)
    await store.step_finished(rid, 2, "done", big)
    assert store.journal(rid)[2].answer == big  # kept whole: later steps may read any field of it


async def test_transition_is_compare_and_set(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    a, b = Store(path), Store(path)
    rid = await _request(a)
    assert await a.transition(rid, [RequestStatus.PENDING], RequestStatus.APPROVED, "U2")
    assert not await b.transition(rid, [RequestStatus.PENDING], RequestStatus.APPROVED, "U3")
    assert not await b.transition(rid, [RequestStatus.PENDING], RequestStatus.CANCELLED, "U1")
    req = b.request(rid)
    assert req is not None and req.status is RequestStatus.APPROVED
    actions = [e.action for e in b.audit_events(req.experiment_id)]
    assert actions == ["request.created", "request.approved"]


async def test_approval_counts_once_and_only_while_pending(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    rid = await _request(store)
    assert await store.add_approval(rid, "U2")
    assert not await store.add_approval(rid, "U2")
    await store.transition(rid, [RequestStatus.PENDING], RequestStatus.REJECTED, "U3")
    assert not await store.add_approval(rid, "U4")
    req = store.request(rid)
    assert req is not None and [a.user for a in req.approvals] == ["U2"]


def _race(path: str, rid: int, user: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = Store(path)
    results.put(asyncio.run(store.transition(rid, [RequestStatus.PENDING], RequestStatus.APPROVED, user)))


def test_installed_sqlite_utils_plugins_stay_off_our_connections(tmp_path: Path) -> None:
    class Plugin:
        """A sqlite-utils plugin as a package would install it: it registers SQL functions on every connection."""

        def __init__(self) -> None:
            self.prepared: list[sqlite3.Connection] = []

        @sqlite_utils.hookimpl
        def prepare_connection(self, conn: sqlite3.Connection) -> None:
            self.prepared.append(conn)
            conn.create_function("pwned", 0, lambda: 1)

    plugin = Plugin()
    sqlite_utils.plugins.pm.register(plugin)
    try:
        store = Store(tmp_path / "expbot.db")
        try:
            assert plugin.prepared == []
            with pytest.raises(sqlite3.OperationalError, match="no such function"):
                store.db.execute("SELECT pwned()")
        finally:
            store.close()
        sqlite_utils.Database(sqlite3.connect(":memory:")).close()  # the hook is live: a default connection runs it
        assert len(plugin.prepared) == 1
    finally:
        sqlite_utils.plugins.pm.unregister(plugin)


def test_only_one_process_wins_a_transition(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    rid = asyncio.run(_request(Store(path)))
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


async def test_listing_reads_a_narrow_page_and_the_total(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    for i in range(45):
        snap = SNAP.model_copy(
            update={"remote_id": f"sbx-{i}", "name": f"E{i}", "status": Status.RUNNING if i % 3 else Status.DRAFT}
        )
        await store.add_experiment("sandbox", snap, "C1", "U1")
    page, total = store.summaries(None, None, 40)
    assert len(page) == 40 and total == 45 and page[0].ref == "exp-1" and page[0].exposure == 10
    drafts, n = store.summaries("sandbox", "draft", 40)
    assert n == 15 and {s.status for s in drafts} == {"draft"}
    assert store.summaries("launchdarkly", None, 40) == ([], 0)
