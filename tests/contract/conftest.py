"""Collects every provider's harness (`tests/contract/harness_<provider>.py`) and hands them to the suite."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.harness import Harness

NAMES = sorted(p.stem.removeprefix("harness_") for p in Path(__file__).parent.glob("harness_*.py"))


@pytest.fixture(params=NAMES)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    module = importlib.import_module(f"tests.contract.harness_{request.param}")
    async with module.harness(tmp_path) as ready:
        yield ready
