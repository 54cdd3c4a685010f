"""The fake App Store Connect's state: apps, versions, tests, treatments, review submissions, with Apple's rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EXP, TREAT = "appStoreVersionExperiments", "appStoreVersionExperimentTreatments"
EDITABLE = {"PREPARE_FOR_SUBMISSION", "READY_FOR_REVIEW", "REJECTED"}
DRAFT_ERROR = "Cannot create new experiment because another experiment is in draft state"


class ApiError(Exception):
    """An answer in Apple's error format: `{"errors": [{id, status, code, title, detail}]}`."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail

    def body(self) -> dict[str, Any]:
        item = {"id": str(uuid.uuid4()), "status": str(self.status), "code": self.code, "title": self.title}
        return {"errors": [item | {"detail": self.detail}]}


def conflict(detail: str, code: str = "STATE_ERROR") -> ApiError:
    return ApiError(409, code, "The request cannot be fulfilled because of the state of another resource.", detail)


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(
        404,
        "NOT_FOUND",
        "The specified resource does not exist",
        f"There is no resource of type '{kind}' with id '{ident}'",
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def rel(kind: str, ident: str) -> dict[str, Any]:
    return {"data": {"type": kind, "id": ident}}


@dataclass
class Store:
    """Everything the fake keeps; each resource is a dict of its attributes plus `_` keys for its relations."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    treatments: dict[str, dict[str, Any]] = field(default_factory=dict)
    submissions: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    promotions: dict[str, dict[str, Any]] = field(default_factory=dict)
    auto_review: str | None = None
    """Set to APPROVED or REJECTED to have App Review decide at once on submit (else it waits for `review`)."""
    refuse_running_traffic: bool = False

    def add_app(self, app_id: str, name: str, bundle_id: str, shipped: tuple[str, ...] = ("IOS",)) -> None:
        self.apps[app_id] = {"name": name, "bundleId": bundle_id, "sku": bundle_id.upper(), "primaryLocale": "en-US"}
        for platform in shipped:
            self.add_version(app_id, platform, "1.0", "READY_FOR_DISTRIBUTION")

    def add_version(self, app_id: str, platform: str, version: str, state: str) -> str:
        ident = str(uuid.uuid4())
        self.versions[ident] = {"platform": platform, "versionString": version, "appVersionState": state}
        self.versions[ident] |= {"createdDate": _now(), "releaseType": "MANUAL", "_app": app_id}
        return ident

    def _get(self, table: dict[str, dict[str, Any]], kind: str, ident: str) -> dict[str, Any]:
        if ident not in table:
            raise not_found(kind, ident)
        return table[ident]

    # -- experiments and treatments --------------------------------------------------------------
    def create_experiment(self, attrs: dict[str, Any], app_id: str) -> str:
        self._get(self.apps, "apps", app_id)
        platform = attrs["platform"]
        shipped = any(
            v["_app"] == app_id and v["platform"] == platform and v["appVersionState"] == "READY_FOR_DISTRIBUTION"
            for v in self.versions.values()
        )
        if not shipped:
            raise conflict(
                "Product page optimization tests need an app version that is ready for distribution.",
                "STATE_ERROR.PPO_CREATE_ONLY_ALLOWED_WITH_APP_STORE_DISTRIBUTION",
            )
        if any(e["_app"] == app_id and e["state"] in EDITABLE - {"REJECTED"} for e in self.experiments.values()):
            raise conflict(DRAFT_ERROR)
        if not 1 <= attrs["trafficProportion"] <= 100:
            raise conflict("trafficProportion must be between 1 and 100.", "ENTITY_ERROR.ATTRIBUTE.INVALID")
        ident = str(uuid.uuid4())
        self.experiments[ident] = {
            "name": attrs["name"], "platform": platform, "trafficProportion": attrs["trafficProportion"],
            "state": "PREPARE_FOR_SUBMISSION", "reviewRequired": True, "startDate": None, "endDate": None,
            "_app": app_id,
        }  # fmt: skip
        return ident

    def create_treatment(self, attrs: dict[str, Any], experiment_id: str) -> str:
        exp = self._get(self.experiments, EXP, experiment_id)
        if exp["state"] not in EDITABLE:
            raise conflict(f"Treatments cannot be added to an experiment in state {exp['state']}.")
        if sum(t["_exp"] == experiment_id for t in self.treatments.values()) >= 3:
            raise conflict("An experiment can have at most 3 treatments.", "ENTITY_ERROR.RELATIONSHIP.INVALID")
        ident = str(uuid.uuid4())
        self.treatments[ident] = {"name": attrs["name"], "appIconName": attrs.get("appIconName"), "promotedDate": None}
        self.treatments[ident]["_exp"] = experiment_id
        return ident

    def update_experiment(self, ident: str, attrs: dict[str, Any]) -> None:
        exp = self._get(self.experiments, EXP, ident)
        running = bool(exp["startDate"]) and not exp["endDate"]
        if attrs.get("trafficProportion") is not None:
            if exp["state"] in ("WAITING_FOR_REVIEW", "IN_REVIEW", "STOPPED", "COMPLETED") or exp["endDate"]:
                raise conflict(f"The traffic proportion cannot be changed in state {exp['state']}.")
            if running and self.refuse_running_traffic:
                raise conflict("The traffic proportion of a running experiment cannot be changed.")
            exp["trafficProportion"] = attrs["trafficProportion"]
        if attrs.get("name") is not None:
            exp["name"] = attrs["name"]
        if attrs.get("started") is True:
            if exp["state"] not in ("APPROVED", "ACCEPTED") or exp["startDate"]:
                raise conflict(f"An experiment in state {exp['state']} cannot be started.")
            exp["startDate"] = _now()
        elif attrs.get("started") is False:
            if not running:
                raise conflict("Only a running experiment can be stopped.")
            exp |= {"state": "STOPPED", "endDate": _now()}

    def delete_experiment(self, ident: str) -> None:
        exp = self._get(self.experiments, EXP, ident)
        if exp["startDate"]:
            raise conflict("An experiment can be deleted only before it starts.")
        del self.experiments[ident]

    # -- review --------------------------------------------------------------------------------
    def create_submission(self, app_id: str, platform: str) -> str:
        self._get(self.apps, "apps", app_id)
        if any(
            s["_app"] == app_id and s["platform"] == platform and s["state"] == "READY_FOR_REVIEW"
            for s in self.submissions.values()
        ):
            raise conflict("A review submission for this app and platform is already being prepared.", "ENTITY_ERROR")
        ident = str(uuid.uuid4())
        self.submissions[ident] = {
            "platform": platform,
            "state": "READY_FOR_REVIEW",
            "submittedDate": None,
            "_app": app_id,
        }
        return ident

    def add_item(self, submission_id: str, experiment_id: str) -> str:
        sub = self._get(self.submissions, "reviewSubmissions", submission_id)
        exp = self._get(self.experiments, EXP, experiment_id)
        if sub["state"] != "READY_FOR_REVIEW" or exp["state"] not in ("PREPARE_FOR_SUBMISSION", "REJECTED"):
            raise conflict(f"The experiment in state {exp['state']} cannot be added to this submission.")
        if not any(t["_exp"] == experiment_id for t in self.treatments.values()):
            raise conflict("An experiment needs at least one treatment to be reviewed.")
        exp["state"] = "READY_FOR_REVIEW"
        ident = str(uuid.uuid4())
        self.items[ident] = {"state": "READY_FOR_REVIEW", "_sub": submission_id, "_exp": experiment_id}
        return ident

    def update_submission(self, ident: str, attrs: dict[str, Any]) -> None:
        sub = self._get(self.submissions, "reviewSubmissions", ident)
        if attrs.get("submitted") is True:
            mine = [i for i in self.items.values() if i["_sub"] == ident]
            if sub["state"] != "READY_FOR_REVIEW" or not mine:
                raise conflict("Only a review submission with items that is not yet submitted can be submitted.")
            sub |= {"state": "WAITING_FOR_REVIEW", "submittedDate": _now()}
            for item in mine:
                self.experiments[item["_exp"]]["state"] = "WAITING_FOR_REVIEW"
                if self.auto_review:
                    self.review(item["_exp"], self.auto_review)

    def review(self, experiment_id: str, outcome: str) -> None:
        """App Review's decision (IN_REVIEW, APPROVED, ACCEPTED or REJECTED) on a submitted test."""
        self.experiments[experiment_id]["state"] = outcome
        for item in self.items.values():
            if item["_exp"] == experiment_id and outcome != "IN_REVIEW":
                item["state"] = outcome if outcome != "ACCEPTED" else "APPROVED"
                self.submissions[item["_sub"]]["state"] = "COMPLETE"

    # -- shipping ------------------------------------------------------------------------------
    def create_version(self, attrs: dict[str, Any], app_id: str) -> str:
        self._get(self.apps, "apps", app_id)
        mine = [v for v in self.versions.values() if v["_app"] == app_id and v["platform"] == attrs["platform"]]
        if any(v["appVersionState"] == "PREPARE_FOR_SUBMISSION" for v in mine):
            raise conflict("You cannot create a new version of the App in the current state.", "ENTITY_ERROR")
        if any(v["versionString"] == attrs["versionString"] for v in mine):
            raise conflict(
                f"The version number {attrs['versionString']} has been previously used.",
                "ENTITY_ERROR.ATTRIBUTE.INVALID.DUPLICATE",
            )
        return self.add_version(app_id, attrs["platform"], attrs["versionString"], "PREPARE_FOR_SUBMISSION")

    def promote(self, version_id: str, treatment_id: str) -> str:
        version = self._get(self.versions, "appStoreVersions", version_id)
        treatment = self._get(self.treatments, TREAT, treatment_id)
        exp = self.experiments[treatment["_exp"]]
        if not exp["startDate"]:
            raise conflict("A treatment can be applied only after its experiment has started.")
        if version["appVersionState"] != "PREPARE_FOR_SUBMISSION":
            raise conflict("A treatment can be applied only to a version that is being prepared for submission.")
        treatment["promotedDate"] = _now()
        if not exp["endDate"]:
            exp |= {"state": "STOPPED", "endDate": _now()}
        ident = str(uuid.uuid4())
        self.promotions[ident] = {"_version": version_id, "_treatment": treatment_id}
        return ident
