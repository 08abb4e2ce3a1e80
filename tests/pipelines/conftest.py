"""Fixtures of the pipeline tests: a fast training config, the CLI as a subprocess, and
one promoted training run (the whole pipeline, locally, on the real data) shared by the
tests that need a champion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import FAST_CONFIG, run_cli


@pytest.fixture(scope="session")
def fast_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "fast.yaml"
    path.write_text(FAST_CONFIG)
    return path


@dataclass
class PromotedRun:
    home: Path
    summary: dict[str, Any]
    stderr: str


@pytest.fixture(scope="session")
def promoted_run(tmp_path_factory: pytest.TempPathFactory, real_data_path: Path,
                 fast_config: Path) -> Iterator[PromotedRun]:
    """`creditrisk pipeline run training` on the real data file, in a fresh
    embedded home (no champion yet): the gate passes and version 1 becomes champion."""
    from creditrisk.settings import reset_settings

    home = tmp_path_factory.mktemp("promoted-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDITRISK_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        reset_settings()
        proc = run_cli("run", "training", "--data", str(real_data_path),
                       "--config", str(fast_config))
    reset_settings()
    assert proc.returncode == 0, proc.stderr[-4000:]
    yield PromotedRun(home=home, summary=json.loads(proc.stdout), stderr=proc.stderr)
