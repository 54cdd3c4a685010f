"""manifest.yml validates against Slack's manifest schema and matches what the app registers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from commands.slash import COMMAND

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "tests" / "specs" / "slack-manifest"
REMOTE = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"


def _validator() -> Draft7Validator:
    top = json.loads((SCHEMAS / "manifest.schema.json").read_text())
    resources = [
        (REMOTE + name, Resource.from_contents(json.loads((SCHEMAS / name).read_text())))
        for name in ("manifest.schema.1.0.0.json", "manifest.schema.2.0.0.json")
    ]
    return Draft7Validator(top, registry=Registry().with_resources(resources))


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slack_schema() -> None:
    errors = sorted(_validator().iter_errors(manifest()), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors]


def test_schema_really_rejects_a_broken_manifest() -> None:
    broken = manifest()
    broken["features"]["slash_commands"][0].pop("description")
    broken["unknown_top_level_key"] = True
    assert list(_validator().iter_errors(broken))


def test_command_and_events_match_the_app() -> None:
    data = manifest()
    commands = [c["command"] for c in data["features"]["slash_commands"]]
    assert commands == [COMMAND]
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert "app_home_opened" in data["settings"]["event_subscriptions"]["bot_events"]
    urls = [
        data["features"]["slash_commands"][0]["url"],
        data["settings"]["interactivity"]["request_url"],
        data["settings"]["event_subscriptions"]["request_url"],
    ]
    assert all(u.endswith("/slack/events") for u in urls)


def test_vendored_schema_is_the_shared_reference() -> None:
    """The schema copy in tests/specs is byte for byte the project's reference copy, where that is present."""
    shared = ROOT.parent / "shared" / "reference" / "specs" / "slack-manifest"
    names = sorted(p.name for p in SCHEMAS.iterdir())
    assert names == ["LICENSE", "manifest.schema.1.0.0.json", "manifest.schema.2.0.0.json", "manifest.schema.json"]
    if shared.is_dir():
        for name in names:
            assert (SCHEMAS / name).read_bytes() == (shared / name).read_bytes(), name
