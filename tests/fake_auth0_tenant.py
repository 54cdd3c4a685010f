"""The fake Auth0 tenant's state and rules: flags, experiments, the documented state machine, ramp and validation."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
FLOWS = {"authentication", "mfa_enrollment", "mfa_challenge", "password_reset", "passkey_enrollment", "all"}
MOVES = {"active": {"draft", "paused"}, "paused": {"active"}, "completed": {"active", "paused"}}
MOVES["archived"] = {"draft", "paused", "completed"}
ACTIVE_LIMIT = "experiment_active_limit_exceeded"
Reply = tuple[int, Any, dict[str, str]]


class Refused(Exception):
    """An error answer: `{statusCode, error, message, errorCode?}`."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        self.status, self.message, self.code = status, message, code

    def reply(self) -> Reply:
        body = {"statusCode": self.status, "error": "Error", "message": self.message}
        return self.status, body | ({"errorCode": self.code} if self.code else {}), {}


class Tenant:
    """Flags and experiments of one tenant; every method is called under the server's lock."""

    def __init__(self) -> None:
        self.flags: dict[str, dict[str, Any]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self._rng, self._tick = random.Random(7), 0

    def new_id(self, prefix: str, length: int = 12) -> str:
        return prefix + "".join(self._rng.choices(B58, k=length))

    def add_flag(self, name: str, variations: tuple[str, ...], status: str) -> str:
        flag_id = self.new_id("flg_")
        found = [{"id": self.new_id("var_"), "name": v, "key": v} for v in variations]
        self.flags[flag_id] = {"id": flag_id, "name": name, "status": status, "variations": found}
        return flag_id

    def touch(self, exp: dict[str, Any]) -> None:
        self._tick += 1
        exp["updated_at"] = self._now()

    def _now(self) -> str:
        return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self._tick)).isoformat().replace("+00:00", "Z")

    def _exp(self, exp_id: str) -> dict[str, Any]:
        if exp_id not in self.experiments:
            raise Refused(404, "The experiment does not exist.", "inexistent_experiment")
        return self.experiments[exp_id]

    def problems(self, exp: dict[str, Any]) -> list[dict[str, str]]:
        """What /validate and activation check (the documented rules)."""
        flag, allocs = self.flags.get(exp["feature_flag_id"]), exp["allocations"]
        owned = {v["id"] for v in flag["variations"]} if flag else set()
        found = [
            (flag is None or flag["status"] != "active", "experiment_invalid_flag", "The feature flag is not active."),
            (not allocs, "experiment_invalid_allocations", "At least one allocation is required."),
            (
                any(a["variation_id"] not in owned for a in allocs),
                "experiment_invalid_allocation_variation",
                "Every variation must belong to the feature flag.",
            ),
            (
                sum(bool(a.get("is_control")) for a in allocs) != 1,
                "experiment_invalid_allocation_control",
                "Exactly one allocation must be the control.",
            ),
        ]
        if exp["allocation_strategy"] == "percentage":
            total = sum(a.get("weight") or 0 for a in allocs)
            found.append((total != 100, "experiment_invalid_allocation_weights", "Weights must sum to 100."))
        else:
            fallbacks = sum(bool(a.get("is_fallback")) for a in allocs)
            found.append((fallbacks != 1, "experiment_invalid_allocation_fallback", "Exactly one fallback."))
        return [{"code": code, "message": msg} for bad, code, msg in found if bad]

    def _check_body(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise Refused(400, "Payload validation error: expected an object.", "invalid_body")
        name = body.get("name")
        if not isinstance(name, str) or not 3 <= len(name) <= 255 or not re.fullmatch(r"\S(.*\S)?", name):
            raise Refused(400, "Payload validation error: 'name' is invalid.", "invalid_body")
        if body.get("feature_flag_id") not in self.flags:
            raise Refused(400, "Payload validation error: unknown 'feature_flag_id'.", "invalid_body")
        if body.get("authentication_flow") not in FLOWS or body.get("assignment_config") != {"subject": "device"}:
            raise Refused(400, "Payload validation error: invalid flow or assignment_config.", "invalid_body")
        if body.get("allocation_strategy") not in ("percentage", "segment") or not body.get("allocations"):
            raise Refused(400, "Payload validation error: 'allocations' needs at least 1 item.", "invalid_body")

    def _create(self, body: Any) -> Reply:
        self._check_body(body)
        now = self._now()
        exp = {"id": self.new_id("exp_"), "status": "draft", "is_valid": False, "levels": [], "current_level": None}
        exp |= {k: body[k] for k in ("name", "feature_flag_id", "authentication_flow", "allocation_strategy")}
        exp |= {"assignment_config": body["assignment_config"], "allocations": body["allocations"]}
        exp |= {"description": body.get("description"), "created_at": now, "updated_at": now}
        self.experiments[exp["id"]] = exp
        self.touch(exp)
        return 201, exp, {}

    def _patch(self, exp: dict[str, Any], body: dict[str, Any]) -> Reply:
        draft_only = {"authentication_flow", "levels", "allocations", "default_config"}
        if exp["status"] != "draft" and draft_only & body.keys():
            fields = ", ".join(sorted(draft_only & body.keys()))
            raise Refused(400, f"Cannot modify {fields} unless the experiment is a draft.", "experiment_not_editable")
        levels = body.get("levels", [])
        if any(b <= a for a, b in itertools.pairwise(levels)) or any(not 0 <= x <= 100 for x in levels):
            raise Refused(400, "Levels must be strictly increasing percentages.", "experiment_invalid_levels")
        exp.update({k: v for k, v in body.items() if k in draft_only | {"name", "description"}})
        exp["is_valid"] = not self.problems(exp)
        self.touch(exp)
        return 200, exp, {}

    def _status(self, exp: dict[str, Any], body: dict[str, Any]) -> Reply:
        target, was = body.get("status"), exp["status"]
        if target not in MOVES or was not in MOVES[target]:
            raise Refused(400, f"Cannot transition from {was} to {target}.", "experiment_invalid_status_transition")
        if target == "active":
            if was == "draft" and (problems := self.problems(exp)):
                raise Refused(400, problems[0]["message"], problems[0]["code"])
            if any(e["status"] == "active" for e in self.experiments.values()):
                raise Refused(400, "Only one active experiment is allowed per tenant.", ACTIVE_LIMIT)
            if was == "draft":
                exp |= {"started_at": self._now(), "is_valid": True, "current_level": 0 if exp["levels"] else None}
                exp["feature_flag_snapshot"] = dict(self.flags[exp["feature_flag_id"]])
        if target == "completed":
            exp["ended_at"] = self._now()
        exp["status"] = target
        self.touch(exp)
        return 200, exp, {}

    def _ramp(self, exp: dict[str, Any], body: dict[str, Any]) -> Reply:
        target, now, levels = body.get("target_level"), exp["current_level"], exp["levels"]
        if exp["status"] != "active" or not levels:
            raise Refused(400, "Only an active experiment with levels can be ramped.", "experiment_ramp_unavailable")
        if not isinstance(target, int) or target not in (now, now + 1) or target >= len(levels):
            raise Refused(400, f"target_level must be the next level ({now + 1}).", "experiment_invalid_ramp_target")
        answer = {"experiment_id": exp["id"], "from_level": now, "to_level": target, "current_level": target}
        if target != now:  # the current level again: success, nothing written
            exp["current_level"] = target
            self.touch(exp)
        return 200, answer, {}

    @staticmethod
    def _listing(items: list[dict[str, Any]], key: str, query: dict[str, str]) -> Reply:
        take, start = int(query.get("take", 50)), int(query.get("from") or 0)
        if not 1 <= take <= 50:
            raise Refused(400, "Query validation error: 'take' must be at most 50.", "invalid_query_string")
        page = items[start : start + take]
        return 200, {key: page, "next": str(start + take) if start + take < len(items) else None}, {}

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        parts = path.removeprefix("/api/v2/experimentation/").split("/")
        if parts[0] == "feature-flags" and method == "GET":
            if len(parts) == 1:
                return self._listing(list(self.flags.values()), "feature_flags", query)
            if parts[1] not in self.flags:
                raise Refused(404, "The feature flag does not exist.", "inexistent_feature_flag")
            return 200, {"variations": self.flags[parts[1]]["variations"], "next": None}, {}
        if parts[0] != "experiments":
            raise Refused(404, "Not Found")
        if len(parts) == 1 and method == "GET":
            wanted = query.get("status")
            found = [
                e
                for e in self.experiments.values()
                if (e["status"] == wanted if wanted else e["status"] != "archived")
                and e["feature_flag_id"] == query.get("feature_flag_id", e["feature_flag_id"])
            ]
            return self._listing(found, "experiments", query)
        if len(parts) == 1 and method == "POST":
            return self._create(body)
        exp, verb = self._exp(parts[1]), (method, parts[2] if len(parts) > 2 else "")
        body = body if isinstance(body, dict) else {}
        if verb == ("GET", ""):
            return 200, exp, {}
        if verb == ("DELETE", ""):
            if exp["status"] == "active":
                raise Refused(400, "An active experiment cannot be deleted.", "experiment_active")
            del self.experiments[exp["id"]]
            return 204, None, {}
        if verb == ("POST", "validate"):  # read-only
            problems = self.problems(exp)
            return 200, {"is_valid": not problems, "errors": problems}, {}
        handlers = {("PATCH", ""): self._patch, ("POST", "status"): self._status, ("POST", "advance-ramp"): self._ramp}
        if verb not in handlers:
            raise Refused(404, "Not Found")
        return handlers[verb](exp, body)
