"""The fake App Store Connect's routes: spec-shaped JSON:API documents over its state, paged by `links.next`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tests.fake_appstore_store import EXP, TREAT, ApiError, Store, rel

Handler = Callable[..., tuple[int, Any]]


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _wanted(query: dict[str, str], key: str = "include") -> set[str]:
    return set(filter(None, query.get(key, "").split(",")))


def _filtered(query: dict[str, str], name: str, value: Any) -> bool:
    allowed = _wanted(query, f"filter[{name}]")
    return not allowed or str(value) in allowed


def _matches(query: dict[str, str], record: dict[str, Any], *names: str) -> bool:
    """Whether a record passes every `filter[name]` of the query (`app` is the record's `_app`)."""
    return all(_filtered(query, n, record["_app"] if n == "app" else record[n]) for n in names)


class Routes:
    """Mixed into the fake server: `state` is its `Store`, `url` its base URL, `page_size` its largest page."""

    state: Store
    page_size: int
    url: str

    def _table(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/v1/apps", self._apps),
            ("GET", "/v1/apps/{id}/appStoreVersionExperimentsV2", self._app_experiments),
            ("GET", "/v1/apps/{id}/appStoreVersions", self._app_versions),
            ("POST", "/v2/appStoreVersionExperiments", self._create_experiment),
            ("GET", "/v2/appStoreVersionExperiments/{id}", self._get_experiment),
            ("PATCH", "/v2/appStoreVersionExperiments/{id}", self._patch_experiment),
            ("DELETE", "/v2/appStoreVersionExperiments/{id}", self._delete_experiment),
            ("GET", "/v2/appStoreVersionExperiments/{id}/appStoreVersionExperimentTreatments", self._treatments_of),
            ("POST", "/v1/appStoreVersionExperimentTreatments", self._create_treatment),
            ("GET", "/v1/appStoreVersionExperimentTreatments/{id}", self._get_treatment),
            ("POST", "/v1/reviewSubmissions", self._create_submission),
            ("GET", "/v1/reviewSubmissions", self._submissions),
            ("GET", "/v1/reviewSubmissions/{id}", self._get_submission),
            ("PATCH", "/v1/reviewSubmissions/{id}", self._patch_submission),
            ("GET", "/v1/reviewSubmissions/{id}/items", self._items_of),
            ("POST", "/v1/reviewSubmissionItems", self._create_item),
            ("POST", "/v1/appStoreVersions", self._create_version),
            ("POST", "/v1/appStoreVersionPromotions", self._promote),
        ]

    # -- documents -------------------------------------------------------------------------------
    def _doc(self, data: dict[str, Any], path: str, included: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"data": data, "links": {"self": self.url + path}}
        if included:
            doc["included"] = included
        return doc

    def _page(self, query: dict[str, str], path: str, items: list[dict[str, Any]]) -> tuple[int, Any]:
        limit = min(int(query.get("limit", "50")), self.page_size)
        start = int(query.get("cursor", "0"))
        links = {"self": self.url + path}
        if start + limit < len(items):
            links["next"] = f"{self.url}{path}?{urlencode({**query, 'cursor': str(start + limit)})}"
        meta = {"paging": {"total": len(items), "limit": limit}}
        return 200, {"data": items[start : start + limit], "links": links, "meta": meta}

    def _experiment(self, ident: str, include: set[str]) -> dict[str, Any]:
        exp = self.state.experiments[ident]
        self_url = f"{self.url}/v2/{EXP}/{ident}"
        treatments: dict[str, Any] = {
            "links": {"self": f"{self_url}/relationships/{TREAT}", "related": f"{self_url}/{TREAT}"}
        }
        if TREAT in include:
            treatments["data"] = [
                {"type": TREAT, "id": t} for t, r in self.state.treatments.items() if r["_exp"] == ident
            ]
        rels: dict[str, Any] = {TREAT: treatments}
        if "app" in include:
            rels["app"] = rel("apps", exp["_app"])
        return {
            "type": EXP,
            "id": ident,
            "attributes": _public(exp),
            "relationships": rels,
            "links": {"self": self_url},
        }

    def _treatment(self, ident: str) -> dict[str, Any]:
        record = self.state.treatments[ident]
        attrs = {k: v for k, v in _public(record).items() if v is not None}
        rels = {"appStoreVersionExperimentV2": rel(EXP, record["_exp"])}
        return {"type": TREAT, "id": ident, "attributes": attrs, "relationships": rels}

    def _app(self, ident: str) -> dict[str, Any]:
        return {"type": "apps", "id": ident, "attributes": self.state.apps[ident]}

    def _version(self, ident: str) -> dict[str, Any]:
        record = self.state.versions[ident]
        return {
            "type": "appStoreVersions",
            "id": ident,
            "attributes": _public(record),
            "relationships": {"app": rel("apps", record["_app"])},
        }

    def _submission(self, ident: str) -> dict[str, Any]:
        record = self.state.submissions[ident]
        return {
            "type": "reviewSubmissions",
            "id": ident,
            "attributes": _public(record),
            "relationships": {"app": rel("apps", record["_app"])},
        }

    def _item(self, ident: str, include: set[str]) -> dict[str, Any]:
        record = self.state.items[ident]
        rels = (
            {"appStoreVersionExperimentV2": rel(EXP, record["_exp"])}
            if "appStoreVersionExperimentV2" in include
            else {}
        )
        return {"type": "reviewSubmissionItems", "id": ident, "attributes": _public(record), "relationships": rels}

    def _find(self, table: dict[str, Any], kind: str, ident: str) -> None:
        if ident not in table:
            raise ApiError(
                404,
                "NOT_FOUND",
                "The specified resource does not exist",
                f"There is no resource of type '{kind}' with id '{ident}'",
            )

    # -- reads -----------------------------------------------------------------------------------
    def _apps(self, query: dict[str, str]) -> tuple[int, Any]:
        apps = [self._app(a) for a in sorted(self.state.apps, key=lambda a: self.state.apps[a]["name"])]
        apps = [
            a
            for a in apps
            if _filtered(query, "id", a["id"]) and _filtered(query, "bundleId", a["attributes"]["bundleId"])
        ]
        return self._page(query, "/v1/apps", apps)

    def _app_experiments(self, query: dict[str, str], app: str) -> tuple[int, Any]:
        self._find(self.state.apps, "apps", app)
        found = [
            self._experiment(e, set())
            for e, r in self.state.experiments.items()
            if r["_app"] == app and _filtered(query, "state", r["state"])
        ]
        return self._page(query, f"/v1/apps/{app}/appStoreVersionExperimentsV2", found)

    def _app_versions(self, query: dict[str, str], app: str) -> tuple[int, Any]:
        self._find(self.state.apps, "apps", app)
        found = [
            self._version(v) for v, r in self.state.versions.items()
            if r["_app"] == app and _matches(query, r, "platform", "versionString", "appVersionState")
        ]  # fmt: skip
        return self._page(query, f"/v1/apps/{app}/appStoreVersions", found)

    def _get_experiment(self, query: dict[str, str], ident: str) -> tuple[int, Any]:
        self._find(self.state.experiments, EXP, ident)
        include = _wanted(query)
        doc = self._experiment(ident, include)
        included = [self._treatment(t["id"]) for t in doc["relationships"][TREAT].get("data", [])]
        if "app" in include:
            included.append(self._app(self.state.experiments[ident]["_app"]))
        return 200, self._doc(doc, f"/v2/{EXP}/{ident}", included)

    def _treatments_of(self, query: dict[str, str], ident: str) -> tuple[int, Any]:
        self._find(self.state.experiments, EXP, ident)
        found = [self._treatment(t) for t, r in self.state.treatments.items() if r["_exp"] == ident]
        return self._page(query, f"/v2/{EXP}/{ident}/{TREAT}", found)

    def _get_treatment(self, query: dict[str, str], ident: str) -> tuple[int, Any]:
        self._find(self.state.treatments, TREAT, ident)
        return 200, self._doc(self._treatment(ident), f"/v1/{TREAT}/{ident}")

    def _submissions(self, query: dict[str, str]) -> tuple[int, Any]:
        found = [
            self._submission(s) for s, r in self.state.submissions.items()
            if _matches(query, r, "app", "state", "platform")
        ]  # fmt: skip
        return self._page(query, "/v1/reviewSubmissions", found)

    def _get_submission(self, query: dict[str, str], ident: str) -> tuple[int, Any]:
        self._find(self.state.submissions, "reviewSubmissions", ident)
        return 200, self._doc(self._submission(ident), f"/v1/reviewSubmissions/{ident}")

    def _items_of(self, query: dict[str, str], ident: str) -> tuple[int, Any]:
        self._find(self.state.submissions, "reviewSubmissions", ident)
        found = [self._item(i, _wanted(query)) for i, r in self.state.items.items() if r["_sub"] == ident]
        return self._page(query, f"/v1/reviewSubmissions/{ident}/items", found)

    # -- writes ----------------------------------------------------------------------------------
    def _create_experiment(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        data = body["data"]
        ident = self.state.create_experiment(data["attributes"], data["relationships"]["app"]["data"]["id"])
        return 201, self._doc(self._experiment(ident, set()), f"/v2/{EXP}")

    def _patch_experiment(self, query: dict[str, str], ident: str, body: dict[str, Any]) -> tuple[int, Any]:
        if body["data"]["id"] != ident:
            raise ApiError(
                409,
                "ENTITY_ERROR.ID.INVALID",
                "The provided entity id is invalid",
                "The id in the body does not match the path",
            )
        self.state.update_experiment(ident, body["data"].get("attributes") or {})
        return 200, self._doc(self._experiment(ident, set()), f"/v2/{EXP}/{ident}")

    def _delete_experiment(self, query: dict[str, str], ident: str) -> tuple[int, Any]:
        self.state.delete_experiment(ident)
        return 204, None

    def _create_treatment(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        data = body["data"]
        parent = (data.get("relationships") or {}).get("appStoreVersionExperimentV2")
        if parent is None:
            raise ApiError(
                409,
                "ENTITY_ERROR.RELATIONSHIP.REQUIRED",
                "A relationship is required",
                "appStoreVersionExperimentV2 is required",
            )
        ident = self.state.create_treatment(data["attributes"], parent["data"]["id"])
        return 201, self._doc(self._treatment(ident), f"/v1/{TREAT}")

    def _create_submission(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        data = body["data"]
        ident = self.state.create_submission(data["relationships"]["app"]["data"]["id"], data["attributes"]["platform"])
        return 201, self._doc(self._submission(ident), "/v1/reviewSubmissions")

    def _patch_submission(self, query: dict[str, str], ident: str, body: dict[str, Any]) -> tuple[int, Any]:
        self._find(self.state.submissions, "reviewSubmissions", ident)
        self.state.update_submission(ident, body["data"].get("attributes") or {})
        return 200, self._doc(self._submission(ident), f"/v1/reviewSubmissions/{ident}")

    def _create_item(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        rels = body["data"]["relationships"]
        experiment = rels.get("appStoreVersionExperimentV2")
        if experiment is None:
            raise ApiError(
                409,
                "ENTITY_ERROR.RELATIONSHIP.REQUIRED",
                "A relationship is required",
                "Only experiments are reviewed here",
            )
        ident = self.state.add_item(rels["reviewSubmission"]["data"]["id"], experiment["data"]["id"])
        return 201, self._doc(self._item(ident, {"appStoreVersionExperimentV2"}), "/v1/reviewSubmissionItems")

    def _create_version(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        data = body["data"]
        ident = self.state.create_version(data["attributes"], data["relationships"]["app"]["data"]["id"])
        return 201, self._doc(self._version(ident), "/v1/appStoreVersions")

    def _promote(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        rels = body["data"]["relationships"]
        ident = self.state.promote(
            rels["appStoreVersion"]["data"]["id"], rels["appStoreVersionExperimentTreatment"]["data"]["id"]
        )
        return 201, self._doc({"type": "appStoreVersionPromotions", "id": ident}, "/v1/appStoreVersionPromotions")
