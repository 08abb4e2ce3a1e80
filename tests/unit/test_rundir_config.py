"""The run directory's layout and reference sample; config overrides and the packaged
default config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditrisk.config import (
    TrainConfig,
    default_config_path,
    load_config,
    parse_assignments,
    parse_overrides,
)
from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.errors import ConfigError
from creditrisk.rundir import REFERENCE_ARTIFACT, RunDir, reference_sample
from tests.helpers import REPO
from tests.synthetic import synthetic_frame

pytestmark = pytest.mark.unit


def test_reference_sample_is_the_contract_columns_and_target() -> None:
    train = synthetic_frame(300, seed=1)
    ref = reference_sample(train, max_rows=1000, seed=0)
    assert list(ref.columns) == [*FEATURE_NAMES, TARGET]
    assert len(ref) == len(train)
    pd.testing.assert_frame_equal(ref, train.loc[:, [*FEATURE_NAMES, TARGET]]
                                  .reset_index(drop=True))


def test_reference_sample_is_bounded_and_stratified() -> None:
    train = synthetic_frame(2000, seed=2)
    ref = reference_sample(train, max_rows=500, seed=0)
    assert len(ref) == 500
    assert ref[TARGET].mean() == pytest.approx(train[TARGET].mean(), abs=0.005)
    assert reference_sample(train, max_rows=500, seed=0).equals(ref)  # reproducible


def test_run_dir_layout_and_logged_artifacts(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run").create()
    assert run.reference == run.root / REFERENCE_ARTIFACT
    run.write_metrics({"test_roc_auc": 0.78})
    run.write_config(TrainConfig().resolved())
    run.write_reference(synthetic_frame(200, seed=3), max_rows=100, seed=1)
    assert run.read_metrics() == {"test_roc_auc": 0.78}
    assert TrainConfig.model_validate(run.read_config()) == TrainConfig()
    assert len(pd.read_parquet(run.reference)) == 100
    logged = {dest: path for path, dest in run.artifacts()}
    # only what exists is logged; the reference under the agreed artifact folder
    assert logged == {None: run.config, "reference": run.reference}
    # the frozen bins go beside the reference sample, into the same artifact folder
    from creditrisk.rundir import REFERENCE_BINS_ARTIFACT
    from creditrisk.stability import freeze_bins

    ref = pd.read_parquet(run.reference)
    run.write_reference_bins(freeze_bins(ref, np.linspace(0, 1, len(ref))))
    assert run.reference_bins == run.root / REFERENCE_BINS_ARTIFACT
    assert (run.reference_bins, "reference") in run.artifacts()


def test_packaged_default_config_is_package_data_and_the_built_in_default() -> None:
    path = default_config_path()
    assert path.is_file()
    assert load_config(None) == load_config(path) == TrainConfig()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["creditrisk"]
    package = REPO / "src" / "creditrisk"
    for pattern in patterns:  # every package-data pattern names files that exist
        assert list(package.glob(pattern)), pattern


def test_overrides_merge_into_the_config() -> None:
    cfg = load_config(None, {"gate": {"roc_auc": {"threshold": 0.7}}, "cv": {"folds": 3}})
    assert cfg.gate["roc_auc"].threshold == 0.7
    assert cfg.gate["brier"] == TrainConfig().gate["brier"]
    assert cfg.cv.folds == 3
    assert parse_overrides('{"gate": {"brier": {"threshold": 0.2}}}') == {
        "gate": {"brier": {"threshold": 0.2}}}
    assert parse_overrides("") == {} and parse_overrides(None) == {}
    assert parse_assignments(["gate.roc_auc.threshold=0.78", "gate.brier.threshold=0.2",
                              "search.enabled=false"]) == {
        "gate": {"roc_auc": {"threshold": 0.78}, "brier": {"threshold": 0.2}},
        "search": {"enabled": False}}
    cfg = load_config(None, parse_assignments(["gate.roc_auc.threshold=0.78",
                                               "gate.pr_auc=null", "gate.ks.threshold=0.3"]))
    assert [n for n, _ in cfg.gate.items()] == ["roc_auc", "brier", "ks"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"gate": {"pr_auc": {"threshold": 2.0}}}, "gate.pr_auc.threshold"),
    ({"gate": {"roc": {"threshold": 0.7}}}, "gate.roc"),
    ({"gate": {"min_pr_auc": 0.7}}, "gate.min_pr_auc is gate.pr_auc.threshold"),
])
def test_bad_overrides_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"with overrides .*{message}"):
        load_config(None, overrides)


def test_bad_assignments_and_override_text() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignments(["gate.roc_auc.threshold"])
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_overrides("0.7")


def test_input_example_is_the_contracts_example_and_valid() -> None:
    from creditrisk.contract import FEATURES
    from creditrisk.model import input_example
    from creditrisk.validation import validate_frame

    example = input_example()
    assert list(example.columns) == list(FEATURE_NAMES)
    assert example.iloc[0].tolist() == [f.example for f in FEATURES]
    assert validate_frame(example, require_target=False).ok


def test_an_explicit_tracking_uri_leaves_the_environment_alone(tmp_path: Path) -> None:
    """Library calls do not write os.environ: the MLflow URI is set by an explicit call."""
    import os

    import mlflow

    from creditrisk.settings import configure_mlflow, get_settings, registry_uri

    before = dict(os.environ)
    uri = f"sqlite:///{tmp_path / 'explicit.db'}"
    assert configure_mlflow(uri) == uri
    assert mlflow.get_tracking_uri() == uri and get_settings().tracking_uri == uri
    assert dict(os.environ) == before
    assert configure_mlflow() == uri  # the process keeps the URI it was given
    assert dict(os.environ) == before
    name = get_settings().model_name
    assert registry_uri("m", version=3) == "models:/m/3"
    assert get_settings().version_uri(3) == registry_uri(name, version=3) == f"models:/{name}/3"
    assert get_settings().champion_uri == registry_uri(name, alias="champion")
    with pytest.raises(ValueError, match="a version or an alias"):
        registry_uri(name)


def test_train_and_pipeline_run_share_the_packaged_default_config(tmp_path: Path) -> None:
    """`creditrisk train` (load_config(None)) and `creditrisk pipeline run training`
    (training_arguments without --config) read the same file, wherever they run."""
    import os

    from creditrisk.orchestration import training_arguments

    data = tmp_path / "data.csv"
    data.write_text("x\n")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)  # not the repository: no configs/ folder here
        args = training_arguments(data=data)
    finally:
        os.chdir(cwd)
    assert Path(args["config"]) == default_config_path().resolve()
    assert args["config_overrides"] == ""
    assert training_arguments(data=data, overrides={"gate": {"brier": {"threshold": 0.2}}})[
        "config_overrides"] == '{"gate": {"brier": {"threshold": 0.2}}}'
