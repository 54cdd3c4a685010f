"""The Amplitude Experiment adapter: management API calls through the shared client, and its `DRIVER`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from providers.amplitude_forms import SECRET, AmplitudeDraft, AmplitudeSettings, validate_settings
from providers.amplitude_mapping import (
    API,
    carried_out,
    experiment_path,
    id_of,
    plan_for,
    to_snapshot,
)
from providers.auth import BearerKey
from providers.base import TUNE, ChangeOptions, Choice, Created, ProviderBase
from providers.errors import NotFound, OutcomeUnknown, ProviderError
from providers.http import DEFAULT_TIMEOUT, HttpClient, Sleep, decode, parse_amplitude_error
from providers.models import Change, ChangeKind, Snapshot, Status, pct
from providers.paging import pages_cursor
from providers.plan import Answer, Plan, Step
from providers.registry import Deps, Driver

_CHANGES = {
    Status.DRAFT: frozenset({ChangeKind.START, ChangeKind.ARCHIVE}) | TUNE,
    Status.RUNNING: frozenset({ChangeKind.PAUSE, ChangeKind.STOP, ChangeKind.SHIP}) | TUNE,
    Status.PAUSED: frozenset({ChangeKind.RESUME, ChangeKind.STOP, ChangeKind.SHIP, ChangeKind.ARCHIVE}) | TUNE,
    Status.STOPPED: frozenset({ChangeKind.SHIP, ChangeKind.ARCHIVE}),
    Status.COMPLETED: frozenset({ChangeKind.ARCHIVE}),
}
_WHY = {
    401: "the management API key (AMPLITUDE_API_KEY) is wrong or was revoked",
    403: "the management API key may not use this project (configured project_id {project}, or the experiment's own)",
    405: "Amplitude's API cannot edit this experiment (Web Experimentation and Guides & Surveys experiments are "
    "edited in Amplitude's console)",
}


class AmplitudeProvider(ProviderBase):
    """Amplitude Experiment's management API (`/api/1`): experiments of one project, traffic only by PATCH."""

    name: ClassVar[str] = "amplitude"
    label: ClassVar[str] = "Amplitude Experiment"
    draft_model: ClassVar[type[BaseModel]] = AmplitudeDraft
    changes = _CHANGES

    def __init__(
        self,
        settings: AmplitudeSettings,
        secrets: Mapping[str, str],
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Sleep | None = None,
    ) -> None:
        self.settings = settings
        self.project = settings.project_id or ""
        self.console = settings.api_base
        extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self._http = HttpClient(
            self.name,
            settings.api_base,
            auth=BearerKey(str(secrets.get(SECRET, ""))),
            parse_error=self._parse_error,
            timeout=timeout,
            **extra,
        )
        self._ids: dict[str, str] = {}  # experiment key → numeric id, learned from every read

    def __repr__(self) -> str:
        return f"AmplitudeProvider(base_url={self.console!r}, project_id={self.project!r})"

    def _parse_error(self, response: httpx.Response) -> tuple[str | None, str]:
        """Amplitude's error bodies are undocumented: keep the raw text, and say what 401/403/405 mean."""
        code, message = parse_amplitude_error(response)
        text = response.text.strip()
        raw = text if text and not text.startswith("<") else message
        raw = raw if len(raw) <= 300 else raw[:299] + "…"
        why = _WHY.get(response.status_code)
        if why:
            return code, f"{why.format(project=self.project or '?')}; Amplitude said: {raw}"
        return code, raw

    # -- reading -------------------------------------------------------------------------------
    def canonical_id(self, remote_id: str) -> str:
        """The numeric id for an id or a key already seen; an unseen key stays a key until `get` resolves it."""
        raw = remote_id.strip()
        if raw.isdigit():
            return str(int(raw))
        return self._ids.get(raw, raw)

    async def get(self, remote_id: str) -> Snapshot:
        rid = self.canonical_id(remote_id)
        if not rid.isdigit():
            rid = await self._id_for_key(rid)
        exp = await self._http.get_json(experiment_path(rid))
        if not isinstance(exp, dict):
            raise ProviderError(self.name, f"expected an experiment object for {rid}, got {type(exp).__name__}")
        versions: builtins.list[dict[str, Any]] = []
        try:
            found = await self._http.get_json(f"{experiment_path(rid)}/versions")
            versions = [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []
        except ProviderError:
            versions = []  # the history is a nicety: the experiment itself was read
        return self._learn(to_snapshot(exp, self.console, versions), exp)

    def _learn(self, snap: Snapshot, exp: dict[str, Any]) -> Snapshot:
        if isinstance(exp.get("key"), str) and snap.remote_id:
            if len(self._ids) > 10_000:
                self._ids.clear()
            self._ids[exp["key"]] = snap.remote_id
        return snap

    async def _find_key(self, key: str) -> dict[str, Any] | None:
        """The project's experiment with this key (archived ones too), or None."""
        params = {"key": key, "projectId": self.project, "includeArchived": "true", "limit": 100}
        async for exp in pages_cursor(self._http, f"{API}/experiments", params, "experiments"):
            if isinstance(exp, dict) and exp.get("key") == key:
                return exp
        return None

    async def _id_for_key(self, key: str) -> str:
        found = await self._find_key(key)
        if found is None:
            raise NotFound(self.name, f"no experiment with key {key!r} in project {self.project}", status=404)
        return id_of(found)

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]:
        params = {"projectId": self.project, "limit": 1000}
        snaps = []
        async for exp in pages_cursor(self._http, f"{API}/experiments", params, "experiments"):
            if isinstance(exp, dict):
                snaps.append(self._learn(to_snapshot(exp, self.console), exp))
        return [s for s in snaps if status is None or s.status is status]

    # -- creating ------------------------------------------------------------------------------
    async def create(self, draft: BaseModel) -> Created:
        """POST once; a create whose answer was lost is looked up by its key before it is ever sent again."""
        assert isinstance(draft, AmplitudeDraft) and draft.key
        body = draft.create_body(self.project)
        answer: Any = None
        for attempt in range(2):
            try:
                answer = await self._http.send_json("POST", f"{API}/experiments", body)
                break
            except OutcomeUnknown:
                found = await self._find_key(draft.key)
                if found is not None:
                    answer = found
                    break
                if attempt == 1:
                    raise
        rid = id_of(answer) if isinstance(answer, dict) else ""
        if not rid:
            raise ProviderError(self.name, f"the create answer carried no experiment id: {str(answer)[:200]}")
        try:
            return Created(snapshot=await self.get(rid))
        except ProviderError:  # created, but not readable now: track what was asked for; the next read corrects it
            return Created(snapshot=self._as_drafted(rid, body, answer))

    def _as_drafted(self, rid: str, body: dict[str, Any], answer: dict[str, Any]) -> Snapshot:
        exp = body | {"id": rid, "enabled": False, "rolloutPercentage": 0}
        snap = to_snapshot(exp, self.console)
        url = answer.get("url")
        return snap.model_copy(update={"url": url if isinstance(url, str) else snap.url})

    # -- the create form ------------------------------------------------------------------------
    async def choices(self, field: str, query: str, values: dict[str, Any]) -> builtins.list[Choice]:
        """Deployments of the configured project, never deleted ones; with no query, the configured set first when
        it has several (a Slack external select picks one value: the set is one comma-separated choice)."""
        if field != "deployments":
            return []
        wanted = query.strip().lower()
        found: builtins.list[Choice] = []
        labels: dict[str, str] = {}
        async for dep in pages_cursor(self._http, f"{API}/deployments", {"limit": 1000}, "deployments"):
            if not isinstance(dep, dict) or dep.get("deleted") or str(dep.get("projectId")) != self.project:
                continue
            dep_id, label = str(dep.get("id")), str(dep.get("label") or dep.get("id"))
            labels[dep_id] = label
            if wanted in label.lower() or wanted in dep_id:
                found.append(Choice(value=dep_id, label=f"{label} ({dep_id})"))
        chosen = [d for d in self.settings.deployments if d in labels]
        if len(chosen) > 1 and not wanted:
            both = " + ".join(labels[d] for d in chosen)
            found.insert(0, Choice(value=",".join(chosen), label=f"{both} (the default)"))
        return found

    def draft_defaults(self) -> dict[str, Any]:
        return {"deployments": ",".join(self.settings.deployments)} if self.settings.deployments else {}

    # -- what an experiment can do ------------------------------------------------------------
    def options(self, snapshot: Snapshot, kind: ChangeKind) -> ChangeOptions:
        return ChangeOptions(decimals=False, variants=tuple(v.key for v in snapshot.variants))

    def check(self, snapshot: Snapshot, change: Change) -> None:
        super().check(snapshot, change)
        if change.kind is ChangeKind.EXPOSURE and change.exposure is not None and not change.exposure.is_integer():
            self._refuse(f"Amplitude's rollout is a whole percentage ({pct(change.exposure)} is not)")

    async def plan(self, snapshot: Snapshot, change: Change) -> Plan:
        self.check(snapshot, change)
        return plan_for(snapshot, change)

    # -- sending -------------------------------------------------------------------------------
    async def apply(self, step: Step) -> Answer:
        if not step.path.startswith(f"{API}/experiments/"):
            raise ProviderError(self.name, f"refused to send {step.method} {step.path}: not an experiment call")
        response = await self._http.request(step.method, step.path, json=step.body, repeatable=step.repeatable)
        return Answer(status=response.status_code, data=decode(response))

    async def confirm(self, step: Step, snapshot: Snapshot) -> Answer | None:
        """Read the experiment: a PATCH whose answer was lost happened if its values are there now."""
        exp = await self._http.get_json(experiment_path(snapshot.remote_id))
        if not isinstance(exp, dict):
            raise ProviderError(self.name, f"expected an experiment object for {snapshot.remote_id}")
        return carried_out(step, exp)

    async def verify(self) -> str:
        """For `expbot check`: the key is accepted and may read the configured project's experiments."""
        page = await self._http.get_json(f"{API}/experiments", {"projectId": self.project, "limit": 1})
        seen = len(page.get("experiments") or []) if isinstance(page, dict) else 0
        deployments = [c for c in await self.choices("deployments", "", {}) if "," not in c.value]
        return f"project {self.project}: key accepted, {seen} experiment(s) read, {len(deployments)} deployment(s)"

    async def aclose(self) -> None:
        await self._http.aclose()


def _build(settings: AmplitudeSettings, deps: Deps) -> AmplitudeProvider:
    return AmplitudeProvider(settings, deps.secrets)


DRIVER = Driver(
    name="amplitude",
    label="Amplitude Experiment",
    settings_model=AmplitudeSettings,
    secrets=(SECRET,),
    build=_build,
    validate=validate_settings,
)
