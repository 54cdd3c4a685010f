"""App Store Connect's pure mapping: answers → Snapshot, changes → steps and JSON:API bodies, what a test allows."""

from __future__ import annotations

import re
from typing import Any

from providers.appstore_forms import AppStoreDraft, slug
from providers.base import Action, Capabilities, even_weights
from providers.models import ChangeKind, Scalar, Snapshot, Status, Variant
from providers.plan import Step

EXPERIMENTS = "appStoreVersionExperiments"
TREATMENTS = "appStoreVersionExperimentTreatments"
CONTROL = "original"
REJECTED_NOTE = "rejected by App Review"
SUBMIT_REVIEW = Action(key="submit_review", label="Submit for App Review")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CONSOLE = "https://appstoreconnect.apple.com/apps/{app}/distribution"
_IN_REVIEW = {"READY_FOR_REVIEW", "WAITING_FOR_REVIEW", "IN_REVIEW"}
_APPROVED = {"APPROVED", "ACCEPTED"}
_FIXED = {"PREPARE_FOR_SUBMISSION": Status.DRAFT, "REJECTED": Status.DRAFT, "STOPPED": Status.STOPPED}
_FIXED |= {"COMPLETED": Status.COMPLETED} | dict.fromkeys(_IN_REVIEW, Status.IN_REVIEW)


def experiment_path(remote_id: str) -> str:
    return f"/v2/{EXPERIMENTS}/{remote_id}"


def status_of(attributes: dict[str, Any]) -> Status:
    """The normalized status: approved tests are ready until started, running until they have an end date."""
    state = str(attributes.get("state") or "")
    if state in _FIXED:
        return _FIXED[state]
    if state in _APPROVED:
        if not attributes.get("startDate"):
            return Status.READY
        return Status.STOPPED if attributes.get("endDate") else Status.RUNNING
    return Status.DRAFT  # a state this version does not know: offer nothing that moves traffic


def _ref(value: Any) -> str | None:
    data = value.get("data") if isinstance(value, dict) else None
    return str(data["id"]) if isinstance(data, dict) and data.get("id") else None


def snapshot(doc: dict[str, Any]) -> Snapshot:
    """A `GET /v2/appStoreVersionExperiments/{id}?include=app,appStoreVersionExperimentTreatments` answer."""
    data = doc["data"]
    attrs: dict[str, Any] = data.get("attributes") or {}
    rels: dict[str, Any] = data.get("relationships") or {}
    listed = (rels.get(TREATMENTS) or {}).get("data")
    ids = [str(t["id"]) for t in listed] if isinstance(listed, list) else None
    found = [i for i in doc.get("included") or [] if isinstance(i, dict) and i.get("type") == TREATMENTS]
    treatments = [t for t in found if ids is None or str(t["id"]) in ids]
    treatments.sort(key=lambda t: ids.index(str(t["id"])) if ids is not None else 0)
    weights = even_weights(len(treatments) + 1)
    variants = [Variant(key=CONTROL, name="Original product page", weight=weights[0], is_control=True)]
    promoted = ""
    for i, t in enumerate(treatments, start=1):
        t_attrs = t.get("attributes") or {}
        name = str(t_attrs.get("name") or t["id"])
        variants.append(Variant(key=slug(name), name=name, weight=weights[i], remote_id=str(t["id"])))
        if t_attrs.get("promotedDate"):
            promoted = slug(name)
    app = _ref(rels.get("app")) or ""
    guard: dict[str, Scalar] = {
        "state": attrs.get("state"),
        "started": bool(attrs.get("startDate")),
        "ended": bool(attrs.get("endDate")),
        "treatments": ",".join(str(t["id"]) for t in treatments),
        "promoted": promoted,
        "app": app,
        "platform": attrs.get("platform"),
    }
    return Snapshot(
        remote_id=str(data["id"]),
        name=str(attrs.get("name") or data["id"]),
        status=status_of(attrs),
        exposure=attrs.get("trafficProportion"),
        variants=tuple(variants),
        url=CONSOLE.format(app=app) if app else None,
        guard=guard,
        note=REJECTED_NOTE if attrs.get("state") == "REJECTED" else None,
    )


def capabilities(snap: Snapshot, allow_stop: bool) -> Capabilities:
    """What a test allows now, from its whole snapshot (state, started, promoted treatment)."""
    changes: set[ChangeKind] = set()
    actions: tuple[Action, ...] = ()
    status, promoted = snap.status, bool(snap.guard.get("promoted"))
    if status is Status.DRAFT:
        changes |= {ChangeKind.EXPOSURE, ChangeKind.ARCHIVE}
        actions = (SUBMIT_REVIEW,) if len(snap.variants) > 1 else ()
    elif status is Status.READY:
        changes |= {ChangeKind.START, ChangeKind.EXPOSURE, ChangeKind.ARCHIVE}
    elif status is Status.RUNNING:
        changes |= {ChangeKind.EXPOSURE} | ({ChangeKind.STOP} if allow_stop else set())
    if snap.guard.get("started") and not promoted and status is not Status.ARCHIVED:
        changes.add(ChangeKind.SHIP)
    return Capabilities(changes=frozenset(changes), actions=actions)


_NEVER = {
    ChangeKind.PAUSE: "App Store Connect has no pause: a product page test runs until it is stopped or ends",
    ChangeKind.RESUME: "App Store Connect has no pause or resume: a stopped test cannot be restarted",
    ChangeKind.WEIGHTS: "App Store Connect splits a test's traffic evenly between its treatments; "
    "only the traffic proportion can change (ramp)",
    ChangeKind.RESTORE: "a deleted App Store Connect test cannot be restored",
}


def refusal(snap: Snapshot, kind: ChangeKind, allow_stop: bool) -> str | None:
    """Why App Store Connect cannot take this kind of change now, in words (None: it may)."""
    if kind in _NEVER:
        return _NEVER[kind]
    if kind is ChangeKind.START and snap.status in (Status.DRAFT, Status.IN_REVIEW):
        return (
            f"a test starts only once App Review has approved it (it is {snap.status.value}"
            f"{', ' + snap.note if snap.note else ''}); submit it for App Review from its card first"
        )
    if kind is ChangeKind.STOP and snap.status is Status.RUNNING and not allow_stop:
        return (
            "Apple does not document stopping a test through the API, so expbot does not offer it; stop it in "
            "App Store Connect, or set allow_stop = true under [providers.appstore] to try PATCH started: false"
        )
    if kind is ChangeKind.EXPOSURE and snap.status is Status.IN_REVIEW:
        return "the traffic proportion cannot change while the test is in App Review"
    if kind is ChangeKind.SHIP and not snap.guard.get("started"):
        return "a treatment can be applied (promoted) only once the test has started"
    if kind is ChangeKind.SHIP and snap.guard.get("promoted"):
        return f"treatment {snap.guard['promoted']} was already applied"
    if kind is ChangeKind.ARCHIVE and snap.guard.get("started"):
        return "App Store Connect deletes a test only before it starts"
    return None


# -- JSON:API bodies (each validated against the 4.4.1 spec in the tests) ------------------------
def _rel(kind: str, ident: str) -> dict[str, Any]:
    return {"data": {"type": kind, "id": ident}}


def create_body(draft: AppStoreDraft) -> dict[str, Any]:
    attributes = {"name": draft.name, "platform": draft.platform, "trafficProportion": draft.traffic_proportion}
    relationships = {"app": _rel("apps", draft.app_id)}
    return {"data": {"type": EXPERIMENTS, "attributes": attributes, "relationships": relationships}}


def treatment_body(experiment_id: str, name: str) -> dict[str, Any]:
    relationships = {"appStoreVersionExperimentV2": _rel(EXPERIMENTS, experiment_id)}
    return {"data": {"type": TREATMENTS, "attributes": {"name": name}, "relationships": relationships}}


def update_step(snap: Snapshot, attributes: dict[str, Any], label: str, repeatable: bool) -> Step:
    body = {"data": {"type": EXPERIMENTS, "id": snap.remote_id, "attributes": attributes}}
    return Step(method="PATCH", path=experiment_path(snap.remote_id), body=body, repeatable=repeatable, label=label)


def submit_steps(snap: Snapshot) -> list[Step]:
    """Review submission, its item (this test), then submit: later steps use the submission's id."""
    app, platform, sub = str(snap.guard.get("app")), snap.guard.get("platform"), "{{steps.0.data.id}}"
    create = {"type": "reviewSubmissions", "attributes": {"platform": platform}}
    create["relationships"] = {"app": _rel("apps", app)}
    item_rels = {"reviewSubmission": _rel("reviewSubmissions", sub)}
    item_rels["appStoreVersionExperimentV2"] = _rel(EXPERIMENTS, snap.remote_id)
    submitted = {"type": "reviewSubmissions", "id": sub, "attributes": {"submitted": True}}
    return [
        Step(method="POST", path="/v1/reviewSubmissions", body={"data": create}, label="create a review submission"),
        Step(
            method="POST",
            path="/v1/reviewSubmissionItems",
            body={"data": {"type": "reviewSubmissionItems", "relationships": item_rels}},
            label="add this test to it",
        ),
        Step(
            method="PATCH",
            path=f"/v1/reviewSubmissions/{sub}",
            body={"data": submitted},
            label="submit it for App Review",
        ),
    ]


def next_version(known: list[str]) -> str:
    """The next version string after the highest known one (`1.2` → `1.3`, none → `1.0`)."""
    parsed = [[int(p) for p in v.split(".")] for v in known if v and all(p.isdigit() for p in v.split("."))]
    if not parsed:
        return "1.0"
    top = max(parsed)
    return ".".join(map(str, [*top[:-1], top[-1] + 1]))


def version_step(snap: Snapshot, version_string: str) -> Step:
    attributes = {"platform": snap.guard.get("platform"), "versionString": version_string, "releaseType": "MANUAL"}
    app = _rel("apps", str(snap.guard.get("app")))
    return Step(
        method="POST",
        path="/v1/appStoreVersions",
        body={"data": {"type": "appStoreVersions", "attributes": attributes, "relationships": {"app": app}}},
        label=f"create App Store version {version_string} to carry the winner",
    )


def promotion_step(version_id: str, treatment: Variant) -> Step:
    relationships = {
        "appStoreVersion": _rel("appStoreVersions", version_id),
        "appStoreVersionExperimentTreatment": _rel(TREATMENTS, str(treatment.remote_id)),
    }
    return Step(
        method="POST",
        path="/v1/appStoreVersionPromotions",
        body={"data": {"type": "appStoreVersionPromotions", "relationships": relationships}},
        label=f"apply treatment {treatment.name} to the product page",
    )
