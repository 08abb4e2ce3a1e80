"""Training on the real data, and the MLflow registry: embedded store and a real
`mlflow server` process with S3 (moto) artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditrisk.config import GateConfig, load_config
from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.errors import RegistryError
from creditrisk.rundir import REFERENCE_ARTIFACT
from creditrisk.settings import reset_settings
from tests.helpers import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
OPEN_GATE = GateConfig.model_validate({
    "roc_auc": {"threshold": 0.5, "max_absolute_worsening": 0.05},
    "pr_auc": {"threshold": 0.0}, "brier": {"threshold": 1.0}})
SHUT_GATE = GateConfig.model_validate({
    "roc_auc": {"threshold": 0.99, "max_absolute_worsening": 0.05},
    "pr_auc": {"threshold": 0.0}, "brier": {"threshold": 1.0}})


def test_quick_training_on_real_data(trained_run) -> None:
    m = trained_run.metrics
    for key in ("test_roc_auc", "test_pr_auc", "test_brier", "cv_roc_auc_mean",
                "baseline_test_roc_auc", "threshold", "train_seconds"):
        assert key in m
    # even the quick config (no search) clears most of the quality bar
    assert m["test_roc_auc"] >= 0.775 and m["cv_roc_auc_mean"] >= 0.775
    assert m["test_brier"] <= 0.137
    assert m["test_roc_auc"] > m["baseline_test_roc_auc"]
    assert 0.05 < m["threshold"] < 0.5
    out = trained_run.out_dir
    for name in ("metrics.json", "model_card.md", "evaluation.json", "config.yaml",
                 "plots/roc_curve.png", "plots/pr_curve.png", "plots/calibration_curve.png",
                 "plots/confusion_matrix.png", "model/MLmodel", "model/model.skops"):
        assert (out / name).exists(), name
    card = (out / "model_card.md").read_text()
    assert "Fairness slices" in card and "| SEX | 2 |" in card
    assert json.loads((out / "metrics.json").read_text()) == m


@pytest.mark.slow
def test_full_config_meets_the_quality_bar(real_data_path, tmp_path) -> None:
    """The champion's bar, with the repository's full config (search included)."""
    from creditrisk.data import load_dataset
    from creditrisk.training import run_training

    run = run_training(config=load_config(REPO / "configs" / "train.yaml"),
                       data=load_dataset(real_data_path), out_dir=tmp_path / "full")
    m = run.metrics
    print(json.dumps(m, indent=1))
    assert m["cv_roc_auc_mean"] >= 0.785
    assert m["test_roc_auc"] >= 0.780
    assert m["test_pr_auc"] >= 0.555
    assert m["test_brier"] <= 0.135


def _register_and_gate_cycle(trained_run) -> None:
    import mlflow

    from creditrisk import registry

    test = pd.read_parquet(trained_run.test_path)
    first = registry.log_and_register(out_dir=trained_run.out_dir, run_name="first")
    assert first.version == "1" and first.model_uri == "models:/credit-default/1"
    assert registry.champion_version() is None
    with pytest.raises(RegistryError, match="no @champion yet"):
        registry.download_reference()

    # the reference sample: the training split's contract columns and target
    version, path = registry.download_reference("1")
    reference = pd.read_parquet(path)
    train = pd.read_parquet(trained_run.run_dir.train_split)
    assert version == "1" and list(reference.columns) == [*FEATURE_NAMES, TARGET]
    assert len(reference) == len(train)
    assert reference[TARGET].sum() == train[TARGET].sum()

    d1 = registry.promote(version="1", gate=OPEN_GATE)  # test set: the run's own split
    assert d1.promoted and d1.champion_version is None
    assert registry.champion_version() == "1"
    assert registry.download_reference()[0] == "1"

    # an alias is resolved once; the model is fetched by the version it resolved to
    fetched: list[str] = []
    download = mlflow.artifacts.download_artifacts

    def recording(*args, **kwargs):
        fetched.append(kwargs.get("artifact_uri") or args[0])
        return download(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mlflow.artifacts, "download_artifacts", recording)
        champion = registry.load_model()  # models:/credit-default@champion
    assert fetched == ["models:/credit-default/1"]
    assert champion.version == "1" and champion.uri == "models:/credit-default@champion"
    X = test.loc[:, list(FEATURE_NAMES)]
    expected = trained_run.fit.model.predict_proba(X)[:, 1]
    assert np.abs(champion.predict_proba(X) - expected).max() < 1e-9

    second = registry.log_and_register(out_dir=trained_run.out_dir, run_name="second")
    before = registry.show()
    dry = registry.promote(version=second.version, gate=OPEN_GATE, test_data=test,
                           dry_run=True)
    assert dry.passed and not dry.promoted and dry.champion_version == "1"
    assert registry.show() == before  # a dry run writes nothing: no tag, no alias
    d2 = registry.promote(version=second.version, gate=SHUT_GATE, test_data=test)
    assert not d2.promoted and "FAIL: roc_auc >= 0.99" in d2.reasons
    assert d2.champion_metrics is not None  # the champion was scored on the same set
    assert d2.champion_metrics == pytest.approx(d2.candidate_metrics)
    assert registry.champion_version() == "1"

    d3 = registry.promote(version=second.version, gate=OPEN_GATE, test_data=test)
    assert d3.promoted and registry.champion_version() == "2"
    info = registry.show()
    assert info["aliases"] == {"champion": "2"}
    tags = {v["version"]: v["tags"] for v in info["versions"]}
    assert tags["2"]["gate"] == "passed" and "test_roc_auc" in tags["1"]

    assert registry.rollback() == ("2", "1")
    assert registry.champion_version() == "1"
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()

    # the champion's held-out figures, as the live-performance job reads them
    from creditrisk import metric_names as mn
    from creditrisk.monitoring.performance import champion_figures

    figures = champion_figures(None)
    assert figures is not None and figures["version"] == "1"
    assert set(figures["metrics"]) == set(mn.CLASSIFICATION)
    assert figures["metrics"][mn.ROC_AUC] == pytest.approx(trained_run.metrics[mn.TEST_ROC_AUC])
    assert figures["threshold"] == pytest.approx(trained_run.metrics[mn.THRESHOLD])
    with pytest.raises(RegistryError, match="no version 9"):
        registry.version_run_metrics("9")


def test_registry_cycle_on_the_embedded_store(trained_run) -> None:
    _register_and_gate_cycle(trained_run)


def test_registry_cycle_on_a_real_mlflow_server_with_s3_artifacts(
    trained_run, mlflow_server, monkeypatch
) -> None:
    for k, v in mlflow_server.items():
        if k.isupper():
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server["tracking_uri"])
    reset_settings()
    _register_and_gate_cycle(trained_run)

    import boto3

    s3 = boto3.client("s3", endpoint_url=mlflow_server["endpoint"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow")["Contents"]]
    assert any(k.endswith("model/model.skops") for k in keys)
    assert any(k.endswith("plots/roc_curve.png") for k in keys)
    assert any(k.endswith(REFERENCE_ARTIFACT) for k in keys)


def _versions(n: int, tmp_path: Path) -> None:
    """``n`` bare versions of the settings' model (no run, no files: enough for aliases
    and tags)."""
    from creditrisk import registry
    from creditrisk.settings import get_settings

    client = registry.client()
    name = get_settings().model_name
    client.create_registered_model(name)
    for _ in range(n):
        client.create_model_version(name, source=str(tmp_path))


def _promote_after(barrier, version: str, previous: str) -> None:  # a child process
    from creditrisk import registry

    barrier.wait(timeout=120)
    registry.set_champion(version, previous=previous)


def test_concurrent_promotions_each_keep_their_history_entry(tmp_path) -> None:
    """Promotions in separate processes at the same moment: every entry is recorded (an
    entry is a tag of its own, no read-modify-write), and rollback walks them back."""
    import multiprocessing

    from creditrisk import registry

    _versions(4, tmp_path)
    registry.set_champion("1", previous=None)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_promote_after, args=(barrier, v, "1")) for v in "23"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0]
    assert registry.show()["champion_history"] == ["1", "1"]
    assert registry.champion_version() in {"2", "3"}

    # and within one process: entries in the order the alias moved
    for v in "234":
        registry.set_champion(v, previous=registry.champion_version())
    history = registry.show()["champion_history"]
    assert len(history) == 5 and history[-2:] == ["2", "3"]
    assert registry.rollback() == ("4", "3") and registry.rollback() == ("3", "2")
    assert len(registry.show()["champion_history"]) == 3


def test_rollback_reads_the_history_of_an_earlier_registry(tmp_path) -> None:
    """A registry whose history is the earlier JSON list tag: its entries are the oldest,
    and rollback takes them off once the newer entries are used up."""
    from creditrisk import registry
    from creditrisk.settings import get_settings

    _versions(3, tmp_path)
    name = get_settings().model_name
    registry.client().set_registered_model_tag(name, registry.HISTORY_TAG, json.dumps(["1"]))
    registry.set_champion("2", previous=None)
    registry.set_champion("3", previous="2")
    assert registry.show()["champion_history"] == ["1", "2"]
    assert registry.rollback() == ("3", "2")
    assert registry.rollback() == ("2", "1")
    assert registry.show()["champion_history"] == []
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()


def test_unreachable_tracking_server_fails_fast(monkeypatch) -> None:
    from creditrisk.registry import check_tracking_server

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    reset_settings()
    with pytest.raises(RegistryError, match="not reachable"):
        check_tracking_server(timeout_s=2)


def test_unreachable_registry_is_an_error_never_no_champion(trained_run,
                                                             monkeypatch) -> None:
    """A registry that does not answer is a RegistryError, never "no champion yet": the
    gate does not judge a candidate on the floors alone because the registry was down."""
    from creditrisk import registry
    from creditrisk.model import load_model_dir

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    reset_settings()
    with pytest.raises(RegistryError, match="cannot ask the registry"):
        registry.champion_version()
    with pytest.raises(RegistryError, match="cannot ask the registry"):
        registry.judge_candidate(candidate=load_model_dir(trained_run.model_dir),
                                 test=pd.read_parquet(trained_run.test_path), gate=OPEN_GATE)
    with pytest.raises(RegistryError, match="not reachable"):
        registry.promote(version="1", gate=OPEN_GATE)
    with pytest.raises(RegistryError, match="cannot ask the registry"):
        registry.show()  # not "holds no model"
    with pytest.raises(RegistryError, match="cannot read the registered model's history"):
        registry.rollback()


def test_batch_scoring(trained_run, tmp_path) -> None:
    from creditrisk.model import load_model_dir
    from creditrisk.scoring import score_file

    model = load_model_dir(trained_run.model_dir)
    test = pd.read_parquet(trained_run.test_path).drop(columns=[TARGET])
    test.to_csv(tmp_path / "clients.csv", index=False)
    summary = score_file(model, tmp_path / "clients.csv", tmp_path / "scored.parquet")
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert summary["rows"] == len(scored) == len(test)
    assert scored["ID"].tolist() == test["ID"].tolist()
    declined = scored["probability"] >= model.metadata.threshold
    assert (scored.loc[declined, "decision"] == "decline").all()
    assert set(scored["risk_band"]) <= {b["name"] for b in model.metadata.risk_bands}
