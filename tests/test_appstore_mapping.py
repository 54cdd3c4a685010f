"""App Store Connect's pure mapping: states → statuses, capabilities, refusals, and every plan body per the spec."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from providers import appstore_mapping as m
from providers.appstore import AppStoreProvider
from providers.appstore_forms import AppStoreSettings
from providers.auth import AppStoreJwt
from providers.errors import InvalidChange
from providers.models import Change, ChangeKind, Status
from providers.plan import Answer, ApplyContext, resolve
from tests.contract.harness_appstore import ISSUER, KEY_ID, PEM, draft, new_fake, new_provider
from tests.fake_appstore import FakeAppStore
from tests.fake_appstore_spec import COPY, OPERATIONS, SHARED, body_errors, extract

START = "2026-05-01T10:00:00.000+00:00"
CTX = ApplyContext(request_id=7, requester="U1", approvers=["U2"], now=datetime(2026, 6, 1, tzinfo=UTC))


def _doc(state: str, start: str | None = None, end: str | None = None, treatments: int = 2) -> dict[str, Any]:
    ids = [f"t{i}" for i in range(treatments)]
    attrs = {"name": "Icons", "platform": "IOS", "trafficProportion": 40, "state": state}
    attrs |= {"reviewRequired": True, "startDate": start, "endDate": end}
    rels = {
        "app": {"data": {"type": "apps", "id": "1"}},
        m.TREATMENTS: {"data": [{"type": m.TREATMENTS, "id": i} for i in ids]},
    }
    included = [{"type": m.TREATMENTS, "id": i, "attributes": {"name": f"T {i}"}} for i in ids]
    return {
        "data": {"type": m.EXPERIMENTS, "id": "e1", "attributes": attrs, "relationships": rels},
        "included": included,
    }


@pytest.mark.parametrize(
    ("state", "start", "end", "status"),
    [
        ("PREPARE_FOR_SUBMISSION", None, None, Status.DRAFT),
        ("READY_FOR_REVIEW", None, None, Status.IN_REVIEW),
        ("WAITING_FOR_REVIEW", None, None, Status.IN_REVIEW),
        ("IN_REVIEW", None, None, Status.IN_REVIEW),
        ("APPROVED", None, None, Status.READY),
        ("ACCEPTED", None, None, Status.READY),
        ("APPROVED", START, None, Status.RUNNING),
        ("ACCEPTED", START, None, Status.RUNNING),
        ("STOPPED", START, START, Status.STOPPED),
        ("COMPLETED", START, START, Status.COMPLETED),
        ("REJECTED", None, None, Status.DRAFT),
    ],
)
def test_states_map_to_statuses(state: str, start: str | None, end: str | None, status: Status) -> None:
    snap = m.snapshot(_doc(state, start, end))
    assert snap.status is status and snap.exposure == 40
    assert snap.note == ("rejected by App Review" if state == "REJECTED" else None)
    assert [v.weight for v in snap.variants] == [33.34, 33.33, 33.33] and snap.variants[0].is_control


def test_the_fingerprint_follows_treatments_started_and_state() -> None:
    base = m.snapshot(_doc("APPROVED")).fingerprint
    assert m.snapshot(_doc("ACCEPTED")).fingerprint != base
    assert m.snapshot(_doc("APPROVED", START)).fingerprint != base
    other = _doc("APPROVED")
    other["data"]["relationships"][m.TREATMENTS]["data"][1]["id"] = other["included"][1]["id"] = "t9"
    assert m.snapshot(other).fingerprint != base


def test_capabilities_come_from_the_whole_snapshot() -> None:
    def caps(doc: dict[str, Any], allow_stop: bool = False) -> set[str]:
        found = m.capabilities(m.snapshot(doc), allow_stop)
        return {k.value for k in found.changes} | {a.key for a in found.actions}

    assert caps(_doc("PREPARE_FOR_SUBMISSION")) == {"exposure", "archive", "submit_review"}
    assert caps(_doc("PREPARE_FOR_SUBMISSION", treatments=0)) == {"exposure", "archive"}
    assert caps(_doc("REJECTED")) == {"exposure", "archive", "submit_review"}
    assert caps(_doc("WAITING_FOR_REVIEW")) == set()
    assert caps(_doc("APPROVED")) == {"start", "exposure", "archive"}
    assert caps(_doc("APPROVED", START)) == {"exposure", "ship"}
    assert caps(_doc("APPROVED", START), allow_stop=True) == {"exposure", "ship", "stop"}
    assert caps(_doc("STOPPED", START, START)) == {"ship"}
    promoted = _doc("STOPPED", START, START)
    promoted["included"][0]["attributes"]["promotedDate"] = START
    assert caps(promoted) == set() and m.snapshot(promoted).guard["promoted"] == "t-t0"


@pytest.fixture
async def setup() -> AsyncIterator[tuple[FakeAppStore, AppStoreProvider]]:
    fake = new_fake()
    provider = new_provider(fake)
    yield fake, provider
    await provider.aclose()
    fake.stop()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (Change(kind=ChangeKind.PAUSE), "has no pause"),
        (Change(kind=ChangeKind.RESUME), "cannot be restarted"),
        (Change(kind=ChangeKind.WEIGHTS, weights={"original": 50, "a": 50}), "splits a test's traffic evenly"),
        (Change(kind=ChangeKind.STOP), "does not document stopping"),
        (Change(kind=ChangeKind.EXPOSURE, exposure=12.5), "whole percentages"),
        (Change(kind=ChangeKind.SHIP, variant="original"), "original product page is live"),
        (Change(kind=ChangeKind.START), "only once App Review has approved"),
    ],
)
async def test_refusals_say_why(change: Change, words: str) -> None:
    running = m.snapshot(_doc("APPROVED", START))
    snap = m.snapshot(_doc("PREPARE_FOR_SUBMISSION")) if change.kind is ChangeKind.START else running
    provider = AppStoreProvider(AppStoreSettings(), AppStoreJwt(ISSUER, KEY_ID, PEM))
    with pytest.raises(InvalidChange) as err:
        await provider.plan(snap, change)  # refused before any call: nothing listens at the default base URL here
    assert words in err.value.detail
    await provider.aclose()


def _answer_for(step_path: str, index: int) -> Answer:
    return Answer(status=201, data={"data": {"type": "x", "id": f"new-{index}"}})


async def test_every_plan_body_validates_against_the_spec(setup: tuple[FakeAppStore, AppStoreProvider]) -> None:
    fake, provider = setup
    snap = (await provider.create(draft("Bodies"))).snapshot
    with fake._lock:
        fake.state.experiments[snap.remote_id] |= {"state": "APPROVED"}
    ready = await provider.get(snap.remote_id)
    running = ready.model_copy(update={"status": Status.RUNNING, "guard": {**ready.guard, "started": True}})
    plans = [
        await provider.plan(snap, Change(kind=ChangeKind.ACTION, action="submit_review")),
        await provider.plan(ready, Change(kind=ChangeKind.START)),
        await provider.plan(ready, Change(kind=ChangeKind.EXPOSURE, exposure=20)),
        await provider.plan(ready, Change(kind=ChangeKind.ARCHIVE)),
        await new_provider(fake, allow_stop=True).plan(running, Change(kind=ChangeKind.STOP)),
        await provider.plan(running, Change(kind=ChangeKind.SHIP, variant="treatment-b")),
    ]
    fake.state.add_version("1452013590", "IOS", "1.1", "PREPARE_FOR_SUBMISSION")
    plans.append(await provider.plan(running, Change(kind=ChangeKind.SHIP, variant="treatment-b")))
    checked = 0
    for plan in plans:
        answers: list[Answer] = []
        for i, step in enumerate(plan.steps):
            sent = resolve(step, answers, CTX)
            answers.append(_answer_for(sent.path, i))
            if sent.body is None:
                continue
            template = "/".join(
                "{id}" if m.UUID.fullmatch(p) or p.startswith("new-") else p for p in sent.path.split("/")
            )
            assert body_errors(template, sent.method.lower(), sent.body) == [], sent.render()
            assert "{{" not in json.dumps(sent.body)
            checked += 1
    assert checked == 9  # the DELETE has no body
    assert [s.label for s in plans[5].steps] == [
        "create App Store version 1.1 to carry the winner",
        "apply treatment Treatment B to the product page",
    ]
    assert plans[5].steps[1].body["data"]["relationships"]["appStoreVersion"]["data"]["id"] == "{{steps.0.data.id}}"  # type: ignore[index]
    assert len(plans[6].steps) == 1 and "does not document stopping" in plans[4].notes[0]


def test_next_version() -> None:
    assert m.next_version(["1.0", "1.2", "1.10", "bad"]) == "1.11"
    assert m.next_version([]) == "1.0" and m.next_version(["2"]) == "3"


def test_the_spec_copy_is_api_4_4_1_and_equals_the_shared_reference_where_present() -> None:
    copied = json.loads(COPY.read_text())
    assert copied["info"]["version"] == "4.4.1"
    assert {p: sorted(ops) for p, ops in copied["paths"].items()} == {p: sorted(o) for p, o in OPERATIONS.items()}
    if SHARED.exists():  # the reference is on development machines, not necessarily in CI
        assert copied == extract(json.loads(SHARED.read_text()))
