"""The App Store Connect spec subset the fake and the tests validate against: extraction and strict validators."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

COPY = Path(__file__).parent / "specs" / "appstore" / "appstoreconnect-subset.json"
SHARED = Path("/work/shared/reference/specs/appstoreconnect-openapi.json")
OPERATIONS = {
    "/v2/appStoreVersionExperiments": ["post"],
    "/v2/appStoreVersionExperiments/{id}": ["get", "patch", "delete"],
    "/v2/appStoreVersionExperiments/{id}/appStoreVersionExperimentTreatments": ["get"],
    "/v1/appStoreVersionExperimentTreatments": ["post"],
    "/v1/appStoreVersionExperimentTreatments/{id}": ["get"],
    "/v1/apps": ["get"],
    "/v1/apps/{id}/appStoreVersionExperimentsV2": ["get"],
    "/v1/apps/{id}/appStoreVersions": ["get"],
    "/v1/appStoreVersions": ["post"],
    "/v1/appStoreVersionPromotions": ["post"],
    "/v1/reviewSubmissions": ["get", "post"],
    "/v1/reviewSubmissions/{id}": ["get", "patch"],
    "/v1/reviewSubmissions/{id}/items": ["get"],
    "/v1/reviewSubmissionItems": ["post"],
}
"""Every operation the adapter calls (method lists per path)."""


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The operations expbot uses (parameters and request body) and the schemas their bodies need."""
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        for method in methods:
            op = spec["paths"][path][method]
            kept = {"parameters": op.get("parameters", []), "responses": sorted(op["responses"])}
            if "requestBody" in op:
                kept["requestBody"] = op["requestBody"]
            paths.setdefault(path, {})[method] = kept
    schemas: dict[str, Any] = {}
    todo: set[str] = set()
    _refs(paths, todo)
    while todo:
        name = todo.pop()
        if name not in schemas:
            schemas[name] = spec["components"]["schemas"][name]
            _refs(schemas[name], todo)
    return {"info": spec["info"], "paths": paths, "components": {"schemas": dict(sorted(schemas.items()))}}


@cache
def subset() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COPY.read_text())
    return data


def _strict(node: Any) -> Any:
    """Apple rejects unknown attributes: every object schema that lists properties allows no others."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        if out.get("nullable") is True and "$ref" in out:  # OpenAPI 3.0 `nullable` beside a $ref
            ref = out.pop("$ref")
            out.pop("nullable")
            out["anyOf"] = [{"$ref": ref}, {"type": "null"}]
        elif out.get("nullable") is True and isinstance(out.get("type"), str):
            out["type"] = [out.pop("type"), "null"]
            out.pop("nullable")
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@cache
def body_validator(path: str, method: str) -> Draft202012Validator:
    """A strict validator for the request body of one operation (path as in the spec, `{id}` included)."""
    spec = subset()
    ref = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    root = {"$ref": ref, "components": _strict(copy.deepcopy(spec["components"]))}
    return Draft202012Validator(root)


def body_errors(path: str, method: str, body: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in body_validator(path, method).iter_errors(body)
    ]


def query_errors(path: str, method: str, query: dict[str, str]) -> list[str]:
    """Unknown query parameters, and values outside an enum or above a maximum, as Apple answers them."""
    params = {p["name"]: p for p in subset()["paths"][path][method]["parameters"] if p["in"] == "query"}
    errors = []
    for name, raw in query.items():
        if name == "cursor":  # Apple's own paging token, carried by `links.next`
            continue
        if name not in params:
            errors.append(f"unknown parameter {name}")
            continue
        schema = params[name].get("schema", {})
        enum = (schema.get("items") or {}).get("enum") or schema.get("enum")
        values = raw.split(",") if schema.get("type") == "array" else [raw]
        errors += [f"{name}: {v!r} is not one of the allowed values" for v in values if enum and v not in enum]
        if schema.get("type") == "integer" and (not raw.isdigit() or int(raw) > schema.get("maximum", 10**9)):
            errors.append(f"{name}: {raw!r} is not an integer within the maximum")
    missing = [n for n, p in params.items() if p.get("required") and n not in query]
    return errors + [f"{n} is required" for n in missing]
