"""Every container of the rendered kind overlay, run here with its own command, arguments
and environment (ConfigMap, Secrets, ``$(VAR)`` expansion as the kubelet does), against
local stand-ins of the cluster's services: PostgreSQL (initdb/pg_ctl as user postgres)
for the PostgreSQL container, moto's S3 server for MinIO, the Pushgateway binary for the
Pushgateway image. So no manifest names a command, flag, module or environment variable
that does not exist, and the MLflow server's cluster configuration really starts,
answers, and checks Host headers.

What differs from the cluster, and only that: service names resolve to the stand-ins
(``creditrisk-minio:9000`` -> moto, ...), listening ports are free local ports on
127.0.0.1, emptyDir and PVC paths are temporary directories, /mnt/models is filled by a
stand-in for KServe's storage initializer (a download of STORAGE_URI from S3), and the
transformer gets the arguments KServe adds (--model_name, --predictor_host, --http_port).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import jsonpatch
import pandas as pd
import pytest
from deploy_helpers import containers, docs, run, tool

from tests.helpers import REPO, free_port, require_binary, wait_http

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
#: Where each image's command is found here.
COMMANDS = {
    "python": sys.executable,
    "creditrisk": str(VENV_BIN / "creditrisk"),
    "mlflow": str(VENV_BIN / "mlflow"),
}
#: Containers whose service a stand-in provides instead (and why).
STOOD_IN = {("Deployment", "creditrisk-minio", "minio"): "moto's S3 server stands in for MinIO"}
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion (unknown references stay as they are)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value)


@dataclass
class Cluster:
    """The rendered objects and the stand-ins' addresses."""

    objects: list[dict[str, Any]]
    root: Path
    dns: dict[str, str] = field(default_factory=dict)  # "svc:port" -> "127.0.0.1:port"
    procs: list[subprocess.Popen] = field(default_factory=list)
    ran: set[tuple[str, str, str]] = field(default_factory=set)

    def obj(self, kind: str, name: str) -> dict[str, Any]:
        return next(o for o in self.objects
                    if o["kind"] == kind and o["metadata"]["name"] == name)

    def container(self, kind: str, name: str, cname: str | None = None) -> dict[str, Any]:
        cs = [c for _, _, c in containers(self.obj(kind, name))
              if cname is None or c["name"] == cname]
        assert len(cs) == 1, (kind, name, cname)
        self.ran.add((kind, name, cs[0]["name"]))
        return cs[0]

    def _data(self, kind: str, name: str) -> dict[str, str]:
        o = self.obj(kind, name)
        if kind == "Secret":
            return {**{k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()},
                    **o.get("stringData", {})}
        return dict(o.get("data", {}))

    def local(self, value: str, dirs: dict[str, Path]) -> str:
        """A value with service names and in-container paths mapped to the stand-ins."""
        for svc, addr in self.dns.items():
            value = value.replace(svc, addr)
        if not dirs:
            return value
        # one pass, longest mount first: a mapped path is never mapped again
        mounts = sorted(dirs, key=len, reverse=True)
        pattern = re.compile(r"(^|=)(" + "|".join(map(re.escape, mounts)) + r")(?=/|$)")
        return pattern.sub(lambda m: m.group(1) + str(dirs[m.group(2)]), value)

    def env(self, c: dict[str, Any], dirs: dict[str, Path]) -> dict[str, str]:
        """The container's environment as the kubelet builds it, then made local."""
        env: dict[str, str] = {}
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                env.update(self._data("ConfigMap", src["configMapRef"]["name"]))
            if "secretRef" in src:
                env.update(self._data("Secret", src["secretRef"]["name"]))
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = _expand(e["value"], env)
            else:
                ref = e["valueFrom"]
                kind, key = (("Secret", "secretKeyRef") if "secretKeyRef" in ref
                             else ("ConfigMap", "configMapKeyRef"))
                env[e["name"]] = self._data(kind, ref[key]["name"])[ref[key]["key"]]
        base = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        return {**base, **{k: self.local(v, dirs) for k, v in env.items()}}

    def argv(self, c: dict[str, Any], env: dict[str, str], dirs: dict[str, Path],
             ports: dict[str, str], extra: list[str] | None = None) -> list[str]:
        """Command + args with $(VAR) expanded, stand-ins mapped and listening ports
        (``ports``: rendered argument -> local argument) rewritten; nothing else."""
        raw = [*c.get("command", []), *c.get("args", [])]
        out = []
        for a in raw:
            a = _expand(a, env)
            a = ports.get(a, a)
            out.append(self.local(a, dirs))
        for p in ports:
            assert p in raw, f"{c['name']}: no argument {p!r} to rewrite"
        out[0] = COMMANDS.get(out[0], out[0])
        return [*out, *(extra or [])]

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with log.open("ab") as f:
            proc = subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode


def _dirs(root: Path, name: str, c: dict[str, Any]) -> dict[str, Path]:
    """A temporary directory per volume mount (emptyDir / PVC stand-ins)."""
    out = {}
    for m in c.get("volumeMounts", []):
        d = root / name / m["mountPath"].strip("/").replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        out[m["mountPath"]] = d
    return out


def _get(url: str, host: str | None = None, timeout: float = 10) -> int:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _check_http_probes(c: dict[str, Any], port: int) -> None:
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = c.get(probe, {}).get("httpGet")
        if get:
            assert _get(f"http://127.0.0.1:{port}{get['path']}") == 200, (c["name"], probe)


def _pg_binary(name: str) -> str:
    """A PostgreSQL server binary: PATH, else Debian's versioned directory."""
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                                reverse=True)), None)
    return found or require_binary(name, "apt-get install postgresql")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def cluster(rendered: dict[str, str], s3_server: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    os.chmod(root, 0o755)
    c = Cluster(docs(rendered["overlay:kind"]), root)
    c.dns["http://creditrisk-minio:9000"] = s3_server["endpoint"]
    c.dns["creditrisk-minio:9000"] = s3_server["endpoint"].removeprefix("http://")
    try:
        yield c
    finally:
        for p in reversed(c.procs):
            c.stop(p)


@pytest.fixture(scope="module")
def postgres(cluster: Cluster) -> Iterator[None]:
    """The PostgreSQL container's arguments on the local postgres binary, with the first
    start's role and database (the image's entrypoint) made from the Secret."""
    pg, initdb, psql = (_pg_binary(n) for n in ("postgres", "initdb", "psql"))
    con = cluster.container("Deployment", "creditrisk-postgres", "postgres")
    # user postgres must reach its directories: not under pytest's root-only tmp folders
    pg_root = Path(tempfile.mkdtemp(prefix="creditrisk-pg-"))
    os.chmod(pg_root, 0o755)
    dirs = _dirs(pg_root, "postgres", con)
    env = cluster.env(con, dirs)
    data = Path(env["PGDATA"])
    if os.geteuid() == 0:
        for d in [pg_root / "postgres", *dirs.values()]:
            shutil.chown(d, "postgres")
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    sock = dirs["/var/run/postgresql"]
    argv = cluster.argv(con, env, dirs, {"listen_addresses=*": "listen_addresses=127.0.0.1"})
    assert argv[0] == "postgres"
    argv = _as_postgres([pg, *argv[1:], "-D", str(data), "-p", str(port), "-k", str(sock)])
    proc = cluster.start(argv, {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
                         cluster.root / "postgres.log")
    deadline = time.monotonic() + 60
    while subprocess.run([psql, "-h", str(sock), "-p", str(port), "-U", "postgres", "-c",
                          "select 1"], capture_output=True).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, \
            (cluster.root / "postgres.log").read_text()[-2000:]
        time.sleep(0.5)
    user, password, db = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    for sql in (f"CREATE ROLE {user} LOGIN PASSWORD '{password}'",
                f"CREATE DATABASE {db} OWNER {user}"):
        subprocess.run([psql, "-h", str(sock), "-p", str(port), "-U", "postgres", "-c", sql],
                       check=True, capture_output=True)
    cluster.dns["creditrisk-postgres:5432"] = f"127.0.0.1:{port}"
    yield
    cluster.stop(proc)
    shutil.rmtree(pg_root, ignore_errors=True)


@pytest.fixture(scope="module")
def pushgateway(cluster: Cluster) -> str:
    exe = require_binary("prometheus-pushgateway", "apt-get install prometheus-pushgateway")
    con = cluster.container("Deployment", "creditrisk-pushgateway", "pushgateway")
    dirs = _dirs(cluster.root, "pushgateway", con)
    port = free_port()
    argv = cluster.argv(con, cluster.env(con, dirs), dirs,
                        {"--web.listen-address=:9091": f"--web.listen-address=127.0.0.1:{port}"})
    assert argv[0] == "pushgateway"  # the image's binary; Debian names it differently
    cluster.start([exe, *argv[1:]], {"PATH": os.environ["PATH"]}, cluster.root / "pg.log")
    wait_http(f"http://127.0.0.1:{port}/-/ready", timeout_s=30)
    _check_http_probes(con, port)
    url = f"http://127.0.0.1:{port}"
    cluster.dns["http://creditrisk-pushgateway:9091"] = url
    return url


def test_bucket_job_mlflow_server_and_serving_run_as_the_manifests_say(
        cluster: Cluster, postgres: None, pushgateway: str, s3_server: dict[str, str],
        trained_run: Any) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_server["endpoint"], aws_access_key_id="x",
                      aws_secret_access_key="x", region_name="us-east-1")
    # --- the bucket Job ----------------------------------------------------------------
    con = cluster.container("Job", "creditrisk-buckets")
    dirs = _dirs(cluster.root, "buckets", con)
    env = cluster.env(con, dirs)
    proc = subprocess.run(cluster.argv(con, env, dirs, {}), env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {"mlflow", "predictions", "datasets"} <= names  # the ConfigMap's locations

    # --- the MLflow server: PostgreSQL backend, artifacts proxied to S3 ----------------
    con = cluster.container("Deployment", "creditrisk-mlflow", "mlflow")
    dirs = _dirs(cluster.root, "mlflow", con)
    env = cluster.env(con, dirs)
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://mlflow:")
    port = free_port()
    argv = cluster.argv(con, env, dirs, {"--port=5000": f"--port={port}",
                                         "--host=0.0.0.0": "--host=127.0.0.1"})
    mlflow = cluster.start(argv, env, cluster.root / "mlflow.log")
    wait_http(f"http://127.0.0.1:{port}/health", timeout_s=180, proc=mlflow)
    _check_http_probes(con, port)
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
    # the Host headers clients in the cluster send are accepted, others refused
    assert _get(api, host="creditrisk-mlflow:5000") == 200
    assert _get(api, host="creditrisk-mlflow.creditrisk:5000") == 200
    assert _get(api, host="evil.example:5000") == 403
    tracking = f"http://127.0.0.1:{port}"
    cluster.dns["http://creditrisk-mlflow:5000"] = tracking

    # --- a registered champion, deployed by `creditrisk model deploy` ------------------
    client_env = {**os.environ, "MLFLOW_TRACKING_URI": tracking,
                  "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        client_env.pop(k, None)  # the client reaches S3 only through the server's proxy
    script = ("import json, sys\n"
              "from pathlib import Path\n"
              "from creditrisk.registry import log_and_register, set_champion\n"
              "r = log_and_register(out_dir=Path(sys.argv[1]))\n"
              "set_champion(r.version, previous=None)\n"
              "print(r.version)\n")
    reg = subprocess.run([sys.executable, "-c", script, str(trained_run.out_dir)],
                         env=client_env, capture_output=True, text=True, timeout=300)
    assert reg.returncode == 0, reg.stderr[-3000:]
    version = reg.stdout.strip().splitlines()[-1]
    dep = subprocess.run([COMMANDS["creditrisk"], "model", "deploy"], env=client_env,
                         capture_output=True, text=True, timeout=300)
    assert dep.returncode == 0, dep.stderr[-3000:]
    rollout = json.loads(dep.stdout)
    assert rollout["version"] == version
    isvc = jsonpatch.apply_patch(cluster.obj("InferenceService", "credit-default"),
                                 rollout["patch"])
    cluster.objects = [isvc if o["kind"] == "InferenceService" else o
                       for o in cluster.objects]

    # --- the predictor: the storage initializer's download of STORAGE_URI, then serve --
    pred = isvc["spec"]["predictor"]["containers"][0]
    tran = isvc["spec"]["transformer"]["containers"][0]
    cluster.ran.update({("InferenceService", "credit-default", "kserve-container")})
    dirs = _dirs(cluster.root, "predictor", pred)
    env = cluster.env(pred, dirs)
    models = cluster.root / "mnt-models"
    bucket, _, prefix = env["STORAGE_URI"].removeprefix("s3://").partition("/")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]:
        dest = models / obj["Key"][len(prefix) + 1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(dest))
    assert (models / "MLmodel").exists()
    dirs["/mnt/models"] = models
    p_http, p_grpc = free_port(), free_port()
    argv = cluster.argv(pred, env, dirs, {"--http_port=8080": f"--http_port={p_http}",
                                          "--grpc_port=8081": f"--grpc_port={p_grpc}"})
    predictor = cluster.start(argv, env, cluster.root / "predictor.log")
    wait_http(f"http://127.0.0.1:{p_http}/v2/health/ready", timeout_s=120, proc=predictor)
    _check_http_probes(pred, p_http)

    # --- the transformer, with the arguments KServe adds -------------------------------
    dirs = _dirs(cluster.root, "transformer", tran)
    env = cluster.env(tran, dirs)
    t_http = free_port()
    argv = cluster.argv(tran, env, dirs, {}, extra=[
        "--model_name", "credit-default", "--predictor_host", f"127.0.0.1:{p_http}",
        "--http_port", str(t_http), "--grpc_port", str(free_port())])
    assert "--prediction_log=s3://predictions/log" in argv
    transformer = cluster.start(argv, env, cluster.root / "transformer.log")
    wait_http(f"http://127.0.0.1:{t_http}/v2/health/ready", timeout_s=120, proc=transformer)
    _check_http_probes(tran, t_http)
    from creditrisk.contract import FEATURE_NAMES, TARGET

    frame = pd.read_parquet(trained_run.test_path).loc[:, list(FEATURE_NAMES)].head(300)
    records = json.loads(frame.to_json(orient="records"))
    req = urllib.request.Request(
        f"http://127.0.0.1:{t_http}/v1/models/credit-default:predict",
        data=json.dumps({"instances": records}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.load(r)
    assert len(body["predictions"]) == len(records)
    assert {p["model_version"] for p in body["predictions"]} == {version}
    request_id = body["predictions"][0]["request_id"]
    # the chart's `helm test` hook, run the same way against this transformer and MLflow
    hook = docs(run([tool("helm"), "template", "creditrisk", str(REPO / "helm" / "creditrisk"),
                     "--show-only", "templates/tests/test-endpoint.yaml"]).stdout)[0]
    hook_c = hook["spec"]["containers"][0]
    cluster.dns["http://credit-default-transformer"] = f"http://127.0.0.1:{t_http}"
    hook_env = cluster.env(hook_c, {})
    proc = subprocess.run(cluster.argv(hook_c, hook_env, {}, {}), env=hook_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "mlflow ok" in proc.stdout, proc.stdout + proc.stderr
    assert cluster.stop(transformer) == 0  # SIGTERM: the prediction log is flushed
    logged = [o["Key"] for o in s3.list_objects_v2(Bucket="predictions",
                                                     Prefix="log/").get("Contents", [])]
    assert any(k.endswith(".jsonl") for k in logged), logged

    # --- the monitoring CronJobs against the log, the registry and the Pushgateway -----
    labels = pd.DataFrame({"request_id": request_id, "record": range(len(records)),
                           "label": pd.read_parquet(trained_run.test_path)[TARGET]
                           .head(len(records)).to_numpy()})
    s3.put_object(Bucket="predictions", Key="labels/labels.csv",
                  Body=labels.to_csv(index=False).encode())
    for name in ("creditrisk-drift", "creditrisk-performance"):
        con = cluster.container("CronJob", name)
        dirs = _dirs(cluster.root, name, con)
        env = cluster.env(con, dirs)
        proc = subprocess.run(cluster.argv(con, env, dirs, {}), env=env, capture_output=True,
                              text=True, timeout=300)
        # 0: ran; 3: too few rows in the window -- both mean every flag and name exists
        assert proc.returncode in (0, 3), f"{name}: {proc.stderr[-3000:]}"
    with urllib.request.urlopen(pushgateway + "/metrics", timeout=10) as r:
        pushed = r.read().decode()
    assert "creditrisk_" in pushed

    # --- every container of the overlay ran here, or has a named stand-in --------------
    every = {(o["kind"], o["metadata"]["name"], c["name"])
             for o in cluster.objects for _, _, c in containers(o)}
    assert every == cluster.ran | set(STOOD_IN), every - cluster.ran - set(STOOD_IN)


def _shadow_scored_log(s3: Any, n: int = 600) -> None:
    """``n`` records scored by both models, written now by the serving code's writer as
    the transformer and its shadow scorer write them (the champion's lines, then a
    follow-up line with the `challenger` field), put under the cluster's prediction-log
    prefix; their labels (both outcomes) under the labels prefix."""
    import numpy as np

    from creditrisk.contract import FEATURE_NAMES
    from creditrisk.serve.predlog import Batch, PredictionLog

    rng = np.random.default_rng(7)
    p1, p2 = rng.random(n), rng.random(n)
    X = rng.integers(0, 5, size=(n, len(FEATURE_NAMES))).astype(np.float64)
    local = Path(tempfile.mkdtemp(prefix="creditrisk-shadow-"))
    plog = PredictionLog(str(local / "log"))
    now = time.time()
    for i, lo in enumerate(range(0, n, 100)):
        hi = lo + 100
        args = (f"shadow-{i}", now - 60, "credit-default", "1", X[lo:hi], p1[lo:hi],
                ["decline" if v >= .5 else "approve" for v in p1[lo:hi]], ["low"] * 100)
        plog.submit(Batch(*args))
        plog.submit(Batch(*args, extra={"challenger": [
            {"version": "2", "probability": float(v),
             "decision": "decline" if v >= .5 else "approve"} for v in p2[lo:hi]]}))
    plog.close()
    if "predictions" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket="predictions")  # this test alone: the bucket Job did not run
    for f in (p for p in (local / "log").rglob("*") if p.is_file()):
        s3.upload_file(str(f), "predictions", f"log/{f.relative_to(local / 'log')}")
    labels = pd.DataFrame({"request_id": [f"shadow-{i // 100}" for i in range(n)],
                           "record": [i % 100 for i in range(n)],
                           "label": (rng.random(n) < p1).astype(int)})
    s3.put_object(Bucket="predictions", Key="labels/shadow.csv",
                  Body=labels.to_csv(index=False).encode())
    shutil.rmtree(local, ignore_errors=True)


def test_the_challenger_cronjob_runs_as_the_manifests_say(
        cluster: Cluster, pushgateway: str, s3_server: dict[str, str],
        manifests_dir: Path) -> None:
    """The evidence CronJob of manifests/components/challenger, listed in the kind
    overlay: its command, arguments and environment, run here against a prediction log
    with shadow-scored records and labels: it writes its evidence and pushes it."""
    from test_challenger_deploy import render_with_component

    enabled = Cluster(docs(render_with_component(manifests_dir, "kind")), cluster.root,
                      dns=cluster.dns)
    s3 = boto3.client("s3", endpoint_url=s3_server["endpoint"], aws_access_key_id="x",
                      aws_secret_access_key="x", region_name="us-east-1")
    _shadow_scored_log(s3)
    con = enabled.container("CronJob", "creditrisk-challenger")
    dirs = _dirs(cluster.root, "creditrisk-challenger", con)
    env = enabled.env(con, dirs)
    proc = subprocess.run(enabled.argv(con, env, dirs, {}), env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((dirs["/tmp"] / "reports" / "challenger" /
                         "challenger.json").read_text())
    assert report["rows"]["shadow_scored"] >= 600 and report["rows"]["labelled"] >= 600
    assert report["labelled"] is not None
    assert json.loads(proc.stdout)["rows"] == report["rows"]  # the job's log holds it too
    with urllib.request.urlopen(pushgateway + "/metrics", timeout=10) as r:
        pushed = r.read().decode()
    assert 'job="creditrisk-challenger"' in pushed
    assert "creditrisk_challenger_decision_agreement" in pushed
