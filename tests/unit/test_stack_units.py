"""The local stack's pieces that need no server of the stack: the table of its servers
and the supervisord config made of it, the preflight, the layout, the Prometheus and
Grafana files, finding Prometheus' pages, the summary, the CLI's answers when there is
nothing to act on, and `install-system-deps.sh --only` (the whole flow, restarts
included, is tests/e2e/test_stack.py)."""

from __future__ import annotations

import dataclasses
import http.server
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from creditrisk.cli import app
from creditrisk.settings import get_settings, reset_settings
from creditrisk.stack import observability
from creditrisk.stack.layout import StackLayout
from creditrisk.stack.programs import NAMES, SERVER_RESTART, SERVERS
from creditrisk.stack.supervisor import Program, render_conf
from tests.helpers import REPO

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
                 "autorestart=false", "startretries=0",
                 f"stdout_logfile={layout.logs / 'mlflow.log'}"):
        assert line in section
    assert f"serverurl=unix://{layout.socket}" in conf


def test_the_table_names_every_server_once_and_each_comes_back(tmp_path: Path) -> None:
    layout = dataclasses.replace(_layout(tmp_path), challenger=str(tmp_path))
    assert NAMES == ("s3", "mlflow", "pushgateway", "prometheus", "predictor",
                     "challenger", "transformer")
    assert [s.order for s in SERVERS] == sorted(s.order for s in SERVERS)
    assert all(s.name in layout.ports for s in SERVERS)  # health checks on its own port
    tools = {"moto_server": "/x/moto_server", "mlflow": "/x/mlflow",
             "prometheus": "/x/prometheus", "pushgateway": "/x/prometheus-pushgateway"}
    conf = render_conf(layout, [s.program(layout, tools) for s in SERVERS], {})
    for s in SERVERS:
        section = conf.split(f"[program:{s.name}]")[1].split("[program:")[0]
        assert s.restart == SERVER_RESTART
        for line in ("autorestart=true", "startsecs=1", "startretries=3",
                     f"priority={s.order}", f"stdout_logfile={layout.log_file(s.name)}"):
            assert line in section, (s.name, line)
    # the transformer stops first (its last log segment goes to S3), S3 last
    waves = {s.name: s.stop_wave for s in SERVERS}
    assert waves["transformer"] < waves["predictor"] < waves["s3"]
    # the pushgateway keeps its metrics in the stack's own file, not Debian's shared one
    assert f"--persistence.file={layout.prometheus_dir / 'pushgateway.data'}" in conf


def test_preflight_leaves_out_what_it_cannot_run(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from creditrisk.stack import preflight

    layout = StackLayout.from_settings(get_settings(), state_dir=tmp_path / "stack",
                                       s3_endpoint="http://minio:9000")
    found = {"moto_server": None, "mlflow": "/x/mlflow", "prometheus": None,
             "pushgateway": "/x/pushgateway"}
    monkeypatch.setattr(preflight, "find_tools", lambda _layout: found)
    monkeypatch.setattr(preflight, "_check_ports", lambda *_a, **_k: None)
    checked = preflight.preflight(layout, None)
    assert [s.name for s in checked.servers] == ["mlflow", "predictor", "transformer"]
    assert not checked.with_prometheus
    assert checked.missing[0].startswith("prometheus not found: the stack runs without "
                                         "the Pushgateway and Prometheus")
    assert "install-system-deps.sh --only prometheus prometheus-pushgateway" in \
        checked.missing[0]
    found["mlflow"] = None
    with pytest.raises(preflight.StackError, match="the MLflow server cannot start"):
        preflight.preflight(layout, None)


def test_a_challenger_runs_only_when_asked_and_the_transformer_shadows_on_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from creditrisk.stack import preflight
    from creditrisk.stack.programs import server

    monkeypatch.setattr(preflight, "find_tools", lambda _layout: {"mlflow": "/x/mlflow"})
    monkeypatch.setattr(preflight, "_check_ports", lambda *_a, **_k: None)
    plain = StackLayout.from_settings(get_settings(), state_dir=tmp_path / "a",
                                      s3_endpoint="http://minio:9000")
    checked = preflight.preflight(plain, None)
    assert [s.name for s in checked.servers] == ["mlflow", "predictor", "transformer"]
    assert not any("challenger" in note for note in checked.missing)
    assert "challenger" not in plain.local_ports(with_prometheus=True)
    assert "--challenger_host" not in server("transformer").command(plain, {})
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shadowed = dataclasses.replace(plain, challenger=str(model_dir))
    assert [s.name for s in preflight.preflight(shadowed, None).servers] == [
        "mlflow", "predictor", "challenger", "transformer"]
    port = shadowed.ports["challenger"]
    assert shadowed.local_ports(with_prometheus=True)["challenger"] == port
    cmd = server("transformer").command(shadowed, {})
    assert cmd[cmd.index("--challenger_host") + 1] == f"127.0.0.1:{port}"
    cmd = server("challenger").command(shadowed, {})
    assert cmd[cmd.index("--model_dir") + 1] == str(model_dir)
    assert cmd[cmd.index("--http_port") + 1] == str(port)
    alias = StackLayout.from_settings(get_settings(), challenger="@challenger")
    cmd = server("challenger").command(alias, {})
    assert cmd[cmd.index("--model_uri") + 1] == f"models:/{alias.model_name}@challenger"
    assert alias.challenger == "@challenger"


def test_the_stack_imports_nothing_from_the_cli() -> None:
    code = ("import sys, creditrisk.stack.core; "
            "print(sorted(m for m in sys.modules if m.startswith('creditrisk.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


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
    assert set(observability.scrape_jobs(layout)) <= set(targets)
    transformer = targets[observability.scrape_jobs(layout)[0]]
    assert transformer == [f"127.0.0.1:{layout.ports['transformer']}"]
    assert cfg["rule_files"] == [str(p) for p in rules]


def test_prometheus_scrapes_the_challenger_only_on_a_stack_with_one(tmp_path: Path) -> None:
    from creditrisk.monitoring import names

    def jobs(layout: StackLayout) -> dict[str, list[str]]:
        cfg = yaml.safe_load(observability.write_prometheus_config(layout, []).read_text())
        return {j["job_name"]: j["static_configs"][0]["targets"]
                for j in cfg["scrape_configs"]}

    assert names.CHALLENGER_SERVER_JOB not in jobs(_layout(tmp_path))
    with_one = StackLayout.from_settings(get_settings(), state_dir=tmp_path / "stack",
                                         challenger="@challenger")
    assert jobs(with_one)[names.CHALLENGER_SERVER_JOB] == [
        f"127.0.0.1:{with_one.ports['challenger']}"]
    assert names.CHALLENGER_SERVER_JOB in observability.scrape_jobs(with_one)
    # the champion's predictor alerts and panels select jobs by these regexes
    assert not re.search(".*(predictor|transformer).*", names.CHALLENGER_SERVER_JOB)


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


class _PrometheusPages(http.server.BaseHTTPRequestHandler):
    """Answers 200 on ``served`` paths, 404 elsewhere (as Prometheus' UI does)."""

    served: frozenset[str] = frozenset()

    def do_GET(self) -> None:
        ok = self.path in self.served
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"<html></html>" if ok else b"404 page not found")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pages_server() -> Iterator[type[_PrometheusPages]]:
    handler = type("Handler", (_PrometheusPages,), {})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{srv.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("served, expected", [
    ({"/classic/targets", "/classic/alerts", "/classic/graph"}, "/classic/"),  # Debian 2.42
    ({"/targets", "/alerts", "/graph", "/classic/alerts"}, "/"),  # a release build
])
def test_prometheus_pages_are_those_it_serves(pages_server: type[_PrometheusPages],
                                              served: set[str], expected: str) -> None:
    pages_server.served = frozenset(served)
    url = pages_server.url  # type: ignore[attr-defined]
    assert observability.ui_pages(url) == {
        page: f"{url}{expected}{page}" for page in ("targets", "alerts", "graph")}
    pages_server.served = frozenset()
    assert observability.ui_pages(url) == {}


def test_summary_links_prometheus_pages_and_names_the_model_from_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from creditrisk.cli_stack import render_summary

    monkeypatch.setenv("CREDITRISK_MODEL_NAME", "other-model")
    reset_settings()
    prom = "http://127.0.0.1:9090"
    facts = {"urls": {"endpoint": "http://127.0.0.1:8080", "prometheus": prom},
             "prometheus_pages": {"targets": f"{prom}/classic/targets",
                                  "alerts": f"{prom}/classic/alerts"}, "logs": "logs"}
    buf = io.StringIO()
    render_summary(facts, Console(file=buf, width=300))
    text = buf.getvalue()
    assert (f"{prom}  (targets {prom}/classic/targets, alerts {prom}/classic/alerts)"
            in text)
    assert f"{prom}/alerts" not in text
    assert "/v1/models/other-model:predict" in text and "credit-default" not in text


def test_install_system_deps_only_selects_from_its_one_list() -> None:
    script = str(REPO / "scripts" / "install-system-deps.sh")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", script, *args], capture_output=True, text=True)

    everything = run("--list").stdout.split()
    assert {"prometheus", "prometheus-pushgateway", "postgresql"} <= set(everything)
    demo = run("--only", "prometheus", "prometheus-pushgateway", "--list")
    assert demo.returncode == 0 and demo.stdout.split() == ["prometheus",
                                                            "prometheus-pushgateway"]
    bad = run("--only", "grafana", "--list")
    assert bad.returncode == 2 and "'grafana' is not one of its packages" in bad.stderr
    assert run("--only").returncode == 2
