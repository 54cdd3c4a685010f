"""The App Store Connect adapter: product page optimization tests (appStoreVersionExperiments v2) over HTTP."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from providers import appstore_mapping as m
from providers.appstore_confirm import Confirmer
from providers.appstore_forms import (
    DEFAULT_BASE_URL,
    ISSUER,
    KEY,
    KEY_ID,
    KEY_PATH,
    AppStoreDraft,
    AppStoreSettings,
    private_key,
    validate,
)
from providers.auth import AppStoreJwt
from providers.base import Capabilities, ChangeOptions, Choice, Created, ProviderBase
from providers.errors import NotFound, OutcomeUnknown, ProviderError
from providers.http import DEFAULT_TIMEOUT, HttpClient, Sleep, decode, parse_apple_error
from providers.models import Change, ChangeKind, Snapshot, Status
from providers.paging import pages_links_next
from providers.plan import Answer, Plan, Step
from providers.registry import Deps, Driver

_GET_ONE: dict[str, Any] = {"include": "app,appStoreVersionExperimentTreatments", "fields[apps]": "name,bundleId"}
_GET_ONE |= {"limit[appStoreVersionExperimentTreatments]": 50}
_NOTES = {
    ChangeKind.STOP: "Apple does not document stopping a test through the API (only name, traffic proportion and "
    "the started state are documented); if App Store Connect refuses, its words are shown and the test keeps "
    "running: stop it in App Store Connect then.",
    ChangeKind.ARCHIVE: "App Store Connect has no archive: this deletes the test (possible only before it starts).",
    ChangeKind.START: "Once started, a test runs until it is stopped or 90 days pass; it cannot be restarted.",
}


class AppStoreProvider(ProviderBase):
    """Product page optimization tests of one App Store Connect team (an API key with the App Manager role)."""

    name: ClassVar[str] = "appstore"
    label: ClassVar[str] = "App Store Connect"
    draft_model: ClassVar[type[BaseModel]] = AppStoreDraft

    def __init__(
        self,
        settings: AppStoreSettings,
        auth: httpx.Auth,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        base = str(settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.client = HttpClient(
            self.name,
            base,
            auth=auth,
            headers={"Content-Type": "application/json"},
            parse_error=parse_apple_error,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
        )
        self.confirmer = Confirmer(self.client)
        self._deleted: dict[str, Snapshot] = {}

    # -- reading -------------------------------------------------------------------------------
    async def get(self, remote_id: str) -> Snapshot:
        try:
            doc = await self.client.get_json(m.experiment_path(remote_id), params=_GET_ONE)
        except NotFound:
            if remote_id in self._deleted:  # deleted by expbot: its card says so instead of failing to read
                return self._deleted[remote_id]
            raise
        return m.snapshot(doc)

    async def _app_ids(self) -> builtins.list[str]:
        if self.settings.app_id:
            return [self.settings.app_id]
        return [str(a["id"]) async for a in pages_links_next(self.client, "/v1/apps", {"limit": 200})]

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]:
        found: builtins.list[Snapshot] = []
        for app in await self._app_ids():
            path = f"/v1/apps/{app}/appStoreVersionExperimentsV2"
            async for item in pages_links_next(self.client, path, {"limit": 200}):
                snap = await self.get(str(item["id"]))
                if status is None or snap.status is status:
                    found.append(snap)
        return found

    def canonical_id(self, remote_id: str) -> str:
        """An experiment id as App Store Connect writes it (lower-case UUID); a pasted console URL works too."""
        raw = remote_id.strip()
        found = m.UUID.findall(raw)
        return found[-1].lower() if found else raw

    # -- creating ------------------------------------------------------------------------------
    async def create(self, draft: BaseModel) -> Created:
        assert isinstance(draft, AppStoreDraft)
        experiment = await self._create_experiment(draft)
        missing: builtins.list[str] = []
        for name in draft.treatments:
            try:
                await self._create_treatment(experiment, name)
            except ProviderError as err:
                missing.append(f"treatment `{name}`: {err.detail}")
        snap = await self.get(experiment)
        if missing:
            made = ", ".join(v.name for v in snap.variants if not v.is_control) or "none"
            missing.append(f"treatments in App Store Connect now: {made}")
        return Created(snapshot=snap, missing=missing)

    async def _create_experiment(self, draft: AppStoreDraft) -> str:
        body = m.create_body(draft)
        try:
            answer = await self.client.send_json("POST", f"/v2/{m.EXPERIMENTS}", body, repeatable=False)
        except OutcomeUnknown:  # look it up by the name expbot chose before anything is sent again
            found = await self.confirmer.experiment_named(draft.app_id, draft.name, draft.platform)
            if found is not None:
                return found
            answer = await self.client.send_json("POST", f"/v2/{m.EXPERIMENTS}", body, repeatable=False)
        return str(answer["data"]["id"])

    async def _create_treatment(self, experiment: str, name: str) -> None:
        body = m.treatment_body(experiment, name)
        try:
            await self.client.send_json("POST", f"/v1/{m.TREATMENTS}", body, repeatable=False)
        except OutcomeUnknown:
            if not await self.confirmer.treatment_named(experiment, name):
                await self.client.send_json("POST", f"/v1/{m.TREATMENTS}", body, repeatable=False)

    # -- the create form ------------------------------------------------------------------------
    async def choices(self, field: str, query: str, values: dict[str, Any]) -> builtins.list[Choice]:
        if field != "app_id":
            return []
        wanted, found = query.strip().lower(), []
        params = {"limit": 200, "fields[apps]": "name,bundleId", "sort": "name"}
        async for app in pages_links_next(self.client, "/v1/apps", params):
            attrs = app.get("attributes") or {}
            label = f"{attrs.get('name') or app['id']} · {attrs.get('bundleId') or app['id']}"
            if wanted in label.lower() or wanted in str(app["id"]):
                found.append(Choice(value=str(app["id"]), label=label))
            if len(found) >= 100:
                break
        return found

    def draft_defaults(self) -> dict[str, Any]:
        return {"app_id": self.settings.app_id} if self.settings.app_id else {}

    # -- what a test can do --------------------------------------------------------------------
    def capabilities(self, snapshot: Snapshot) -> Capabilities:
        return m.capabilities(snapshot, self.settings.allow_stop)

    def options(self, snapshot: Snapshot, kind: ChangeKind) -> ChangeOptions:
        variants = tuple(v.key for v in snapshot.variants if not v.is_control)
        return ChangeOptions(exposure_min=1, exposure_max=100, decimals=False, variants=variants)

    def check(self, snapshot: Snapshot, change: Change) -> None:
        why = m.refusal(snapshot, change.kind, self.settings.allow_stop)
        if why is not None:
            self._refuse(why)
        if change.kind is ChangeKind.EXPOSURE and change.exposure is not None and change.exposure % 1:
            self._refuse("App Store Connect takes whole percentages for the traffic proportion")
        if change.kind is ChangeKind.SHIP and change.variant == m.CONTROL:
            self._refuse("the original product page is live already; pick a treatment to apply")
        super().check(snapshot, change)

    def preview(self, snapshot: Snapshot, change: Change) -> Snapshot:
        if change.kind is ChangeKind.ACTION:
            return snapshot.model_copy(update={"status": Status.IN_REVIEW, "note": None})
        if change.kind is ChangeKind.SHIP:
            guard = {**snapshot.guard, "promoted": change.variant or ""}
            return snapshot.model_copy(update={"status": Status.STOPPED, "guard": guard})
        return super().preview(snapshot, change)

    def took_effect(self, before: Snapshot, change: Change, after: Snapshot) -> bool:
        if change.kind is ChangeKind.ACTION:
            return after.status in (Status.IN_REVIEW, Status.READY)
        if change.kind is ChangeKind.SHIP:
            return bool(change.variant) and after.guard.get("promoted") == change.variant
        if change.kind is ChangeKind.ARCHIVE:
            return after.status is Status.ARCHIVED
        return super().took_effect(before, change, after)

    # -- plans and steps -----------------------------------------------------------------------
    async def plan(self, snapshot: Snapshot, change: Change) -> Plan:
        self.check(snapshot, change)
        notes = [_NOTES[change.kind]] if change.kind in _NOTES else []
        if change.kind is ChangeKind.ACTION:
            notes.append("Submitting moves no traffic; Apple reviews the test's product page before it can start.")
            return Plan(steps=m.submit_steps(snapshot), notes=notes)
        if change.kind is ChangeKind.SHIP:
            return await self._ship_plan(snapshot, change)
        if change.kind is ChangeKind.ARCHIVE:
            step = Step(method="DELETE", path=m.experiment_path(snapshot.remote_id), label="delete the test")
            return Plan(steps=[step], notes=notes)
        if change.kind is ChangeKind.EXPOSURE:
            attrs: dict[str, Any] = {"trafficProportion": round(change.exposure or 0)}
            if snapshot.status is Status.RUNNING:
                notes.append("Apple may refuse to change the traffic of a running test; its answer is shown as is.")
            step = m.update_step(snapshot, attrs, change.describe(), repeatable=True)
            return Plan(steps=[step], notes=notes)
        started = change.kind is ChangeKind.START
        step = m.update_step(snapshot, {"started": started}, "start the test" if started else "stop the test", False)
        return Plan(steps=[step], notes=notes)

    async def _ship_plan(self, snapshot: Snapshot, change: Change) -> Plan:
        treatment = snapshot.variant(change.variant or "")
        assert treatment is not None and treatment.remote_id
        app, platform = snapshot.guard.get("app"), snapshot.guard.get("platform")
        versions = [
            v
            async for v in pages_links_next(
                self.client, f"/v1/apps/{app}/appStoreVersions", {"filter[platform]": platform, "limit": 200}
            )
        ]
        open_ = [v for v in versions if (v.get("attributes") or {}).get("appVersionState") == "PREPARE_FOR_SUBMISSION"]
        notes = [
            f"Applies treatment {treatment.name} to the product page of an App Store version; the test then ends.",
            "The version still goes through App Review and release in App Store Connect before the winner is live.",
        ]
        if open_:
            version = (open_[0].get("attributes") or {}).get("versionString")
            notes.append(f"Uses version {version}, which is being prepared for submission.")
            return Plan(steps=[m.promotion_step(str(open_[0]["id"]), treatment)], notes=notes)
        new = m.next_version([str((v.get("attributes") or {}).get("versionString") or "") for v in versions])
        notes.append(f"No version is being prepared, so version {new} is created first (release type manual).")
        steps = [m.version_step(snapshot, new), m.promotion_step("{{steps.0.data.id}}", treatment)]
        return Plan(steps=steps, notes=notes)

    async def apply(self, step: Step) -> Answer:
        deleting = step.method == "DELETE" and step.path.startswith(f"/v2/{m.EXPERIMENTS}/")
        before = await self.get(step.path.rsplit("/", 1)[-1]) if deleting else None
        response = await self.client.request(step.method, step.path, json=step.body, repeatable=step.repeatable)
        if before is not None:
            self._remember_deleted(before)
        return Answer(status=response.status_code, data=decode(response))

    def _remember_deleted(self, before: Snapshot) -> None:
        note = "deleted from App Store Connect"
        self._deleted[before.remote_id] = before.model_copy(update={"status": Status.ARCHIVED, "note": note})

    async def confirm(self, step: Step, snapshot: Snapshot) -> Answer | None:
        """Read App Store Connect to tell whether a step whose answer was lost was carried out."""
        found = await self.confirmer.confirm(step, snapshot)
        if found is not None and step.method == "DELETE":
            self._remember_deleted(snapshot)
        return found

    async def verify(self) -> str:
        apps = await self._app_ids()
        count = len(await self.list())
        quota = self.client.last_quota
        left = f"; {quota.remaining} of {quota.limit} requests left this hour" if quota and quota.limit else ""
        return f"{len(apps)} app(s), {count} product page test(s) visible{left}"

    async def aclose(self) -> None:
        await self.client.aclose()


def build(settings: AppStoreSettings, deps: Deps) -> AppStoreProvider:
    pem, _ = private_key(deps.secrets)
    auth = AppStoreJwt(deps.secrets.get(ISSUER, ""), deps.secrets.get(KEY_ID, ""), pem)
    return AppStoreProvider(settings, auth)


DRIVER = Driver(
    name="appstore",
    label="App Store Connect",
    settings_model=AppStoreSettings,
    secrets=(ISSUER, KEY_ID, KEY, KEY_PATH),
    build=build,
    validate=validate,
)
