"""The LaunchDarkly provider: experiments and their iterations over LaunchDarkly's REST API v2, through the shared
HTTP client; what each change sends is in `launchdarkly_plans`, how answers read in `launchdarkly_mapping`."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from providers.auth import RawToken
from providers.base import TUNE, ChangeOptions, Created, ProviderBase
from providers.errors import BadRequest, NotFound, OutcomeUnknown, ProviderError, Unauthorized
from providers.http import DEFAULT_TIMEOUT, HttpClient, Sleep, decode, parse_launchdarkly_error
from providers.launchdarkly_forms import LaunchDarklyDraft, LaunchDarklySettings, create_body
from providers.launchdarkly_mapping import (
    API_VERSION,
    EXPAND,
    NAME,
    SEMANTIC_PATCH,
    ExperimentId,
    Json,
    flag_key_of,
    flag_path,
    is_experiment_path,
    iterations,
    parse_id,
    rule_of,
    serving,
    snapshot,
)
from providers.launchdarkly_menus import CreateMenus
from providers.launchdarkly_plans import Read, build, confirmed, flag_patch_body, guard_after, step_experiment
from providers.models import Change, ChangeKind, Snapshot, Status
from providers.paging import pages_offset
from providers.plan import Answer, Plan, Step
from providers.registry import Deps, Driver

_CHANGES = {
    Status.DRAFT: frozenset({ChangeKind.START, ChangeKind.ARCHIVE}),
    Status.RUNNING: frozenset({ChangeKind.STOP, ChangeKind.SHIP}) | TUNE,
    Status.STOPPED: frozenset({ChangeKind.SHIP, ChangeKind.ARCHIVE}),
    Status.ARCHIVED: frozenset({ChangeKind.RESTORE}),
}
NO_PAUSE = "LaunchDarkly experiments cannot be paused: stopping ends the iteration, and a new one starts afresh"


class LaunchDarklyToken(RawToken):
    """`Authorization: <token>`; `LD-API-Version: beta` on the experiment endpoints, the dated version elsewhere."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if is_experiment_path(request.url.path):
            request.headers["LD-API-Version"] = "beta"
        yield from super().auth_flow(request)


class LaunchDarklyProvider(CreateMenus, ProviderBase):
    """Experiments on LaunchDarkly flags: each traffic change is a new iteration, started once approved."""

    name: ClassVar[str] = NAME
    label: ClassVar[str] = "LaunchDarkly"
    draft_model: ClassVar[type[BaseModel]] = LaunchDarklyDraft
    changes = _CHANGES

    def __init__(
        self,
        settings: LaunchDarklySettings,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.http = HttpClient(
            NAME,
            settings.root,
            auth=LaunchDarklyToken(token, {"LD-API-Version": API_VERSION}),
            parse_error=parse_launchdarkly_error,
            stale_codes=frozenset({"optimistic_locking_error"}),
            timeout=timeout,
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        self._reads: dict[str, tuple[str, Read]] = {}

    # -- calls ---------------------------------------------------------------------------------
    async def _send(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"Content-Type": SEMANTIC_PATCH} if method == "PATCH" else None
        try:
            return await self.http.request(method, path, json=body, params=params, headers=headers, **kw)
        except Unauthorized as err:
            if err.status == 403 and is_experiment_path(path):
                detail = (
                    f"{err.detail} (the experiment endpoints are beta: they need `LD-API-Version: beta`, which "
                    "expbot sends, and an access token whose role may manage experiments)"
                )
                raise Unauthorized(NAME, detail, status=403, code=err.code) from None
            raise

    async def _json(self, path: str, params: Mapping[str, Any] | None = None) -> Json:
        found = decode(await self._send("GET", path, params=params))
        if not isinstance(found, dict):
            raise ProviderError(NAME, f"GET {path} answered {type(found).__name__}, not a JSON object")
        return found

    def _eid(self, remote_id: str) -> ExperimentId:
        eid = parse_id(remote_id, self.settings.project, self.settings.environment)
        if eid is None:
            raise BadRequest(
                NAME,
                f"{remote_id.strip()!r} is not an experiment id: give project/environment/key, or set "
                "[providers.launchdarkly] project and environment to use the key alone",
                code="bad_id",
            )
        return eid

    # -- reading -------------------------------------------------------------------------------
    async def _read(self, eid: ExperimentId) -> Read:
        experiment = await self._json(eid.path, {"expand": EXPAND})
        current, _ = iterations(experiment)
        read = Read(eid, experiment, await self._flag(eid.project, eid.environment, flag_key_of(current or {})))
        self._reads[eid.canonical] = (self._snap(read).fingerprint, read)
        return read

    def _snap(self, read: Read) -> Snapshot:
        return snapshot(read.eid, read.experiment, read.flag, self.settings.root)

    async def get(self, remote_id: str) -> Snapshot:
        return self._snap(await self._read(self._eid(remote_id)))

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]:
        project, environment = self.settings.project, self.settings.environment
        if not project or not environment:
            return []
        params = {"expand": EXPAND, "lifecycleState": "active,archived"}
        path = ExperimentId(project, environment, "-").collection
        flags: dict[str, Json | None] = {}
        found: builtins.list[Snapshot] = []
        async for item in pages_offset(self.http, path, params, "items", limit=20, total_key="total_count"):
            key = flag_key_of(iterations(item)[0] or {})
            if str(key) not in flags:
                flags[str(key)] = await self._flag(project, environment, key)
            eid = ExperimentId(project, environment, str(item["key"]))
            found.append(snapshot(eid, item, flags[str(key)], self.settings.root))
        return [s for s in found if status is None or s.status is status]

    def canonical_id(self, remote_id: str) -> str:
        eid = parse_id(remote_id, self.settings.project, self.settings.environment)
        return eid.canonical if eid else remote_id.strip()

    # -- creating ------------------------------------------------------------------------------
    async def create(self, draft: BaseModel) -> Created:
        assert isinstance(draft, LaunchDarklyDraft)
        project, environment = draft.project or self.settings.project, draft.environment or self.settings.environment
        if not project or not environment:
            raise BadRequest(NAME, "say which project and environment (or set them in [providers.launchdarkly])")
        eid = ExperimentId(project, environment, draft.experiment_key)
        flag = await self._flag(project, environment, draft.flag_key)
        assert flag is not None
        body = create_body(draft, flag)
        try:
            await self._send("POST", eid.collection, body)
        except OutcomeUnknown:  # look it up by the key expbot chose before anything is sent again
            try:
                return Created(snapshot=await self.get(eid.canonical))
            except NotFound:
                await self._send("POST", eid.collection, body)
        return Created(snapshot=await self.get(eid.canonical))

    # -- what an experiment can do ------------------------------------------------------------
    def options(self, snapshot: Snapshot, kind: ChangeKind) -> ChangeOptions:
        return ChangeOptions(exposure_min=0.01, decimals=True, variants=tuple(v.key for v in snapshot.variants))

    def check(self, snapshot: Snapshot, change: Change) -> None:
        if change.kind in (ChangeKind.PAUSE, ChangeKind.RESUME):
            self._refuse(f"{NO_PAUSE} (use stop)", "no_pause")
        super().check(snapshot, change)
        if change.kind is ChangeKind.STOP and change.variant and snapshot.variant(change.variant) is None:
            self._refuse(f"there is no treatment {change.variant!r}")
        if change.kind is ChangeKind.SHIP and snapshot.guard.get("serving") == change.variant:
            self._refuse(f"the flag already serves {change.variant} on the experiment's rule", "no_change")

    def preview(self, snapshot: Snapshot, change: Change) -> Snapshot:
        if change.kind is ChangeKind.RESTORE:
            status = {"running": Status.RUNNING, "stopped": Status.STOPPED}.get(
                str(snapshot.guard.get("iteration_status")), Status.DRAFT
            )
            return snapshot.model_copy(update={"status": status})
        if change.kind in (ChangeKind.STOP, ChangeKind.SHIP):
            guard = {**snapshot.guard, **guard_after(snapshot, change)}
            return snapshot.model_copy(update={"status": Status.STOPPED, "guard": guard})
        return super().preview(snapshot, change)

    def took_effect(self, before: Snapshot, change: Change, after: Snapshot) -> bool:
        wanted = guard_after(before, change)
        return super().took_effect(before, change, after) and all(after.guard.get(k) == v for k, v in wanted.items())

    # -- planning and sending ------------------------------------------------------------------
    async def plan(self, snapshot: Snapshot, change: Change) -> Plan:
        """The steps, built from the read the snapshot came from (read again if it is not the one in hand)."""
        self.check(snapshot, change)
        cached = self._reads.get(snapshot.remote_id)
        read = (
            cached[1]
            if cached and cached[0] == snapshot.fingerprint
            else await self._read(self._eid(snapshot.remote_id))
        )
        plan = build(read, snapshot, change)
        flag_steps = [s for s in plan.steps if s.path.startswith("/api/v2/flags/")]
        if flag_steps and change.variant:
            plan = plan.model_copy(update={"notes": [*plan.notes, await self._dry_run(read, change.variant)]})
        return plan

    async def _dry_run(self, read: Read, winner: str) -> str:
        """Preview the flag patch with `dryRun=true` (validated, not persisted) and say what the flag would serve."""
        body = flag_patch_body(read, winner, "expbot preview (dry run)")
        try:
            answer = decode(
                await self._send(
                    "PATCH", flag_path(read.eid.project, read.flag_key), body, {"dryRun": "true"}, repeatable=True
                )
            )
        except ProviderError as err:
            return (
                f"LaunchDarkly's dry run of the flag change answered: {err.detail} (it is checked again when applied)."
            )
        rule = rule_of(read.iteration, read.flag_key)
        served = serving(answer, read.eid.environment, rule) if isinstance(answer, dict) else None
        return (
            f"LaunchDarkly's dry run of the flag change: the experiment's rule would then serve "
            f"{served or 'an unknown variation'} in {read.eid.environment}."
        )

    async def apply(self, step: Step) -> Answer:
        self._reads.clear()  # a write makes every read in hand old
        response = await self._send(step.method, step.path, step.body, repeatable=step.repeatable)
        return Answer(status=response.status_code, data=decode(response))

    async def confirm(self, step: Step, snapshot: Snapshot) -> Answer | None:
        """Whether a write whose answer was lost happened, read from the experiment (never sent again here)."""
        eid = step_experiment(step)
        return None if eid is None else confirmed(step, (await self._read(eid)).experiment, snapshot)

    async def verify(self) -> str:
        project, environment = self.settings.project, self.settings.environment
        if project and environment:
            page = await self._json(ExperimentId(project, environment, "-").collection, {"limit": 1})
            said = f"{page.get('total_count', len(page.get('items') or []))} experiment(s) in {project}/{environment}"
        else:
            await self._json("/api/v2/projects", {"limit": 1})
            said = "token accepted; no default project/environment: track experiments as project/environment/key"
        quota = self.http.last_quota
        return f"{said}; rate limit left: {quota.raw}" if quota else said

    async def aclose(self) -> None:
        await self.http.aclose()


def _validate(settings: LaunchDarklySettings, secrets: Mapping[str, str]) -> builtins.list[str]:
    token = secrets.get("LAUNCHDARKLY_API_TOKEN", "")
    if token.lower().startswith("bearer "):
        return ['LAUNCHDARKLY_API_TOKEN: give the access token itself, without "Bearer"']
    if token.startswith(("sdk-", "mob-")):
        return ["LAUNCHDARKLY_API_TOKEN: this is an SDK or mobile key; the REST API needs an access token (api-…)"]
    return []


def _build(settings: LaunchDarklySettings, deps: Deps) -> LaunchDarklyProvider:
    return LaunchDarklyProvider(settings, deps.secrets.get("LAUNCHDARKLY_API_TOKEN", ""))


DRIVER = Driver(
    name=NAME,
    label="LaunchDarkly",
    settings_model=LaunchDarklySettings,
    secrets=("LAUNCHDARKLY_API_TOKEN",),
    build=_build,
    validate=_validate,
)
