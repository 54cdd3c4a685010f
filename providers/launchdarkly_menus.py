"""The LaunchDarkly create modal's menus: flags, metrics and context kinds read from the project (following their
pages), and the treatments a picked flag fills in."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from providers.base import Choice, even_weights
from providers.errors import ProviderError
from providers.http import HttpClient
from providers.launchdarkly_forms import LaunchDarklySettings
from providers.launchdarkly_mapping import Json, flag_path, variation_name
from providers.paging import pages_offset


class CreateMenus:
    """The create form's provider-backed parts; the provider class mixes it in."""

    settings: LaunchDarklySettings
    http: HttpClient

    async def _json(self, path: str, params: Mapping[str, Any] | None = None) -> Json:
        raise NotImplementedError

    async def _flag(self, project: str, environment: str, key: str | None) -> Json | None:
        return await self._json(flag_path(project, key), {"env": environment}) if key else None

    def draft_defaults(self) -> dict[str, Any]:
        found = {"project": self.settings.project, "environment": self.settings.environment}
        return {k: v for k, v in found.items() if v}

    async def choices(self, field: str, query: str, values: dict[str, Any]) -> builtins.list[Choice]:
        project = str(values.get("project") or self.settings.project or "")
        environment = str(values.get("environment") or self.settings.environment or "")
        if not project:
            return []
        if field == "flag_key":
            params = {"summary": "true", **({"env": environment} if environment else {})}
            pages = pages_offset(self.http, f"/api/v2/flags/{project}", params, "items", limit=50)
        elif field == "metric_key":
            pages = pages_offset(self.http, f"/api/v2/metrics/{project}", None, "items", limit=50)
        elif field == "randomization_unit":
            kinds = (await self._json(f"/api/v2/projects/{project}/context-kinds")).get("items") or []
            return self._matching([k for k in kinds if not k.get("archived")], query)
        else:
            return []
        return self._matching([item async for item in pages], query)

    @staticmethod
    def _matching(items: builtins.list[Json], query: str) -> builtins.list[Choice]:
        wanted = query.strip().lower()
        found = [
            Choice(value=str(i["key"]), label=f"{i.get('name') or i['key']} ({i['key']})")
            for i in items
            if wanted in str(i.get("key", "")).lower() or wanted in str(i.get("name", "")).lower()
        ]
        return found[:100]

    async def form_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        """When a flag is picked: its variations as the treatments, split evenly (unless already listed)."""
        project, key = values.get("project") or self.settings.project, values.get("flag_key")
        if not project or not key:
            return {}
        try:
            flag = await self._flag(str(project), str(values.get("environment") or ""), str(key))
        except ProviderError:
            return {}
        names = [variation_name(v) for v in (flag or {}).get("variations") or []]
        rows = sorted((k, v) for k, v in values.items() if k.startswith("treatments.") and k.endswith(".name"))
        if not names or sorted(str(v) for _, v in rows) == sorted(names):
            return {}
        return {"treatments": [{"name": n, "weight": w} for n, w in zip(names, even_weights(len(names)), strict=True)]}
