"""Every dashboard panel against a real Prometheus: Debian's ``prometheus`` and
``prometheus-pushgateway`` on 127.0.0.1, scraping the real transformer and predictor
processes and the Pushgateway, after real traffic and real runs of the monitoring jobs
(the drift job's reference is the registered @champion's; the transformer shadow-scores
every batch on a challenger predictor, so the challenger job has evidence). Every panel
query succeeds and returns data; the alert rules load and evaluate; the pushed metrics
read back."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from creditrisk.contract import FEATURE_NAMES, TARGET
from tests.helpers import REPO, require_binary, save_synthetic_model
from tests.monitoring.monitoring_helpers import json_out, run_cli, write_labels

pytestmark = pytest.mark.e2e

BATCH = 50
REQUESTS = 40
MODEL = "credit-default"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (int(v) if float(v).is_integer() else float(v)) for k, v in row.items()}
            for row in frame.loc[:, list(FEATURE_NAMES)].to_dict("records")]


def _server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CREDITRISK_") and k != "MLFLOW_TRACKING_URI"}
    env.update(CREDITRISK_HOME=str(home), CREDITRISK_PREDICTION_LOG_SEGMENT_AGE_S="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")]))
    return env


class Trickle(threading.Thread):
    """Steady background traffic (good records and, every fifth, a bad one) so that
    every rate window of the dashboards has samples."""

    def __init__(self, url: str, records: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.url, self.records, self.stop = url, records, threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as c:
            i = 0
            while not self.stop.is_set():
                rec = dict(self.records[i % len(self.records)])
                if i % 5 == 4:
                    rec["AGE"] = 7
                c.post(f"/v1/models/{MODEL}:predict", json={"instances": [rec]})
                i += 1
                self.stop.wait(0.1)


@pytest.fixture
def stack(trained_run: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from creditrisk.monitoring.promconfig import (
        RULES_FILE,
        start_prometheus,
        start_pushgateway,
        write_prometheus_config,
    )
    from creditrisk.registry import log_and_register, set_champion
    from creditrisk.serve.local import (
        challenger_process,
        predictor_process,
        transformer_process,
    )

    require_binary("prometheus", "apt-get install prometheus")
    require_binary("prometheus-pushgateway", "apt-get install prometheus-pushgateway")
    reg = log_and_register(out_dir=trained_run.run_dir)
    set_champion(reg.version, previous=None)
    work = tmp_path / "stack"
    env = _server_env(work / "home")
    started: list[Any] = []
    try:
        gw = start_pushgateway(workdir=work)
        started.append(gw)
        predictor = predictor_process(trained_run.model_dir, workdir=work, base_env=env).start()
        started.append(predictor)
        challenger = challenger_process(save_synthetic_model(work / "challenger-model"),
                                        workdir=work, base_env=env).start()
        started.append(challenger)
        log = work / "prediction-log"
        transformer = transformer_process(predictor, workdir=work, prediction_log=log,
                                          base_env=env, challenger=challenger).start()
        started.append(transformer)
        cfg = write_prometheus_config(
            work / "prometheus.yml", transformer=[f"127.0.0.1:{transformer.http_port}"],
            predictor=[f"127.0.0.1:{predictor.http_port}"], pushgateway=gw.address,
            rule_files=[RULES_FILE], scrape_interval="1s")
        prom = start_prometheus(cfg, workdir=work)
        started.append(prom)
        yield {"prometheus": prom, "pushgateway": gw, "transformer": transformer,
               "log": log, "version": reg.version, "work": work}
    finally:
        for p in reversed(started):
            p.stop()


def _send(url: str, frame: pd.DataFrame) -> list[tuple[str, int, int]]:
    """REQUESTS requests of BATCH records with our own ids; (request id, record, label)."""
    keys = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(REQUESTS):
            part = frame.iloc[i * BATCH:(i + 1) * BATCH]
            rid = f"e2e-{i:04d}"
            r = c.post(f"/v1/models/{MODEL}:predict", json={"instances": _records(part)},
                       headers={"x-request-id": rid})
            assert r.status_code == 200, r.text
            keys += [(rid, j, int(y)) for j, y in enumerate(part[TARGET])]
        # v2 traffic and a client error, for the protocol and validation panels
        rec = _records(frame.iloc[:1])[0]
        v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [float(v)]}
                         for k, v in rec.items()]}
        assert c.post(f"/v2/models/{MODEL}/infer", json=v2).status_code == 200
        assert c.post(f"/v1/models/{MODEL}:predict",
                      json={"instances": [{**rec, "EDUCATION": 9}]}).status_code == 400
    return keys


def _closed_records(log: Path) -> int:
    return sum(f.read_bytes().count(b"\n") for f in log.glob("date=*/*.jsonl"))


def _drift_and_performance_jobs(stack: dict[str, Any], keys: list[tuple[str, int, int]]
                                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both jobs on the log, pushed: the drift job (default reference: the champion's
    registered sample), the performance job on the delayed labels (work/labels.csv)."""
    work, gw = stack["work"], stack["pushgateway"]
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(stack["log"]),
                                   "--since", "1h", "--out", str(work / "drift"),
                                   "--pushgateway", gw.url)
    assert code == 0, stderr
    drift = json_out(stdout, stderr)
    assert drift["model"] == {"name": MODEL, "version": stack["version"]}
    assert drift["prediction_drift"] is not None
    write_labels(work / "labels.csv", [(r, k) for r, k, _ in keys], [y for _, _, y in keys])
    code, stdout, stderr = run_cli("monitor", "performance", "--log", str(stack["log"]),
                                   "--labels", str(work / "labels.csv"), "--since", "1h",
                                   "--out", str(work / "perf"), "--pushgateway", gw.url)
    assert code == 0, stderr
    perf = json_out(stdout, stderr)
    assert perf["rows"]["labelled_rows"] == len(keys)
    assert perf["champion"] is not None
    return drift, perf


def test_every_panel_returns_data_from_a_real_prometheus(stack: dict[str, Any],
                                                         trained_run: Any) -> None:
    from creditrisk.monitoring import names
    from creditrisk.monitoring.dashboards import DASHBOARDS, panel_queries
    from creditrisk.monitoring.promconfig import grafana_expr, query, wait_for

    prom, gw, work = stack["prometheus"], stack["pushgateway"], stack["work"]
    test = pd.read_parquet(trained_run.run_dir.test_split).sample(
        REQUESTS * BATCH, random_state=3).reset_index(drop=True)
    keys = _send(stack["transformer"].url, test)
    trickle = Trickle(stack["transformer"].url, _records(test.iloc[:200]))
    trickle.start()
    try:
        # each record twice: the champion's line and the shadow scorer's follow-up
        deadline = time.monotonic() + 30
        while _closed_records(stack["log"]) < 2 * len(keys) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _closed_records(stack["log"]) >= 2 * len(keys)
        drift, perf = _drift_and_performance_jobs(stack, keys)

        # the pushed metrics, read back through Prometheus' HTTP API
        got = wait_for(prom.url, names.LIVE_ROC_AUC, timeout_s=30)
        assert got and got[0]["metric"]["job"] == names.PERFORMANCE_JOB
        assert got[0]["metric"][names.MODEL_LABEL] == MODEL
        assert abs(float(got[0]["value"][1]) - perf["live"]["metrics"]["roc_auc"]) < 1e-9
        share = wait_for(prom.url, names.DRIFT_SHARE, timeout_s=30)
        assert abs(float(share[0]["value"][1]) - drift["share_drifted"]) < 1e-12
        scores = query(prom.url, names.DRIFT_FEATURE_SCORE)
        assert {s["metric"]["feature"] for s in scores} == set(FEATURE_NAMES)
        _credit_risk_metrics_read_back(prom.url, drift, perf, stack["version"])
        _challenger_job_read_back(prom.url, gw.url, stack["log"], work)
        time.sleep(3)  # a few more scrapes of the servers under traffic

        failures = []
        for dash_name, build in DASHBOARDS.items():
            for title, expr in panel_queries(build()):
                q = grafana_expr(expr, rate_interval="1m", range_="10m")
                try:
                    result = query(prom.url, q)
                except Exception as exc:
                    failures.append(f"{dash_name} / {title}: {q}: {exc}")
                    continue
                values = [float(r["value"][1]) for r in result]
                if not values or all(math.isnan(v) for v in values):
                    failures.append(f"{dash_name} / {title}: no data: {q}")
        assert not failures, "\n".join(failures)
    finally:
        trickle.stop.set()
        trickle.join(10)

    # the alert rules are loaded and evaluate without errors
    rules = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = [r for g in rules for r in g["rules"]]
    assert len(loaded) >= 11
    assert all(r["health"] in ("ok", "unknown") for r in loaded), [
        (r["name"], r.get("lastError")) for r in loaded if r["health"] == "err"]
    assert np.isfinite(perf["live"]["metrics"]["brier"])


def _credit_risk_metrics_read_back(url: str, drift: dict[str, Any], perf: dict[str, Any],
                                   version: str) -> None:
    """Stability, the estimate and the back-test reach Prometheus as the jobs computed
    them (the drift job on the champion's logged bins)."""
    from creditrisk.backtest import LIGHT_VALUES
    from creditrisk.monitoring import names
    from creditrisk.monitoring.promconfig import query

    assert drift["stability"]["bins"] == f"reference/bins.json of version {version}"
    psi = query(url, names.PSI_SCORE)
    assert psi and psi[0]["metric"]["job"] == names.DRIFT_JOB
    assert abs(float(psi[0]["value"][1]) - drift["stability"]["score"]["psi"]) < 1e-9
    features = {s["metric"]["feature"]: float(s["value"][1])
                for s in query(url, names.PSI_FEATURE)}
    assert features == pytest.approx({n: f["psi"]
                                      for n, f in drift["stability"]["features"].items()})
    est = query(url, names.ESTIMATED_ROC_AUC)
    assert abs(float(est[0]["value"][1]) - drift["estimated_performance"]["roc_auc"]) < 1e-9
    assert query(url, names.ESTIMATED_DEFAULT_RATE)
    lights = {s["metric"]["band"]: float(s["value"][1]) for s in query(url, names.BAND_LIGHT)}
    assert lights == {b["band"]: LIGHT_VALUES[b["light"]] for b in perf["bands"]}
    assert perf["backtest"]["source"] == f"the champion's metadata (version {version})"
    observed = query(url, names.BAND_OBSERVED_DEFAULT_RATE)
    assert {s["metric"]["band"] for s in observed} == {
        b["band"] for b in perf["bands"] if b["observed_default_rate"] is not None}


def _challenger_job_read_back(url: str, gateway: str, log: Path, work: Path) -> None:
    """The challenger job on the shadow-scored window (with the labels), pushed; its
    figures and the transformer's shadow counter reach Prometheus."""
    from creditrisk.monitoring import names
    from creditrisk.monitoring.promconfig import query, wait_for

    code, stdout, stderr = run_cli("monitor", "challenger", "--log", str(log),
                                   "--labels", str(work / "labels.csv"), "--since", "1h",
                                   "--out", str(work / "challenger"), "--pushgateway", gateway)
    assert code == 0, stderr
    report = json_out(stdout, stderr)
    assert report["rows"]["shadow_scored"] >= REQUESTS * BATCH
    got = wait_for(url, names.CHALLENGER_AGREEMENT, timeout_s=30)
    assert got and got[0]["metric"]["job"] == names.CHALLENGER_JOB
    assert got[0]["metric"][names.MODEL_LABEL] == MODEL
    assert float(got[0]["value"][1]) == pytest.approx(report["scores"]["agreement"], abs=1e-12)
    auc = {s["metric"]["scorer"]: float(s["value"][1])
           for s in query(url, names.CHALLENGER_ROC_AUC)}
    assert auc == pytest.approx({k: report["labelled"][k]["roc_auc"]
                                 for k in ("champion", "challenger")})
    shadow = names.serving_names()["shadow_requests"]
    ok = query(url, f'sum({shadow}{{job=~".*transformer.*",outcome="ok"}})')
    assert ok and float(ok[0]["value"][1]) >= REQUESTS
