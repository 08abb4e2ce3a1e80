"""Helpers of the pipeline tests (imported by the tests and conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

__all__ = ["COMPILED", "REPO", "free_port", "run_cli", "use_home"]

REPO = Path(__file__).resolve().parents[2]
COMPILED = REPO / "pipelines" / "compiled"


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """`creditrisk pipeline ARGS` as a user runs it, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "creditrisk.cli_pipeline", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point this test (and the pipeline steps it starts) at ``home``."""
    from creditrisk.settings import reset_settings

    monkeypatch.setenv("CREDITRISK_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings()


