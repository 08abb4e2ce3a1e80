"""Rendered manifests, shared by the deployment tests (rendered once a session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import OVERLAYS, manifests_copy, render_chart, render_overlay


@pytest.fixture(scope="session")
def manifests_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return manifests_copy(tmp_path_factory.mktemp("manifests"))


@pytest.fixture(scope="session")
def rendered(manifests_dir: Path) -> dict[str, str]:
    """Every overlay and the chart (default values), rendered: name -> YAML stream."""
    out = {f"overlay:{o}": render_overlay(manifests_dir, o) for o in OVERLAYS}
    out["chart"] = render_chart()
    return out
