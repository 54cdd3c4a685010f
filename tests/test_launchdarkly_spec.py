"""The LaunchDarkly spec copy the fake validates with is the shared reference's, and the fake answers in its shapes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from providers.launchdarkly import LaunchDarklyProvider
from providers.models import Change, ChangeKind
from providers.plan import Answer
from tests.contract.harness import send_plan
from tests.contract.harness_launchdarkly import provider_for
from tests.fake_launchdarkly import SPEC, FakeLaunchDarkly, spec_errors
from tests.test_launchdarkly import CTX, DRAFT

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "specs" / "launchdarkly-openapi.json"


def test_the_copy_is_the_official_specs_schemas() -> None:
    """Each copied component schema is the reference spec's, where the reference is present; and the copy holds
    every schema the fake validates requests with."""
    copied = json.loads(SPEC.read_text())["components"]["schemas"]
    for name in ("ExperimentPost", "IterationInput", "ExperimentPatchInput", "flagSempatch", "PatchWithComment"):
        assert name in copied
    if SHARED.is_file():
        official = json.loads(SHARED.read_text())["components"]["schemas"]
        assert {name: official[name] for name in copied} == copied


def test_the_validator_refuses_what_the_spec_refuses() -> None:
    body = {"name": "x", "key": "x", "iteration": {"hypothesis": "h", "metrics": [], "treatments": [], "flags": {}}}
    assert spec_errors("ExperimentPost", body) == []
    body["iteration"]["treatments"] = [{"name": "a", "baseline": True, "allocationPercent": 10, "parameters": []}]
    assert any("allocationPercent" in e for e in spec_errors("ExperimentPost", body))
    assert spec_errors("ExperimentPatchInput", {"comment": "c"}) != []


async def test_the_fake_answers_in_the_specs_shapes() -> None:
    fake = FakeLaunchDarkly().start()
    p: LaunchDarklyProvider = provider_for(fake)
    try:
        snap = (await p.create(DRAFT)).snapshot
        answers: list[Answer] = []
        for change in (Change(kind=ChangeKind.START), Change(kind=ChangeKind.EXPOSURE, exposure=30)):
            answers = await send_plan(p, await p.plan(await p.get(snap.remote_id), change), CTX)
        assert spec_errors("IterationRep", answers[0].data) == []
        experiments = "/api/v2/projects/web/environments/production/experiments"
        beta = {"Authorization": fake.token, "LD-API-Version": "beta"}
        shapes = {
            f"{experiments}?expand=draftIteration,previousIterations,treatments": "ExperimentCollectionRep",
            f"{experiments}/checkout-button?expand=draftIteration,previousIterations,treatments": "Experiment",
            "/api/v2/flags/web/checkout-button?env=production": "FeatureFlag",
            "/api/v2/flags/web?summary=true": "FeatureFlags",
            "/api/v2/metrics/web": "MetricCollectionRep",
            "/api/v2/projects/web/context-kinds": "ContextKindsCollectionRep",
            f"{experiments}/nope": "NotFoundErrorRep",
        }
        async with httpx.AsyncClient(base_url=fake.url, headers=beta) as client:
            for path, schema in shapes.items():
                body = (await client.get(path)).json()
                assert spec_errors(schema, body) == [], (path, spec_errors(schema, body)[:3])
            refused = await client.patch(f"{experiments}/checkout-button", json={"instructions": []})
            assert refused.status_code == 400 and spec_errors("InvalidRequestErrorRep", refused.json()) == []
    finally:
        await p.aclose()
        fake.stop()
