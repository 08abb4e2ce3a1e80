"""End to end: `creditrisk stack up` on the real data file brings up the whole system —
moto's S3 server, a real MLflow server, the KFP training pipeline through the local
runner, the KServe predictor and transformer, Prometheus with the alert rules and the
Pushgateway, a challenger predictor scoring every answered record in shadow, real
held-out traffic and the monitoring jobs (drift, live performance, champion/challenger)
— that each server comes back after it is killed, and that `creditrisk stack down`
leaves no process and no port behind.

Runs the CLI as a user would (subprocesses, free ports, its own state folder) with the
quick training config. One stack for the module; the tests run in file order and the
last one stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, free_port, require_binary, save_synthetic_model

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PORT_VARS = ("S3_PORT", "MLFLOW_PORT", "PROMETHEUS_PORT", "PUSHGATEWAY_PORT",
             "TRANSFORMER_HTTP_PORT", "TRANSFORMER_GRPC_PORT", "PREDICTOR_HTTP_PORT",
             "PREDICTOR_GRPC_PORT", "CHALLENGER_HTTP_PORT", "CHALLENGER_GRPC_PORT")


class Stack:
    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env = env
        self.home = home
        self.facts: dict[str, Any] = {}
        self.pids: set[int] = set()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "creditrisk", "stack", *args],
                              env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)

    def status(self) -> dict[str, Any]:
        r = self.cli("status", "--json")
        assert r.returncode == 0, r.stderr
        return dict(json.loads(r.stdout))

    @property
    def ports(self) -> dict[str, int]:
        return {v: int(self.env[f"CREDITRISK_{v}"]) for v in PORT_VARS}

    def url(self, var: str) -> str:
        return f"http://127.0.0.1:{self.ports[var]}"

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url("S3_PORT"),
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")

    def promql(self, query: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(f"{self.url('PROMETHEUS_PORT')}/api/v1/query?{q}",
                                    timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return list(body["data"]["result"])


def _stack_pids(supervisord_pid: int) -> set[int]:
    import psutil

    root = psutil.Process(supervisord_pid)
    return {root.pid, *(c.pid for c in root.children(recursive=True))}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, real_data_path: Path) -> Iterator[Stack]:
    require_binary("prometheus", "apt-get install prometheus")
    require_binary("prometheus-pushgateway", "apt-get install prometheus-pushgateway")
    require_binary("moto_server", "pip install 'moto[server]'")
    home = tmp_path_factory.mktemp("stack-home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CREDITRISK_", "MLFLOW_", "AWS_"))}
    env |= {"CREDITRISK_HOME": str(home), "COLUMNS": "200"}
    env |= {f"CREDITRISK_{v}": str(free_port()) for v in PORT_VARS}
    s = Stack(env, home)
    # a challenger that differs from the champion (a small model of synthetic data)
    challenger = save_synthetic_model(tmp_path_factory.mktemp("challenger") / "model",
                                      seed=1, trees=25)
    up = s.cli("up", "--config", str(REPO / "configs" / "quick.yaml"), "--data",
               str(real_data_path), "--records", "1500", "--challenger", str(challenger),
               "--json", timeout=840)
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stderr[-4000:]}"
        s.facts = json.loads(up.stdout)
        print(f"stack up: {s.facts['up_seconds']} s {s.facts['timings_s']}, peak RSS "
              f"{s.facts['peak_rss_mb']} MiB")
        s.pids = _stack_pids(int(s.facts["supervisord_pid"]))
        yield s
    finally:
        s.cli("down", timeout=180)


def test_status_reports_the_running_stack(stack: Stack) -> None:
    st = stack.status()
    assert st["running"] is True and st["phase"] == "up"
    states = {p["name"]: p["state"] for p in st["processes"]}
    assert states == dict.fromkeys(("s3", "mlflow", "pushgateway", "prometheus",
                                    "predictor", "transformer", "challenger"), "RUNNING")
    assert st["urls"]["challenger"] == stack.url("CHALLENGER_HTTP_PORT")
    assert st["urls"]["mlflow"] == stack.url("MLFLOW_PORT")
    assert st["urls"]["endpoint"] == stack.url("TRANSFORMER_HTTP_PORT")
    assert st["urls"]["prometheus"] == stack.url("PROMETHEUS_PORT")
    assert st["champion"]["version"] == stack.facts["champion"]["version"]
    assert st["missing"] == []
    # a second `stack up` says so instead of colliding on the ports
    again = stack.cli("up", "--config", str(REPO / "configs" / "quick.yaml"))
    assert again.returncode == 2
    assert "already running" in again.stderr


def test_champion_registered_in_mlflow_with_artifacts_in_s3(stack: Stack) -> None:
    from mlflow import MlflowClient

    uri = stack.url("MLFLOW_PORT")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("credit-default", "champion")
    assert str(mv.version) == stack.facts["champion"]["version"]
    assert stack.facts["training"]["promoted"] is True
    keys = [o["Key"] for page in stack.s3().get_paginator("list_objects_v2").paginate(
        Bucket="creditrisk", Prefix="mlflow-artifacts/") for o in page.get("Contents", [])]
    run_keys = [k for k in keys if f"/{mv.run_id}/" in k]
    assert any(k.endswith("model/MLmodel") for k in run_keys), run_keys[:20]
    assert any(k.endswith("data/test.parquet") for k in run_keys), run_keys[:20]


def test_v1_and_v2_predictions_return(stack: Stack) -> None:
    import httpx

    from creditrisk.model import input_example

    record = {k: (v.item() if hasattr(v, "item") else v)
              for k, v in input_example().iloc[0].to_dict().items()}
    version = stack.facts["champion"]["version"]
    with httpx.Client(base_url=stack.url("TRANSFORMER_HTTP_PORT"), timeout=10) as c:
        r1 = c.post("/v1/models/credit-default:predict", json={"instances": [record]})
        assert r1.status_code == 200, r1.text
        pred = r1.json()["predictions"][0]
        assert 0.0 <= pred["probability"] <= 1.0 and pred["model_version"] == version
        v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [float(v)]}
                         for k, v in record.items()]}
        r2 = c.post("/v2/models/credit-default/infer", json=v2)
        assert r2.status_code == 200, r2.text
        outputs = {o["name"]: o["data"] for o in r2.json()["outputs"]}
        assert outputs["probability"][0] == pytest.approx(pred["probability"], abs=1e-12)
    t = stack.facts["traffic"]
    assert t["requests"]["v1"] > 0 and t["requests"]["v2"] > 0
    assert t["records"]["v1"] + t["records"]["v2"] == 1500 == t["logged_records"]
    assert t["rejected_as_expected"] == 3 and t["failed"] == []


def test_prometheus_scrapes_servers_and_pushgateway(stack: Stack) -> None:
    from creditrisk.monitoring import names

    health = stack.status()["prometheus_targets"]
    for job in (names.TRANSFORMER_JOB, names.PREDICTOR_JOB, names.PUSHGATEWAY_JOB,
                names.CHALLENGER_SERVER_JOB):
        assert health.get(job) == "up", health
    served = stack.promql(f'sum(creditrisk_requests_total{{job="{names.TRANSFORMER_JOB}",'
                          'status="200"})')
    assert served and float(served[0]["value"][1]) > 0
    # the traffic is a stream Prometheus sees growing: rates and increases are not empty
    grew = stack.promql(f'sum(increase(creditrisk_requests_total{{job="{names.TRANSFORMER_JOB}"'
                        ',status="200"}[10m]))')
    assert grew and float(grew[0]["value"][1]) > 0
    assert stack.promql(f'creditrisk_requests_total{{job="{names.PREDICTOR_JOB}"}}')
    # the challenger answered the shadow calls; the transformer counted them
    assert stack.promql(f'creditrisk_requests_total{{job="{names.CHALLENGER_SERVER_JOB}"}}')
    ok = stack.promql('sum(creditrisk_shadow_requests_total{outcome="ok"})')
    assert ok and float(ok[0]["value"][1]) > 0
    for metric in (names.DRIFT_SHARE, names.DRIFT_DETECTED, names.DRIFT_FEATURE_SCORE,
                   names.DRIFT_LAST_SUCCESS, names.LIVE_ROC_AUC,
                   names.CHALLENGER_AGREEMENT, names.CHALLENGER_LAST_SUCCESS):
        result = stack.promql(metric)
        assert result, f"{metric} not in Prometheus"
    rules = json.load(urllib.request.urlopen(
        stack.url("PROMETHEUS_PORT") + "/api/v1/rules", timeout=10))["data"]["groups"]
    assert rules, "Prometheus loaded no alert rule groups"


def test_summary_links_the_prometheus_pages_it_serves(stack: Stack) -> None:
    base = stack.url("PROMETHEUS_PORT")
    pages = stack.facts["prometheus_pages"]
    assert set(pages) == {"targets", "alerts", "graph"}, pages
    for url in pages.values():
        assert url.startswith(base + "/")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200, url
    if pages["alerts"] == base + "/classic/alerts":  # Debian's build: no React UI
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/alerts", timeout=10)
        assert err.value.code == 404
    shown = stack.cli("status")
    assert shown.returncode == 0, shown.stderr
    assert f"targets {pages['targets']}, alerts {pages['alerts']}" in shown.stdout


def test_drift_and_performance_reports_written(stack: Stack) -> None:
    drift, perf = stack.facts["drift"], stack.facts["performance"]
    assert Path(drift["html"]).stat().st_size > 10_000
    report = json.loads(Path(drift["json"]).read_text())
    # held-out rows of the very split the reference comes from: no dataset drift
    assert report["dataset_drift"] is False and drift["dataset_drift"] is False
    assert report["rows"]["current"] == 1500
    perf_report = json.loads(Path(perf["json"]).read_text())
    assert perf["labelled_rows"] == 1500
    assert 0.7 < perf_report["live"]["metrics"]["roc_auc"] < 0.85
    labels = (Path(stack.facts["traffic"]["labels_file"]).read_text().splitlines())
    assert labels[0] == "request_id,record,label" and len(labels) == 1501


def test_the_challenger_scored_every_answered_record_in_shadow(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """`stack up --challenger`: every logged record carries both scores, the champion's
    answers are the champion's, and the champion/challenger job judged the window."""
    from creditrisk.monitoring.logreader import read_records

    for k, v in {"AWS_ENDPOINT_URL": stack.url("S3_PORT"), "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"
                 }.items():
        monkeypatch.setenv(k, v)
    t = stack.facts["traffic"]
    assert t["shadow_scored_records"] == t["logged_records"] == 1500
    frame = read_records(stack.facts["prediction_log"])
    shadow = [c for c in frame["challenger"] if isinstance(c, dict)]
    assert len(shadow) == len(frame) >= 1500  # with the earlier tests' own requests
    assert all(0.0 <= c["probability"] <= 1.0 for c in shadow)
    differ = sum(abs(c["probability"] - p) > 1e-6
                 for c, p in zip(frame["challenger"], frame["probability"], strict=True))
    assert differ > 1000, "the challenger should score differently from the champion"
    assert set(frame["model_version"]) == {stack.facts["champion"]["version"]}
    evidence = stack.facts["challenger"]["evidence"]
    assert evidence["exit_code"] == 0, evidence
    assert evidence["shadow_scored"] == 1500 and evidence["labelled"] == 1500
    assert 0.0 <= evidence["agreement"] <= 1.0
    report = json.loads(Path(evidence["json"]).read_text())
    assert report["labelled"]["rows"] == 1500
    assert Path(evidence["html"]).stat().st_size > 2_000
    shown = stack.cli("status")
    assert "challenger (shadow)" in shown.stdout and "champion/challenger" in shown.stdout


def test_grafana_provisioning_points_at_the_stack(stack: Stack) -> None:
    g = stack.facts["grafana"]
    ds = Path(g["provisioning"], "datasources", "creditrisk.yaml").read_text()
    assert stack.url("PROMETHEUS_PORT") in ds
    provider = Path(g["provisioning"], "dashboards", "creditrisk.yaml").read_text()
    assert str(REPO / "monitoring" / "dashboards") in provider
    assert g["dashboards_present"], "no dashboards in monitoring/dashboards"


#: How each server shows that it serves (port variable, path), checked from outside.
SERVES = {"predictor": ("PREDICTOR_HTTP_PORT", "/v2/health/ready"),
          "transformer": ("TRANSFORMER_HTTP_PORT", "/v2/health/ready"),
          "prometheus": ("PROMETHEUS_PORT", "/-/ready"),
          "pushgateway": ("PUSHGATEWAY_PORT", "/-/ready"),
          "mlflow": ("MLFLOW_PORT", "/health"),
          "s3": ("S3_PORT", "/"),
          "challenger": ("CHALLENGER_HTTP_PORT", "/v2/health/ready")}


def _serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_each_killed_server_comes_back(stack: Stack) -> None:
    """SIGKILL to each server in turn (its whole process group, as a container dies):
    supervisord starts it again and it serves, as a Deployment's pod would."""
    for name, (port, path) in SERVES.items():
        old = {p["name"]: p for p in stack.status()["processes"]}[name]
        assert old["state"] == "RUNNING", old
        os.killpg(old["pid"], signal.SIGKILL)
        t0 = time.monotonic()
        deadline = t0 + 180
        while time.monotonic() < deadline:
            now = {p["name"]: p for p in stack.status()["processes"]}[name]
            if (now["state"] == "RUNNING" and now["pid"] != old["pid"]
                    and _serves(stack.url(port) + path)):
                break
            time.sleep(1)
        else:
            log = Path(old["log"]).read_text(errors="replace")[-2000:]
            pytest.fail(f"{name} did not come back within 180 s: {now}\n{log}")
        print(f"{name}: serving again {time.monotonic() - t0:.1f} s after SIGKILL")
    # moto keeps its objects in memory: the restarted S3 server is empty
    stack.s3().create_bucket(Bucket="creditrisk")
    test_v1_and_v2_predictions_return(stack)
    assert {p["state"] for p in stack.status()["processes"]} == {"RUNNING"}


def test_stack_down_leaves_nothing(stack: Stack) -> None:
    import psutil

    from creditrisk.stack.layout import port_is_free

    pids = stack.pids | _stack_pids(int(stack.facts["supervisord_pid"]))
    r = stack.cli("down", timeout=180)
    assert r.returncode == 0, r.stderr
    assert "left-over" not in r.stderr, r.stderr  # everything stopped by supervisord
    alive = [p for p in pids if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [psutil.Process(p).cmdline() for p in alive]
    busy = {k: v for k, v in stack.ports.items() if not port_is_free(v)}
    assert busy == {}
    assert stack.cli("status").returncode == 1
