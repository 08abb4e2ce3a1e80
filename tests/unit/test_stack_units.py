"""The local stack's pieces that need no server: the supervisord config, the layout,
the Prometheus and Grafana files, and the CLI's answers when there is nothing to act on
(the whole flow is tests/e2e/test_stack.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from creditrisk.cli import app
from creditrisk.settings import get_settings, reset_settings
from creditrisk.stack import observability
from creditrisk.stack.layout import StackLayout
from creditrisk.stack.supervisor import Program, render_conf

pytestmark = pytest.mark.unit


def _layout(tmp_path: Path) -> StackLayout:
    return StackLayout.from_settings(get_settings(), state_dir=tmp_path / "stack")


def test_supervisord_conf_escapes_and_groups(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    conf = render_conf(layout, [Program("mlflow", ["mlflow", "server", "--x", "a b%c"],
                                        priority=20)], {"K": "v%1"})
    assert 'environment=K="v%%1"' in conf
    assert "command=mlflow server --x 'a b%%c'" in conf
    section = conf.split("[program:mlflow]")[1]
    for line in ("autostart=false", "stopasgroup=true", "killasgroup=true",
                 f"stdout_logfile={layout.logs / 'mlflow.log'}"):
        assert line in section
    assert f"serverurl=unix://{layout.socket}" in conf


def test_socket_path_stays_short(tmp_path: Path) -> None:
    deep = StackLayout.from_settings(get_settings(), state_dir=tmp_path / ("x" * 120))
    assert len(str(deep.socket)) < 100
    assert deep.socket != _layout(tmp_path).socket


def test_ports_and_state_folder_come_from_settings(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITRISK_MLFLOW_PORT", "15123")
    monkeypatch.setenv("CREDITRISK_STACK_DIR", str(tmp_path / "elsewhere"))
    reset_settings()
    layout = StackLayout.from_settings(get_settings())
    assert layout.url("mlflow") == "http://127.0.0.1:15123"
    assert layout.root == (tmp_path / "elsewhere").resolve()
    env = layout.environment()
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15123"
    assert env["CREDITRISK_PREDICTION_LOG_URI"] == "s3://creditrisk/prediction-log"
    external = StackLayout.from_settings(get_settings(), s3_endpoint="http://minio:9000/")
    assert external.url("s3") == "http://minio:9000"
    assert "s3" not in external.local_ports(with_prometheus=True)


def test_prometheus_config_scrapes_the_stack_and_loads_the_rules(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    rules = observability.rule_files()
    cfg = yaml.safe_load(observability.write_prometheus_config(layout, rules).read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert set(observability.scrape_jobs()) <= set(targets)
    transformer = targets[observability.scrape_jobs()[0]]
    assert transformer == [f"127.0.0.1:{layout.ports['transformer']}"]
    assert cfg["rule_files"] == [str(p) for p in rules]


def test_grafana_provisioning(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    g = observability.write_grafana_provisioning(layout)
    ds = yaml.safe_load((layout.grafana_dir / "datasources" / "creditrisk.yaml").read_text())
    assert ds["datasources"][0]["url"] == layout.url("prometheus")
    prov = yaml.safe_load((layout.grafana_dir / "dashboards" / "creditrisk.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == str(observability.dashboards_dir())
    assert f"{layout.grafana_dir}:/etc/grafana/provisioning" in g["docker_command"]


def test_busy_port_is_named_before_anything_starts(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        monkeypatch.setenv("CREDITRISK_MLFLOW_PORT", str(port))
        reset_settings()
        r = CliRunner().invoke(app, ["stack", "up", "--config", "configs/quick.yaml"])
    assert r.exit_code == 2
    assert f"{port} (mlflow: CREDITRISK_MLFLOW_PORT)" in r.output
    assert not (get_settings().stack_state_dir / "supervisord.conf").exists()


def test_status_down_logs_without_a_stack() -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["stack", "status"])
    assert r.exit_code == 1 and "not running" in r.output
    r = runner.invoke(app, ["stack", "status", "--json"])
    assert r.exit_code == 0 and '"running": false' in r.output
    r = runner.invoke(app, ["stack", "down"])
    assert r.exit_code == 0 and "not running" in r.output
    r = runner.invoke(app, ["stack", "logs", "transformer"])
    assert r.exit_code == 2 and "no log 'transformer'" in r.output


def test_summary_says_when_a_job_could_not_judge() -> None:
    import io

    from rich.console import Console

    from creditrisk.cli_stack import render_summary

    buf = io.StringIO()
    facts = {"urls": {"mlflow": "http://127.0.0.1:5000", "endpoint": "http://127.0.0.1:8080"},
             "drift": {"dataset_drift": None, "exit_code": 3,
                       "message": "too few rows to compare (current: 300 row(s))"},
             "performance": {"exit_code": 0, "labelled_rows": 300, "roc_auc": 0.8,
                             "json": "p.json", "message": None},
             "missing": ["prometheus not found: ..."], "logs": "logs"}
    render_summary(facts, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "not judged: too few rows to compare (current: 300 row(s))" in text
    assert "no dataset drift" not in text
    assert "labelled_rows 300, roc_auc 0.8000" in text
    assert "missing: prometheus not found" in text
