"""The Auth0 Experiment Center provider: settings, the paced client-credentials client, reads, create, steps."""

from __future__ import annotations

import asyncio
import builtins
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, Field

from providers import auth0_mapping as mapping
from providers.auth import ClientCredentials
from providers.auth0_forms import EXPERIMENT_ID, FLAG_ID, Auth0Draft, body_of
from providers.auth0_pacing import PacedTransport, Pacer
from providers.base import Capabilities, ChangeOptions, Choice, Created, ProviderBase, even_weights
from providers.errors import BadRequest, InvalidChange, NotFound, OutcomeUnknown, ProviderError
from providers.http import DEFAULT_TIMEOUT, HttpClient, Sleep, decode
from providers.models import Change, ChangeKind, Snapshot, Status
from providers.paging import pages_checkpoint
from providers.plan import Answer, Plan, Step
from providers.registry import Driver, ProviderSettings

SECRETS = ("AUTH0_DOMAIN", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET")
_LATER = {"completed": {"archived"}}  # a status that shows an earlier transition of the same plan went through


class Auth0Settings(ProviderSettings):
    """`[providers.auth0]`: `base_url` for every call (token endpoint included) and the tenant's request rate."""

    requests_per_second: float = Field(
        default=2.0, gt=0, le=1000, description="the tenant's Management API rate (development tenants: 2)"
    )


class Auth0Provider(ProviderBase):
    """Auth0's Management API `experimentation` endpoints, every call paced and sent through the shared client."""

    name: ClassVar[str] = "auth0"
    label: ClassVar[str] = "Auth0 Experiment Center"
    draft_model: ClassVar[type[BaseModel]] = Auth0Draft

    def __init__(
        self,
        settings: Auth0Settings,
        secrets: Mapping[str, str],
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.domain = mapping.tenant_domain(secrets["AUTH0_DOMAIN"])
        base = str(settings.base_url).rstrip("/") if settings.base_url else f"https://{self.domain}"
        self.pacer = Pacer(settings.requests_per_second)
        paced = PacedTransport(httpx.AsyncHTTPTransport(), self.pacer)
        self.credentials = ClientCredentials(
            f"{base}/oauth/token",
            secrets["AUTH0_CLIENT_ID"],
            secrets["AUTH0_CLIENT_SECRET"],
            f"https://{self.domain}/api/v2/",
            transport=paced.borrowed(),
            sleep=sleep,
            provider=self.name,
        )
        self.http = HttpClient(
            self.name,
            base,
            auth=self.credentials,
            parse_error=mapping.parse_error,
            timeout=timeout,
            transport=paced,
            sleep=sleep,
            clock=clock,
        )
        self._variation_keys: dict[str, dict[str, str]] = {}  # flag id → variation id → key people type

    def __repr__(self) -> str:
        return f"Auth0Provider(domain={self.domain!r}, base_url={str(self.http.base_url)!r})"

    # -- reading -------------------------------------------------------------------------------
    def canonical_id(self, remote_id: str) -> str:
        """`exp_…` ids are case-sensitive; a dashboard link or `auth0:exp_…` is reduced to the id it holds."""
        found = re.search(r"exp_[A-HJ-NP-Za-km-z1-9]+", remote_id)
        return found.group(0) if found else remote_id.strip()

    async def _read(self, remote_id: str) -> dict[str, Any]:
        if not EXPERIMENT_ID.fullmatch(remote_id):
            raise NotFound(self.name, f"{remote_id!r} is not an Auth0 experiment id (exp_…)", code="not_found")
        data = await self.http.get_json(f"{mapping.EXPERIMENTS}/{remote_id}")
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderError(self.name, f"Auth0 answered GET {remote_id} without an experiment")
        return data

    async def get(self, remote_id: str) -> Snapshot:
        return await self._snapshot(await self._read(remote_id))

    async def list(self, status: Status | None = None) -> builtins.list[Snapshot]:
        params: dict[str, Any] = {}
        if status is not None:
            if status not in mapping.STATUS_OUT:
                return []
            params["status"] = mapping.STATUS_OUT[status]
        found = [x async for x in pages_checkpoint(self.http, mapping.EXPERIMENTS, params, "experiments", take=50)]
        return [await self._snapshot(x) for x in found if isinstance(x, dict) and x.get("id")]

    async def _snapshot(self, data: dict[str, Any]) -> Snapshot:
        wanted = {str(a.get("variation_id")) for a in data.get("allocations") or [] if isinstance(a, dict)}
        embedded = data.get("feature_flag_snapshot")
        keys = mapping.variation_keys(embedded.get("variations") if isinstance(embedded, dict) else None)
        if not wanted <= keys.keys():
            flag = str(data.get("feature_flag_id") or "")
            keys = self._variation_keys.get(flag, {})
            if not wanted <= keys.keys() and FLAG_ID.fullmatch(flag):
                keys = mapping.variation_keys(await self._variations(flag))
                self._variation_keys[flag] = keys
        return mapping.snapshot_of(data, keys)

    async def _variations(self, flag_id: str) -> builtins.list[dict[str, Any]]:
        page = await self.http.get_json(f"{mapping.API}/feature-flags/{flag_id}/variations", {"take": 50})
        items = page.get("variations") if isinstance(page, dict) else page
        return [v for v in items or [] if isinstance(v, dict) and v.get("id")]

    # -- creating ------------------------------------------------------------------------------
    async def create(self, draft: BaseModel) -> Created:
        """A draft experiment; a create whose answer was lost is looked up by its name before it is sent again."""
        assert isinstance(draft, Auth0Draft)
        variations = await self._variations(draft.feature_flag_id)
        ids = {str(v[k]): str(v["id"]) for v in variations for k in ("name", "key", "id") if v.get(k)}
        unknown = [r.variation for r in draft.weights if r.variation.strip() not in ids]
        if unknown:
            has = ", ".join(mapping.variation_keys(variations).values()) or "none"
            raise BadRequest(self.name, f"the flag has no variation {', '.join(unknown)} (it has: {has})")
        body = body_of(draft, ids)
        known = {x["id"] for x in await self._named(draft)}
        try:
            answer = await self.http.send_json("POST", mapping.EXPERIMENTS, body)
        except OutcomeUnknown:
            answer = await self._created(draft, known)
            if answer is None:  # it did not happen: now it is safe to send it once more
                answer = await self.http.send_json("POST", mapping.EXPERIMENTS, body)
        if not isinstance(answer, dict) or not answer.get("id"):  # a 2xx without the experiment: find it
            answer = await self._created(draft, known)
            if answer is None:
                raise OutcomeUnknown(self.name, f"Auth0 accepted the create but no experiment {draft.name!r} shows")
        missing: list[str] = []
        if draft.levels:
            path = f"{mapping.EXPERIMENTS}/{answer['id']}"
            try:
                patched = await self.http.send_json("PATCH", path, {"levels": draft.levels}, repeatable=True)
                answer = patched if isinstance(patched, dict) and patched.get("id") else await self._read(answer["id"])
            except ProviderError as err:
                missing.append(f"ramp levels {', '.join(map(str, draft.levels))}: {err.detail}")
        return Created(snapshot=await self._snapshot(answer), missing=missing)

    async def _named(self, draft: Auth0Draft) -> builtins.list[dict[str, Any]]:
        params = {"feature_flag_id": draft.feature_flag_id}
        found = pages_checkpoint(self.http, mapping.EXPERIMENTS, params, "experiments", take=50)
        return [x async for x in found if isinstance(x, dict) and x.get("name") == draft.name and x.get("id")]

    async def _created(self, draft: Auth0Draft, known: set[str]) -> dict[str, Any] | None:
        return next((x for x in await self._named(draft) if x["id"] not in known), None)

    # -- the create form ------------------------------------------------------------------------
    async def choices(self, field: str, query: str, values: dict[str, Any]) -> builtins.list[Choice]:
        if field != "feature_flag_id":
            return []
        wanted = query.strip().lower()
        flags = pages_checkpoint(self.http, f"{mapping.API}/feature-flags", {}, "feature_flags", take=50, max_pages=2)
        found: builtins.list[Choice] = []
        async for flag in flags:
            if not isinstance(flag, dict) or not flag.get("id") or flag.get("status") == "archived":
                continue
            label = f"{flag.get('name') or flag['id']} · {flag['id']}"
            label += f" ({flag['status']})" if flag.get("status") not in (None, "active") else ""
            if wanted in label.lower():
                found.append(Choice(value=str(flag["id"]), label=label))
        return found[:100]

    async def form_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        """Picking a flag fills in its variations: even whole-number weights, the first one the control."""
        flag = str(values.get("feature_flag_id") or "")
        if not FLAG_ID.fullmatch(flag):
            return {}
        keys = list(mapping.variation_keys(await self._variations(flag)).values())
        weights = even_weights(len(keys), decimals=0) if keys else []
        pairs = enumerate(zip(keys, weights, strict=True))
        rows = [{"variation": k, "weight": int(w), "control": i == 0} for i, (k, w) in pairs]
        return {"weights": rows}

    # -- what an experiment can do ------------------------------------------------------------
    def capabilities(self, snapshot: Snapshot) -> Capabilities:
        return mapping.capabilities(snapshot)

    def options(self, snapshot: Snapshot, kind: ChangeKind) -> ChangeOptions:
        variants = tuple(v.key for v in snapshot.variants)
        if kind is ChangeKind.EXPOSURE:
            target = mapping.next_level(snapshot)
            return ChangeOptions(exposure_levels=() if target is None else (target[1],), variants=variants)
        return ChangeOptions(variants=variants)

    def check(self, snapshot: Snapshot, change: Change) -> None:
        if change.kind is ChangeKind.SHIP:
            self._refuse(mapping.SHIP_REFUSAL)
        if change.kind is ChangeKind.EXPOSURE and mapping.next_level(snapshot) is None:
            if snapshot.status is not Status.RUNNING:
                self._refuse(f"Auth0 ramps only an active experiment (this one is {snapshot.status.value})")
            if not mapping.levels_of(snapshot):
                self._refuse("this experiment has no ramp levels: Auth0 freezes its traffic once it is active")
            self._refuse(f"the ramp is already at its last level ({snapshot.exposure:g}%)")
        if change.kind is ChangeKind.WEIGHTS:
            if snapshot.status is not Status.DRAFT:
                self._refuse("Auth0 re-splits the weights only before the experiment is first started")
            if any(w != round(w) for w in (change.weights or {}).values()):
                self._refuse("Auth0 takes whole-number weights, e.g. control=30 treatment=70")
        super().check(snapshot, change)

    def preview(self, snapshot: Snapshot, change: Change) -> Snapshot:
        after = super().preview(snapshot, change)
        if change.kind is ChangeKind.STOP:
            return after.model_copy(update={"status": Status.COMPLETED})
        return after

    async def plan(self, snapshot: Snapshot, change: Change) -> Plan:
        self.check(snapshot, change)
        notes = mapping.notes(snapshot, change)
        if change.kind is ChangeKind.START:  # read-only: Auth0's own readiness check, before anyone approves
            path = f"{mapping.EXPERIMENTS}/{snapshot.remote_id}/validate"
            result = await self.http.send_json("POST", path, None, repeatable=True)
            if isinstance(result, dict) and result.get("is_valid") is False:
                why = f"Auth0's check says it cannot start yet: {mapping.problems_in(result)}"
                raise InvalidChange(self.name, why, code="experiment_not_valid")
            notes.insert(0, "Auth0's readiness check (POST …/validate) passed just now; it runs again first.")
        return Plan(steps=mapping.steps(snapshot, change), notes=notes)

    # -- sending -------------------------------------------------------------------------------
    async def apply(self, step: Step) -> Answer:
        response = await self.http.request(step.method, step.path, json=step.body, repeatable=step.repeatable)
        data = decode(response)
        if step.path.endswith("/validate") and isinstance(data, dict) and data.get("is_valid") is False:
            why = f"Auth0's check says it cannot start: {mapping.problems_in(data)}"
            raise BadRequest(self.name, why, code="experiment_not_valid")
        return Answer(status=response.status_code, data=data)

    async def confirm(self, step: Step, snapshot: Snapshot) -> Answer | None:
        """Whether a transition or ramp step whose answer was lost went through, by reading the experiment."""
        data = await self._read(snapshot.remote_id)
        body = step.body if isinstance(step.body, dict) else {}
        if step.path.endswith("/status"):
            wanted = str(body.get("status"))
            return Answer(status=200, data=data) if data.get("status") in {wanted, *_LATER.get(wanted, ())} else None
        if step.path.endswith("/advance-ramp"):
            level, target = data.get("current_level"), body.get("target_level")
            if isinstance(level, int) and isinstance(target, int) and level >= target:
                ramp = {"experiment_id": data["id"], "to_level": target, "current_level": level}
                return Answer(status=200, data=ramp)
        return None

    async def verify(self) -> str:
        await self.http.get_json(mapping.EXPERIMENTS, {"take": 1})
        return f"Management API token accepted; experiments readable on {self.domain}"

    async def aclose(self) -> None:
        await self.http.aclose()


DRIVER = Driver(
    name="auth0",
    label="Auth0 Experiment Center",
    settings_model=Auth0Settings,
    secrets=SECRETS,
    build=lambda settings, deps: Auth0Provider(settings, deps.secrets),
    validate=mapping.start_up_problems,
)
