"""Fixtures for the chart tests; the helpers behind them live in chart_helm.py (a unique module name,
so test modules can import them whatever other conftest.py files the suite loads)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from chart_helm import CHART, SCENARIOS, Helm, clear_render_cache, helm_binary


@pytest.fixture(scope="session")
def helm() -> Iterator[Helm]:
    yield Helm(helm_binary())
    clear_render_cache()


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def chart_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded
