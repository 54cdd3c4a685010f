"""The Amplitude adapter against its fake over loopback HTTP: create, track, refusals, errors, retries, doubt."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from providers.amplitude import DRIVER, AmplitudeProvider
from providers.amplitude_forms import AmplitudeDraft, AmplitudeSettings
from providers.errors import InvalidChange, NotFound, OutcomeUnknown, ProviderError, Unauthorized
from providers.models import Change, ChangeKind, Status
from providers.plan import Answer, resolve
from tests.contract.harness import CTX, send_plan
from tests.contract.harness_amplitude import adapter
from tests.fake_amplitude import FakeAmplitude


@pytest.fixture
def fake() -> Iterator[FakeAmplitude]:
    server = FakeAmplitude().start()
    yield server
    server.stop()


@pytest.fixture
async def amp(fake: FakeAmplitude) -> AsyncIterator[AmplitudeProvider]:
    provider = adapter(fake)
    yield provider
    await provider.aclose()


async def _run(amp: AmplitudeProvider, remote_id: str, change: Change) -> list[Answer]:
    return await send_plan(amp, await amp.plan(await amp.get(remote_id), change))


async def test_create_sends_the_documented_body_and_reads_back_a_draft(
    fake: FakeAmplitude, amp: AmplitudeProvider
) -> None:
    draft = AmplitudeDraft.model_validate(
        {"name": "Checkout Button!", "variants": "control, green", "deployments": "7"}
    )
    snap = (await amp.create(draft)).snapshot
    [post] = fake.calls("POST")
    assert post.headers["authorization"] == f"Bearer {fake.key}"
    assert post.json() == {
        "projectId": "100",
        "key": "checkout-button",
        "name": "Checkout Button!",
        "variants": [{"key": "control"}, {"key": "green"}],
        "rolloutWeights": {"control": 1, "green": 1},
        "bucketingKey": "amplitude_id",
        "evaluationMode": "remote",
        "deployments": ["7"],
    }
    assert snap.status is Status.DRAFT and snap.exposure == 0 and snap.weights() == {"control": 50, "green": 50}
    assert snap.remote_id.isdigit() and snap.url and snap.url.endswith(f"/amplitude/100/config/{snap.remote_id}")
    assert snap.note and "created" in snap.note


async def test_a_create_whose_answer_was_lost_is_found_by_its_key_not_made_twice(
    fake: FakeAmplitude, amp: AmplitudeProvider
):
    fake.inject("timeout_after_write", method="POST")
    snap = (await amp.create(AmplitudeDraft(name="Pricing page"))).snapshot
    assert len(fake.calls("POST")) == 1 and len(fake.experiments) == 1
    lookup = fake.calls("GET", r"^/api/1/experiments$")[0]
    assert lookup.query["key"] == "pricing-page" and lookup.query["projectId"] == "100"
    assert snap.remote_id == next(iter(fake.experiments)) and snap.name == "Pricing page"


async def test_a_create_dropped_before_amplitude_acted_is_sent_once_more(
    fake: FakeAmplitude, amp: AmplitudeProvider
) -> None:
    fake.inject("drop", method="POST")
    snap = (await amp.create(AmplitudeDraft(name="Pricing page"))).snapshot
    assert len(fake.calls("POST")) == 2 and list(fake.experiments) == [snap.remote_id]


async def test_track_by_id_or_key_gives_one_canonical_id(fake: FakeAmplitude, amp: AmplitudeProvider) -> None:
    rid = fake.add_experiment("made-in-console", name="Made in console")
    by_key = await amp.get("made-in-console")
    by_id = await amp.get(f" {rid} ")
    assert by_key.remote_id == by_id.remote_id == rid
    assert amp.canonical_id("made-in-console") == amp.canonical_id(f"0{rid}") == rid
    with pytest.raises(NotFound):
        await amp.get("no-such-key")


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, Status.DRAFT),
        ({"enabled": True, "startDate": "2026-01-02"}, Status.RUNNING),
        ({"enabled": False, "startDate": "2026-01-02"}, Status.PAUSED),
        ({"enabled": False, "startDate": "2026-01-02", "endDate": "2026-01-09"}, Status.STOPPED),
        ({"enabled": True, "decision": "rollout", "rolledOutVariant": "treatment"}, Status.COMPLETED),
        ({"enabled": False, "archived": True}, Status.ARCHIVED),
    ],
)
async def test_status_and_weights_from_the_experiment(
    fake: FakeAmplitude, amp: AmplitudeProvider, fields: dict[str, Any], status: Status
) -> None:
    rid = fake.add_experiment("e", rolloutWeights={"control": 1, "treatment": 3}, rolloutPercentage=30, **fields)
    snap = await amp.get(rid)
    assert snap.status is status and snap.exposure == 30
    assert snap.weights() == {"control": 25, "treatment": 75} and snap.variant("control").is_control  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "change"),
    [
        ({}, Change(kind=ChangeKind.PAUSE)),
        ({"enabled": True, "startDate": "2026-01-02"}, Change(kind=ChangeKind.START)),
        ({"archived": True}, Change(kind=ChangeKind.EXPOSURE, exposure=20)),
        ({"archived": True}, Change(kind=ChangeKind.RESTORE)),
        ({"decision": "rollout"}, Change(kind=ChangeKind.SHIP, variant="control")),
        ({"enabled": True, "startDate": "2026-01-02"}, Change(kind=ChangeKind.SHIP, variant="nope")),
        ({}, Change(kind=ChangeKind.EXPOSURE, exposure=12.5)),
        ({}, Change(kind=ChangeKind.WEIGHTS, weights={"control": 50, "treatment": 50})),
    ],
)
async def test_a_change_the_experiment_cannot_take_is_refused_before_any_call(
    fake: FakeAmplitude, amp: AmplitudeProvider, fields: dict[str, Any], change: Change
) -> None:
    rid = fake.add_experiment("e", **fields)
    snap = await amp.get(rid)
    before = fake.writes
    with pytest.raises(InvalidChange):
        await amp.plan(snap, change)
    assert fake.writes == before and not fake.calls("PATCH")


async def test_a_split_is_one_variant_patch_each_in_integer_weights(
    fake: FakeAmplitude, amp: AmplitudeProvider
) -> None:
    rid = fake.add_experiment("e", variants=[{"key": "control"}, {"key": "a"}, {"key": "b"}])
    change = Change(kind=ChangeKind.WEIGHTS, weights={"control": 20, "a": 30, "b": 50})
    plan = await amp.plan(await amp.get(rid), change)
    assert [(s.method, s.path, s.body) for s in plan.steps] == [
        ("PATCH", f"/api/1/experiments/{rid}/variants/control", {"rolloutWeight": 2}),
        ("PATCH", f"/api/1/experiments/{rid}/variants/a", {"rolloutWeight": 3}),
        ("PATCH", f"/api/1/experiments/{rid}/variants/b", {"rolloutWeight": 5}),
    ]
    answers = await _run(amp, rid, change)
    assert [a.data for a in answers] == ["OK", "OK", "OK"]  # the variant PATCH answers plain text
    assert (await amp.get(rid)).weights() == {"control": 20, "a": 30, "b": 50}
    assert not any("rolloutWeights" in s.json() for s in fake.calls("PATCH", rf"^/api/1/experiments/{rid}$"))


async def test_ship_zeroes_the_others_then_records_the_decision(fake: FakeAmplitude, amp: AmplitudeProvider) -> None:
    rid = fake.add_experiment("e", enabled=False, startDate="2026-01-02", rolloutPercentage=20)
    await _run(amp, rid, Change(kind=ChangeKind.SHIP, variant="treatment"))
    exp = fake.experiments[rid]
    assert exp["rolloutWeights"] == {"control": 0, "treatment": 1} and exp["rolloutPercentage"] == 100
    assert exp["decision"] == "rollout" and exp["rolledOutVariant"] == "treatment" and exp["enabled"] is True
    assert exp["decisionReason"] == "expbot request #1, approved by U2"
    assert (await amp.get(rid)).status is Status.COMPLETED


async def test_a_405_is_shown_and_not_retried(fake: FakeAmplitude, amp: AmplitudeProvider) -> None:
    rid = fake.add_experiment("web-test", web=True)
    with pytest.raises(ProviderError) as err:
        await _run(amp, rid, Change(kind=ChangeKind.START))
    assert err.value.status == 405 and "cannot edit this experiment" in err.value.detail
    assert "Method Not Allowed" in err.value.detail and len(fake.calls("PATCH")) == 1


async def test_a_wrong_key_is_a_401_explained_and_never_shown(fake: FakeAmplitude) -> None:
    settings = AmplitudeSettings(base_url=fake.url, project_id="100")  # type: ignore[arg-type]
    wrong = AmplitudeProvider(settings, {"AMPLITUDE_API_KEY": "amp-wrong-key"})
    try:
        with pytest.raises(Unauthorized) as err:
            await wrong.list()
    finally:
        await wrong.aclose()
    assert err.value.status == 401 and "AMPLITUDE_API_KEY" in err.value.detail
    assert "Invalid management API key" in err.value.detail and "amp-wrong-key" not in err.value.detail
    assert len(fake.calls()) == 1 and "amp-wrong-key" not in repr(wrong) + repr(wrong._http._client.auth)


async def test_a_project_the_key_may_not_use_is_a_403_explained(fake: FakeAmplitude) -> None:
    other = adapter(fake, project_id="999")
    try:
        with pytest.raises(Unauthorized) as err:
            await other.create(AmplitudeDraft(name="Elsewhere"))
    finally:
        await other.aclose()
    assert err.value.status == 403 and "configured project_id 999" in err.value.detail and not fake.experiments


async def test_a_429_is_retried_with_backoff_and_applied_once(fake: FakeAmplitude) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    amp = adapter(fake)
    amp._http._sleep = sleep
    rid = fake.add_experiment("e")
    fake.inject(method="PATCH", status=429, body="Too Many Requests")
    try:
        await _run(amp, rid, Change(kind=ChangeKind.EXPOSURE, exposure=25))
    finally:
        await amp.aclose()
    assert len(fake.calls("PATCH")) == 2 and len(waits) == 1 and 0 < waits[0] <= 0.5
    assert [v["version"] for v in fake.history[rid]] == [1, 2] and fake.experiments[rid]["rolloutPercentage"] == 25


async def test_a_patch_whose_answer_was_lost_is_confirmed_by_reading(
    fake: FakeAmplitude, amp: AmplitudeProvider
) -> None:
    rid = fake.add_experiment("e")
    snap = await amp.get(rid)
    step = resolve((await amp.plan(snap, Change(kind=ChangeKind.START))).steps[0], [], CTX)
    fake.inject("timeout_after_write", method="PATCH")
    with pytest.raises(OutcomeUnknown):
        await amp.apply(step)
    writes = fake.writes
    assert await amp.confirm(step, snap) is not None and fake.writes == writes
    assert fake.experiments[rid]["startDate"] == "2026-01-01T00:00:00Z" and len(fake.calls("PATCH")) == 1


async def test_recent_versions_say_who_changed_what(fake: FakeAmplitude, amp: AmplitudeProvider) -> None:
    rid = fake.add_experiment("e")
    fake.edit(rid, by="carol@example.com", rolloutPercentage=25)
    await _run(amp, rid, Change(kind=ChangeKind.START))
    snap = await amp.get(rid)
    assert snap.version == "3" and snap.note is not None
    assert snap.note.startswith("Recent changes in Amplitude: v3 by api at 2026-01-05 09:03: turned on, start date")
    assert "v2 by carol@example.com at 2026-01-05 09:02: rollout 0%→25%" in snap.note
    assert "v1 by console@example.com" in snap.note and snap.note.endswith("created")


async def test_deployment_choices_are_the_projects_live_ones(fake: FakeAmplitude) -> None:
    for n in range(1, 1203):  # more than one page of 1000
        fake.add_deployment(str(n), f"dep-{n}", project="100" if n in (5, 1201) else "200")
    fake.add_deployment("9000", "gone", deleted=True)
    amp = adapter(fake, deployments=["5", "1201"])
    try:
        offered = await amp.choices("deployments", "", {})
        narrowed = await amp.choices("deployments", "1201", {})
    finally:
        await amp.aclose()
    assert [c.value for c in offered] == ["5,1201", "5", "1201"]
    assert offered[0].label == "dep-5 + dep-1201 (the default)" and "secretish" not in str(offered)
    assert [c.value for c in narrowed] == ["1201"] and len(fake.calls("GET", "deployments")) == 4
    assert amp.draft_defaults() == {"deployments": "5,1201"}
    assert AmplitudeDraft.model_validate({"name": "x", "deployments": "5,1201"}).deployments == ["5", "1201"]


def test_settings_and_start_up_problems() -> None:
    assert AmplitudeSettings().api_base == "https://experiment.amplitude.com"
    eu = AmplitudeSettings.model_validate({"base_url": "https://experiment.eu.amplitude.com", "project_id": 123})
    assert eu.api_base == "https://experiment.eu.amplitude.com" and eu.project_id == "123"
    problems = DRIVER.validate(AmplitudeSettings(), {"AMPLITUDE_API_KEY": "k"})
    assert len(problems) == 1 and "project_id" in problems[0]
    assert DRIVER.validate(eu, {"AMPLITUDE_API_KEY": "k"}) == [] and DRIVER.secrets == ("AMPLITUDE_API_KEY",)


async def test_verify_proves_the_key_and_the_project(fake: FakeAmplitude, amp: AmplitudeProvider) -> None:
    fake.add_deployment("5", "web-client")
    fake.add_experiment("e")
    assert await amp.verify() == "project 100: key accepted, 1 experiment(s) read, 1 deployment(s)"
    other = adapter(fake, project_id="999")
    try:
        with pytest.raises(Unauthorized, match="configured project_id 999"):
            await other.verify()
    finally:
        await other.aclose()


async def test_ship_raises_a_winner_at_zero_before_zeroing_the_others(
    fake: FakeAmplitude, amp: AmplitudeProvider
) -> None:
    rid = fake.add_experiment("e", enabled=True, startDate="2026-01-02", rolloutWeights={"control": 1, "treatment": 0})
    plan = await amp.plan(await amp.get(rid), Change(kind=ChangeKind.SHIP, variant="treatment"))
    assert [(s.path.rsplit("/", 1)[-1], s.body) for s in plan.steps[:2]] == [
        ("treatment", {"rolloutWeight": 1}),
        ("control", {"rolloutWeight": 0}),
    ]
    assert plan.steps[2].path == f"/api/1/experiments/{rid}" and plan.steps[2].body["decision"] == "rollout"  # type: ignore[index]
