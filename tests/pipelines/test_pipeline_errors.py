"""Bad parameters fail in the first step that can tell, with a clear message in the step
log and a non-zero exit; nothing gets registered. Plus the stages' own refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import free_port, run_cli, use_home

from creditrisk import stages
from creditrisk.errors import ConfigError, DataError, RegistryError

MARKER = stages.ERROR_MARKER


def _assert_failed_in_ingest(proc, *expected: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stdout == ""
    # the step log says it, as one line, and the command repeats it as its error
    step_lines = [ln for ln in proc.stderr.splitlines() if MARKER in ln]
    assert len(step_lines) == 1 and "[ingest]" in step_lines[0], proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pipeline creditrisk-training failed in step 'ingest': ")
    for text in expected:
        assert text in step_lines[0] and text in last
    assert "Traceback" not in proc.stderr
    # the run stopped there: no later step started
    assert "Executing task 'validate'" not in proc.stderr.replace("\x1b[96m", "").replace(
        "\x1b[0m", "")


def _nothing_registered() -> None:
    from creditrisk.registry import champion_version, show

    assert champion_version() is None
    with pytest.raises(RegistryError):
        show()


@pytest.mark.integration
def test_missing_data_file(tmp_path: Path, fast_config: Path) -> None:
    missing = tmp_path / "nope.csv"
    proc = run_cli("run", "training", "--data", str(missing), "--config",
                   str(fast_config))
    _assert_failed_in_ingest(proc, f"{missing}: no such file")
    _nothing_registered()


@pytest.mark.integration
def test_bad_config(tmp_path: Path, real_data_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cv:\n  folds: 1\nsearch:\n  enabeld: true\n")
    proc = run_cli("run", "training", "--data", str(real_data_path), "--config",
                   str(bad))
    _assert_failed_in_ingest(proc, f"{bad}: invalid config", "cv.folds",
                             "search.enabeld: Extra inputs are not permitted")
    _nothing_registered()


@pytest.mark.integration
def test_unreachable_tracking_server(real_data_path: Path, fast_config: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("run", "training", "--data", str(real_data_path), "--config",
                   str(fast_config), "--tracking-uri", uri)
    _assert_failed_in_ingest(proc, f"MLflow tracking server {uri} is not reachable")


@pytest.mark.integration
def test_batch_scoring_without_a_champion(tmp_path: Path, real_data_path: Path) -> None:
    proc = run_cli("run", "batch-scoring", "--input", str(real_data_path))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pipeline creditrisk-batch-scoring failed in step "
                           "'shard-input': ")
    assert "models:/credit-default@champion" in last


@pytest.mark.unit
def test_cli_refuses_mixed_or_missing_options(tmp_path: Path) -> None:
    proc = run_cli("run", "batch-scoring")
    assert proc.returncode == 2 and "needs --input" in proc.stderr
    proc = run_cli("run", "training", "--input", "x.csv", "--data", "y.csv")
    assert proc.returncode == 2 and "options of batch-scoring" in proc.stderr
    proc = run_cli("run", "training", "--no-local", "--data", "y.csv")
    assert proc.returncode == 2 and "No such option: --no-local" in proc.stderr
    proc = run_cli("submit", "training", "--host", "http://127.0.0.1:9")
    assert proc.returncode == 2 and "needs --data" in proc.stderr


@pytest.mark.unit
def test_no_data_file_and_no_canonical_file() -> None:
    from creditrisk.settings import get_settings

    proc = run_cli("run", "training")
    assert proc.returncode == 2
    assert f"no data: {get_settings().canonical_data_path} does not exist" in proc.stderr
    assert "creditrisk data fetch" in proc.stderr


@pytest.mark.unit
def test_submit_to_an_unreachable_endpoint_is_a_clear_error(fast_config: Path) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("submit", "training", "--host", host, "--data", "s3://data/credit.csv",
                   "--config", str(fast_config), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot submit training to Kubeflow Pipelines at {host}" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------
# The stages' own checks (no subprocess)
# --------------------------------------------------------------------------------------


@pytest.mark.unit
def test_resolve_config_forms_and_threshold_overrides(tmp_path: Path) -> None:
    from creditrisk.config import GateConfig, TrainConfig

    assert stages.resolve_config("") == TrainConfig()
    inline = stages.resolve_config("seed: 7\ngate:\n  roc_auc: {threshold: 0.6}\n")
    assert inline.seed == 7 and inline.gate["roc_auc"].threshold == 0.6
    path = tmp_path / "c.yml"
    path.write_text("seed: 8\n")
    assert stages.resolve_config(str(path)).seed == 8
    over = stages.resolve_config("gate:\n  roc_auc: {threshold: 0.6}\n",
                                 '{"gate": {"brier": {"threshold": 0.2}}}')
    assert over.gate == GateConfig.model_validate({"roc_auc": {"threshold": 0.6},
                                                   "brier": {"threshold": 0.2}})
    assert stages.resolve_config("", {"gate": {"brier": {"threshold": 0.2}}}).gate[
        "brier"].threshold == 0.2

    with pytest.raises(ConfigError, match="the config parameter: invalid config: seed"):
        stages.resolve_config("seed: many\n")
    with pytest.raises(ConfigError, match="no such config file"):
        stages.resolve_config(str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match=r"overrides .*invalid config: .*gate.pr_auc.thresh"):
        stages.resolve_config("", '{"gate": {"pr_auc": {"threshold": 2.0}}}')
    with pytest.raises(ConfigError, match="config overrides must be a mapping"):
        stages.resolve_config("", "[0.7]")


@pytest.mark.unit
def test_step_errors_exit_2_with_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc, stages.step_errors("split"):
        raise DataError("test_size must be in (0, 1), got 2")
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"{MARKER} [split] test_size must be in (0, 1), got 2\n"


@pytest.mark.integration
def test_register_refuses_a_failed_gate_and_a_moved_champion(
    promoted_run, tmp_path: Path, monkeypatch
) -> None:
    """No half-registered model: the register step re-checks the gate's verdict and that
    @champion is still the version the gate judged against; refusing, it registers
    nothing."""
    use_home(monkeypatch, promoted_run.home)
    run_dir = Path(promoted_run.summary["outputs_dir"])
    decision = json.loads((run_dir / "gate" / "decision").read_text())
    assert decision["passed"] and decision["champion_version"] is None

    from creditrisk.registry import show

    before = show()
    kwargs: dict[str, Any] = {"run_dir": run_dir / "evaluate" / "run"}
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(decision))  # judged with no champion; now there is one
    with pytest.raises(RegistryError, match="@champion moved from none to 1"):
        stages.register_and_promote(decision_path=stale, **kwargs)
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({**decision, "passed": False, "champion_version": "1"}))
    with pytest.raises(RegistryError, match="the gate did not pass"):
        stages.register_and_promote(decision_path=failed, **kwargs)
    assert show() == before


@pytest.mark.integration
def test_ingest_rejects_a_file_that_breaks_the_contract(tmp_path: Path,
                                                        real_data_path: Path) -> None:
    rows = real_data_path.read_text().splitlines()[:50]
    broken = tmp_path / "broken.csv"
    header = rows[0].split(",")
    age = header.index('"AGE"')
    cells = rows[3].split(",")
    cells[age] = "240"
    broken.write_text("\n".join([rows[0], *rows[1:3], ",".join(cells), *rows[4:]]) + "\n")
    with pytest.raises(DataError, match=r"column 'AGE': rule .* fails for 1 row"):
        stages.ingest(data_uri=str(broken), dataset_path=tmp_path / "out.parquet",
                      config_path=tmp_path / "config.yaml")
    assert not (tmp_path / "out.parquet").exists()
