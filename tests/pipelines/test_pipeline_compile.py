"""The compiled pipelines: golden files, and what the specs promise (one image, nothing
installed at run time, caching policy, credentials only from Secrets)."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import COMPILED_FILES

REPO = Path(__file__).resolve().parents[2]
COMPILED = REPO / "pipelines" / "compiled"

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def recompiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every pipeline compiled afresh, in a clean process with default settings."""
    out = tmp_path_factory.mktemp("compiled")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITRISK_")}
    proc = subprocess.run(
        [sys.executable, "-m", "creditrisk.cli_pipeline", "compile", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_golden_files_are_the_complete_set() -> None:
    assert sorted(p.name for p in COMPILED.glob("*.yaml")) == sorted(
        f"{stem}.yaml" for stem in COMPILED_FILES)


@pytest.mark.parametrize("stem", sorted(COMPILED_FILES))
def test_compiled_pipeline_matches_golden_file(recompiled: Path, stem: str) -> None:
    golden = (COMPILED / f"{stem}.yaml").read_text()
    fresh = (recompiled / f"{stem}.yaml").read_text()
    if fresh != golden:
        diff = "".join(list(difflib.unified_diff(
            golden.splitlines(keepends=True), fresh.splitlines(keepends=True),
            f"pipelines/compiled/{stem}.yaml", "recompiled"))[:80])
        pytest.fail(f"pipelines/compiled/{stem}.yaml is stale; run `make pipelines` "
                    f"(creditrisk pipeline compile).\n{diff}")


def _spec(stem: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    docs = list(yaml.safe_load_all((COMPILED / f"{stem}.yaml").read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else None)


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of the pipeline, nested DAGs (the gate's branches) included."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


@pytest.mark.parametrize("stem", sorted(COMPILED_FILES))
def test_every_step_runs_the_training_image_and_installs_nothing(stem: str) -> None:
    from creditrisk.settings import Settings

    spec, _ = _spec(stem)
    executors = spec["deploymentSpec"]["executors"]
    assert executors
    for name, ex in executors.items():
        container = ex["container"]
        assert container["image"] == Settings().train_image, name
        command = " ".join(container["command"])
        assert "pip install" not in command, f"{name} installs packages at run time"
        assert "kfp.dsl.executor_main" in command


def test_training_dag_and_caching_policy() -> None:
    spec, _ = _spec("training")
    tasks = _tasks(spec)
    assert set(tasks) >= {"ingest", "validate", "split", "train", "evaluate", "gate",
                          "register-and-promote", "not-promoted"}
    caching = {name: t.get("cachingOptions", {}).get("enableCache", False)
               for name, t in tasks.items() if "componentRef" in t and name in {
                   "ingest", "validate", "split", "train", "evaluate", "gate",
                   "register-and-promote", "not-promoted"}}
    assert caching == {
        "ingest": False, "validate": True, "split": True, "train": False,
        "evaluate": True, "gate": False, "register-and-promote": False,
        "not-promoted": False,
    }
    # register and promote only in the gate-passed branch, judged on the gate's output
    branches = {t["taskInfo"]["name"]: t for t in tasks.values() if "triggerPolicy" in t}
    assert set(branches) == {"gate-passed", "gate-failed"}
    assert branches["gate-passed"]["triggerPolicy"]["condition"].endswith(
        "['pipelinechannel--gate-passed'] == true")
    assert branches["gate-failed"]["triggerPolicy"]["condition"].startswith("!(")

    def branch_tasks(name: str) -> list[str]:
        ref = branches[name]["componentRef"]["name"]
        return list(spec["components"][ref]["dag"]["tasks"])

    assert branch_tasks("gate-passed") == ["register-and-promote"]
    assert branch_tasks("gate-failed") == ["not-promoted"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"data_uri", "config", "tracking_uri", "config_overrides"} <= set(params)
    # gate thresholds travel once, as config overrides: no per-threshold parameter
    assert not {p for p in params if p.startswith(("min_", "max_"))}
    assert params["config_overrides"]["parameterType"] == "STRING"
    assert "isOptional" not in params["data_uri"]


@pytest.mark.parametrize("stem,steps", [
    ("training-cluster", {"ingest", "gate", "register-and-promote"}),
    ("batch-scoring-cluster", {"shard-input", "score-shard", "gather-scores"}),
])
def test_cluster_variant_takes_credentials_from_secrets(stem: str, steps: set[str]) -> None:
    spec, platform = _spec(stem)
    assert platform is not None, "the cluster variant has a Kubernetes platform spec"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secured = {name.removeprefix("exec-") for name in executors}
    assert secured == steps
    for name, cfg in executors.items():
        envs = {kv["envVar"] for s in cfg["secretAsEnv"] for kv in s["keyToEnv"]}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_URI"} <= envs
        names = {s["secretNameParameter"]["componentInputParameter"].removeprefix(
            "pipelinechannel--") for s in cfg["secretAsEnv"]}
        assert names == {"s3_secret", "mlflow_secret"}, name
    # no credential literal anywhere in the deployment spec
    for ex in spec["deploymentSpec"]["executors"].values():
        assert not ex["container"].get("env"), "credentials only from Secrets"


def test_portable_variant_has_no_platform_spec() -> None:
    for stem in ("training", "batch-scoring"):
        _, platform = _spec(stem)
        assert platform is None
