"""The whole training pipeline, run locally on the real data (kfp.local, one subprocess
per step), both branches of the gate, the compiled YAML run as such, and batch scoring
with the champion it promoted."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import COMPILED, run_cli, use_home

from creditrisk import orchestration
from creditrisk.contract import FEATURE_NAMES, ID_COLUMN, TARGET

pytestmark = pytest.mark.e2e

STEPS = ["ingest", "validate", "split", "train", "evaluate", "gate"]


def _registry() -> dict:
    from creditrisk.registry import show

    return show()


def test_training_pipeline_promotes_a_first_model(promoted_run, monkeypatch) -> None:
    summary = promoted_run.summary
    assert summary["promoted"] is True
    assert summary["model_version"] == "1"
    assert summary["champion_before"] is None
    assert [s["step"] for s in summary["steps"]] == [*STEPS, "register-and-promote"]
    assert all(s["status"] == "SUCCESS" and s["seconds"] > 0 for s in summary["steps"])
    m = summary["metrics"]
    assert 0.75 < m["test_roc_auc"] < 0.85 and 0 < m["test_brier"] < 0.2
    assert 0.7 < m["baseline_test_roc_auc"] < 0.85
    assert all(r.startswith("pass: ") for r in summary["gate"])
    assert "promoted: version 1 is @champion" in promoted_run.stderr

    # The registry holds exactly what the run says, with the run's artifacts.
    use_home(monkeypatch, promoted_run.home)
    reg = _registry()
    assert reg["aliases"] == {"champion": "1"}
    [version] = reg["versions"]
    assert version["tags"]["gate"] == "passed"
    assert float(version["tags"]["test_roc_auc"]) == pytest.approx(m["test_roc_auc"])

    from mlflow import MlflowClient

    from creditrisk.settings import configure_mlflow

    configure_mlflow()
    client = MlflowClient()
    run = client.get_run(version["run_id"])
    assert run.data.metrics["test_roc_auc"] == pytest.approx(m["test_roc_auc"])
    assert run.data.params["config.cv.folds"] == "2"
    assert run.data.params["pipeline.data_uri"].endswith(".csv")
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "evaluation.json", "model_card.md", "config.yaml", "plots",
            "data", "model", "reference"} <= logged

    # The champion loads and carries the held-out metrics in its metadata.
    from creditrisk.registry import load_model

    champion = load_model()
    assert champion.version == "1"
    assert champion.metadata.metrics["test_roc_auc"] == pytest.approx(m["test_roc_auc"])
    assert champion.scorer.fast


def test_pipeline_artifacts_for_the_kfp_ui(promoted_run) -> None:
    """Typed KFP artifacts: model card (Markdown), report (HTML), metrics, ROC curve."""
    run_dir = Path(promoted_run.summary["outputs_dir"])
    card = (run_dir / "evaluate" / "model_card").read_text()
    assert card.startswith("# Model card")
    assert "<img" in (run_dir / "evaluate" / "report").read_text()
    assert "all rules of the feature contract pass" in (
        run_dir / "validate" / "report").read_text()
    executor = json.loads((run_dir / "evaluate" / "executor_output.json").read_text())
    classification = executor["artifacts"]["classification"]["artifacts"][0]["metadata"]
    assert len(classification["confidenceMetrics"]) > 10
    matrix = classification["confusionMatrix"]["rows"]
    test_rows = len(pd.read_parquet(run_dir / "split" / "test_set"))
    assert sum(sum(r["row"]) for r in matrix) == test_rows


def test_compiled_yaml_runs_locally_and_gate_refuses_a_weak_model(
    promoted_run, real_data_path: Path, fast_config: Path, monkeypatch
) -> None:
    """pipelines/compiled/training.yaml, loaded as a component, run with a floor no model
    reaches: the gate fails, nothing is registered and @champion stays."""
    from kfp import components

    use_home(monkeypatch, promoted_run.home)
    pipeline = components.load_component_from_file(str(COMPILED / "training.yaml"))
    run = orchestration.run_local(
        pipeline,
        orchestration.training_arguments(data=real_data_path, config=fast_config,
                                         overrides={"gate": {"roc_auc": {"threshold": 0.99}}}),
        log_stream=open("/dev/null", "w"),  # noqa: SIM115
    )
    summary = orchestration.summarise_training(run)
    assert summary["promoted"] is False
    assert summary["model_version"] is None
    assert [s["step"] for s in summary["steps"]] == [*STEPS, "not-promoted"]
    assert "FAIL: roc_auc >= 0.99" in summary["gate"]
    assert summary["champion_before"] == "1"

    reg = _registry()
    assert reg["aliases"] == {"champion": "1"}
    assert [v["version"] for v in reg["versions"]] == ["1"]

    # The champion was scored on the candidate's test split: the same data and seed give
    # the same split as the promoting run, so its AUC there is the one it was promoted on.
    decision = json.loads(Path(run.raw_outputs["gate_decision"].path).read_text())
    promoted_dir = Path(promoted_run.summary["outputs_dir"])
    assert decision["test_rows"] == len(pd.read_parquet(promoted_dir / "split" / "test_set"))
    assert decision["champion_metrics"]["roc_auc"] == pytest.approx(
        promoted_run.summary["metrics"]["test_roc_auc"], abs=1e-9)


def test_batch_scoring_with_the_champion(promoted_run, real_data_path: Path, tmp_path: Path,
                                         monkeypatch) -> None:
    use_home(monkeypatch, promoted_run.home)
    clients = pd.read_csv(real_data_path, nrows=300)
    clients = clients.drop(columns=["default.payment.next.month"])
    src = tmp_path / "clients.csv"
    clients.to_csv(src, index=False)
    out = tmp_path / "scored" / "{date}" / "scored-{run_id}.csv"
    proc = run_cli("run", "batch-scoring", "--input", str(src), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    summary = result["summary"]
    assert summary["rows"] == 300 and summary["model_version"] == "1"
    assert sum(summary["risk_bands"].values()) == 300
    written = Path(summary["output"])
    assert "{" not in str(written) and written.exists()
    scored = pd.read_csv(written)
    assert list(scored.columns) == [ID_COLUMN, "probability", "decision", "risk_band",
                                    "model_version"]
    assert scored[ID_COLUMN].tolist() == clients["ID"].tolist()
    assert scored["probability"].between(0, 1).all()
    artifact = pd.read_parquet(result["scored_file"])
    assert artifact["probability"].tolist() == pytest.approx(scored["probability"].tolist())

    # Same probabilities as the champion scores in-process.
    from creditrisk.registry import load_model

    model = load_model()
    expected = model.predict_proba(clients.loc[:, list(FEATURE_NAMES)])
    assert scored["probability"].to_numpy() == pytest.approx(expected, abs=1e-12)
    assert TARGET not in scored
