"""Finding out, by reading App Store Connect, whether a write whose answer was lost was carried out."""

from __future__ import annotations

from typing import Any

from providers import appstore_mapping as m
from providers.errors import NotFound
from providers.http import HttpClient
from providers.models import Snapshot
from providers.paging import pages_links_next
from providers.plan import Answer, Step


def _attrs(resource: dict[str, Any]) -> dict[str, Any]:
    found = resource.get("attributes")
    return found if isinstance(found, dict) else {}


def _related(resource: dict[str, Any], name: str) -> str | None:
    rel = (resource.get("relationships") or {}).get(name) or {}
    data = rel.get("data") if isinstance(rel, dict) else None
    return str(data["id"]) if isinstance(data, dict) and data.get("id") else None


def _body_data(step: Step) -> dict[str, Any]:
    body = step.body if isinstance(step.body, dict) else {}
    data = body.get("data")
    return data if isinstance(data, dict) else {}


class Confirmer:
    """Reads that settle a doubt: no write is ever sent from here."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    async def experiment_named(self, app_id: str, name: str, platform: str) -> str | None:
        """The id of the app's draft test with this name (a create whose answer was lost), or None."""
        path = f"/v1/apps/{app_id}/appStoreVersionExperimentsV2"
        params = {"filter[state]": "PREPARE_FOR_SUBMISSION", "limit": 200}
        async for item in pages_links_next(self.client, path, params):
            attrs = _attrs(item)
            if attrs.get("name") == name and attrs.get("platform") in (None, platform):
                return str(item["id"])
        return None

    async def treatment_named(self, experiment_id: str, name: str) -> bool:
        path = f"{m.experiment_path(experiment_id)}/{m.TREATMENTS}"
        async for item in pages_links_next(self.client, path, {"limit": 200}):
            if _attrs(item).get("name") == name:
                return True
        return False

    async def confirm(self, step: Step, snap: Snapshot) -> Answer | None:
        """The answer the step would have had, rebuilt from what App Store Connect shows now; None if not done."""
        data = _body_data(step)
        if step.path.startswith(f"/v2/{m.EXPERIMENTS}/"):
            return await self._experiment(step, snap, data)
        if step.method == "POST" and step.path == "/v1/reviewSubmissions":
            params = {"filter[app]": snap.guard.get("app"), "filter[state]": "READY_FOR_REVIEW", "limit": 200}
            params["filter[platform]"] = snap.guard.get("platform")
            async for sub in pages_links_next(self.client, "/v1/reviewSubmissions", params):
                return Answer(status=201, data={"data": sub})
            return None
        if step.method == "POST" and step.path == "/v1/reviewSubmissionItems":
            sub = _related(data, "reviewSubmission")
            path, params = f"/v1/reviewSubmissions/{sub}/items", {"include": "appStoreVersionExperimentV2"}
            async for item in pages_links_next(self.client, path, params):
                if _related(item, "appStoreVersionExperimentV2") == snap.remote_id:
                    return Answer(status=201, data={"data": item})
            return None
        if step.method == "PATCH" and step.path.startswith("/v1/reviewSubmissions/"):
            doc = await self.client.get_json(step.path)
            sent = _attrs(doc["data"]).get("state") not in (None, "READY_FOR_REVIEW")
            return Answer(status=200, data=doc) if sent else None
        if step.method == "POST" and step.path == "/v1/appStoreVersions":
            attrs = _attrs(data)
            path = f"/v1/apps/{snap.guard.get('app')}/appStoreVersions"
            params = {"filter[versionString]": attrs.get("versionString"), "filter[platform]": attrs.get("platform")}
            async for version in pages_links_next(self.client, path, params):
                return Answer(status=201, data={"data": version})
            return None
        if step.method == "POST" and step.path == "/v1/appStoreVersionPromotions":
            treatment = _related(data, "appStoreVersionExperimentTreatment")
            doc = await self.client.get_json(f"/v1/{m.TREATMENTS}/{treatment}")
            return Answer(status=201, data=doc) if _attrs(doc["data"]).get("promotedDate") else None
        return None

    async def _experiment(self, step: Step, snap: Snapshot, data: dict[str, Any]) -> Answer | None:
        """A PATCH (started, trafficProportion) or DELETE of the test, judged by the test as it is now."""
        try:
            doc = await self.client.get_json(step.path)
        except NotFound:
            return Answer(status=204) if step.method == "DELETE" else None
        if step.method == "DELETE":
            return None
        attrs, wanted = _attrs(doc["data"]), _attrs(data)
        if "trafficProportion" in wanted and attrs.get("trafficProportion") != wanted["trafficProportion"]:
            return None
        if wanted.get("started") is True and not attrs.get("startDate"):
            return None
        if wanted.get("started") is False and not (attrs.get("endDate") or attrs.get("state") == "STOPPED"):
            return None
        return Answer(status=200, data=doc)
