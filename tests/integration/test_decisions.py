"""The record of model decisions: write-once objects (S3 conditional writes on moto's
server, ``open(..., "x")`` locally), `model history` after promote, reject, rollback and
deploy through the CLI against a real MLflow server, surviving a restart of that server,
and promotions racing in separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from creditrisk.errors import RegistryError
from creditrisk.settings import reset_settings
from tests.helpers import REPO, free_port, wait_http

pytestmark = pytest.mark.integration

#: Gate-only configs (the rest: the config's defaults), one that passes, one that fails.
GATE = ("gate:\n  roc_auc: {{threshold: {}, max_absolute_worsening: 0.05}}\n"
        "  pr_auc: {{threshold: 0.0}}\n  brier: {{threshold: 1.0}}\n")


class MlflowServer:
    """`mlflow server` on a SQLite file, artifacts on moto's S3: stop and start again."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
               "--port", str(self.port),
               "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--artifacts-destination", "s3://mlflow/artifacts", "--workers", "1",
               "--allowed-hosts", "127.0.0.1:*,localhost:*"]
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(cmd, env={**os.environ, **self.env,
                                               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_http(self.uri + "/health", timeout_s=120, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@pytest.fixture
def server(s3_server: dict[str, str], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowServer]:
    env = {k: v for k, v in s3_server.items() if k.isupper()}
    srv = MlflowServer(tmp_path, env)
    srv.start()
    name = f"credit-default-{tmp_path.name[-12:].lower().replace('_', '-')}"
    for k, v in {**env, "MLFLOW_TRACKING_URI": srv.uri, "CREDITRISK_MODEL_NAME": name}.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    try:
        yield srv
    finally:
        srv.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The `creditrisk` command as its own process (this environment)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    return subprocess.run([sys.executable, "-m", "creditrisk.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _history() -> list[dict]:
    proc = _cli("model", "history", "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def test_history_of_promote_reject_rollback_deploy_survives_an_mlflow_restart(
        trained_run, server: MlflowServer, tmp_path: Path) -> None:
    from creditrisk import registry

    for name in ("first", "second"):
        registry.log_and_register(out_dir=trained_run.out_dir, run_name=name)
    (tmp_path / "open.yaml").write_text(GATE.format(0.5))
    (tmp_path / "shut.yaml").write_text(GATE.format(0.999))
    opened, shut = ("--config", str(tmp_path / "open.yaml")), ("--config",
                                                               str(tmp_path / "shut.yaml"))
    steps = [("model", "promote", "1", *opened), ("model", "promote", "2", *shut),
             ("model", "promote", "2", *opened), ("model", "rollback"),
             ("model", "deploy", "--write", str(tmp_path / "patch.yaml"))]
    for args in steps:
        proc = _cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
    records = _history()
    assert [r["action"] for r in records] == ["promotion", "rejection", "promotion",
                                              "rollback", "deployment"]
    assert [r["versions"].get("after") for r in records] == ["1", None, "2", "1", None]
    assert records[1]["verdict"] == "failed" and "FAIL: roc_auc >= 0.999" in records[1]["reasons"]
    assert records[2]["metrics"]["champion"] is not None  # both models, one test set
    assert records[2]["evidence"]["test_rows"] > 0 and records[2]["evidence"]["gate"]
    assert records[4]["versions"]["deployed"] == "1"
    assert all(r["actor"]["kind"] == "user" and r["config_sha256"] and r["time"]
               for r in records)
    assert [r["time_ns"] for r in records] == sorted(r["time_ns"] for r in records)
    # MLflow's UI still shows the latest verdict as tags
    assert registry.show()["versions"][1]["tags"]["gate"] == "passed"

    # the records through the proxy form an intact hash chain
    chain = _cli("model", "history", "--verify")
    assert chain.returncode == 0, chain.stdout + chain.stderr
    assert json.loads(chain.stdout)["intact"] is True
    assert records[0]["previous"] is None
    assert [r["previous"]["key"] for r in records[1:]] == [r["key"] for r in records[:-1]]
    server.stop()
    server.start()  # the records live in the artifact store, not in MLflow's database
    assert _history() == records
    text = _cli("model", "history")
    assert text.returncode == 0 and len(text.stdout.splitlines()) == 5
    assert "rejection" in text.stdout.splitlines()[1]


def test_a_record_is_never_overwritten(s3_server: dict[str, str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from creditrisk import decisions

    with pytest.raises(FileExistsError):  # locally: open(path, "x")
        for _ in range(2):
            decisions._put_local(tmp_path, "k.json", b"{}")
    for k, v in s3_server.items():
        if k.isupper():
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("CREDITRISK_DECISIONS_URI", "s3://mlflow/decisions-test")
    reset_settings()
    first = decisions.record(decisions.Decision(action=decisions.ROLLBACK,
                                                versions={"before": "2", "after": "1"}))
    where = "s3://mlflow/decisions-test/credit-default"
    with pytest.raises(RegistryError, match=r"PreconditionFailed|412"):  # IfNoneMatch="*"
        decisions._put_s3(where, first.key, b"{}")
    assert decisions.read(first.key).versions == {"before": "2", "after": "1"}
    assert decisions.keys() == [first.key]


def _local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CREDITRISK_DECISIONS_URI", str(tmp_path / "decisions"))
    reset_settings()
    return tmp_path / "decisions" / "credit-default"


def test_the_chain_finds_a_record_changed_or_deleted_after_its_successor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from creditrisk import decisions

    folder = _local_store(tmp_path, monkeypatch)
    written = [decisions.record(decisions.Decision(
        action=decisions.PROMOTION, versions={"before": str(v), "after": str(v + 1)}))
        for v in range(4)]
    assert decisions.verify()["intact"] is True
    assert _cli("model", "history", "--verify").returncode == 0
    second = folder / written[1].key
    original = second.read_bytes()
    second.write_bytes(original.replace(b'"after": "2"', b'"after": "9"'))  # edited
    found = decisions.verify()
    assert found["intact"] is False
    assert len(found["problems"]) == 1
    assert found["problems"][0].startswith(f"{written[2].key}: its predecessor "
                                           f"{written[1].key} was changed after it was written")
    shown = _cli("model", "history", "--verify")
    assert shown.returncode == 1 and written[1].key in shown.stdout
    second.write_bytes(original)
    assert decisions.verify()["intact"] is True
    (folder / written[2].key).unlink()  # deleted
    assert decisions.verify()["problems"] == [
        f"{written[3].key}: its predecessor {written[2].key} is missing (deleted)"]


def test_object_lock_retention_on_s3(s3_server: dict[str, str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``decisions_retention_days`` on a bucket with Object Lock, a record's version
    cannot be deleted, by our code or anyone's; a bucket without the lock is refused."""
    import boto3

    from creditrisk import decisions

    for k, v in s3_server.items():
        if k.isupper():
            monkeypatch.setenv(k, v)
    s3 = boto3.client("s3", endpoint_url=s3_server["endpoint"], region_name="us-east-1")
    s3.create_bucket(Bucket="decisions-locked", ObjectLockEnabledForBucket=True)
    monkeypatch.setenv("CREDITRISK_DECISIONS_URI", "s3://decisions-locked/records")
    monkeypatch.setenv("CREDITRISK_DECISIONS_RETENTION_DAYS", "30")
    reset_settings()
    first = decisions.record(decisions.Decision(action=decisions.DEPLOYMENT,
                                                versions={"deployed": "3"}))
    key = f"records/credit-default/{first.key}"
    head = s3.head_object(Bucket="decisions-locked", Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert (head["ObjectLockRetainUntilDate"].timestamp() - first.time_ns / 1e9) / 86400 > 29
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket="decisions-locked", Key=key, VersionId=head["VersionId"])
    assert decisions.read(first.key).versions == {"deployed": "3"}
    monkeypatch.setenv("CREDITRISK_DECISIONS_URI", "s3://mlflow/no-lock")
    reset_settings()
    with pytest.raises(RegistryError, match="ObjectLockConfiguration"):
        decisions.record(decisions.Decision(action=decisions.DEPLOYMENT,
                                            versions={"deployed": "3"}))


def _promote_after(barrier, version: str) -> None:  # a child process
    from creditrisk import registry

    barrier.wait(timeout=120)
    registry.set_champion(version, previous="1")


def test_racing_promotions_leave_two_records_and_the_alias_of_the_last(tmp_path) -> None:
    import multiprocessing

    from creditrisk import decisions, registry
    from creditrisk.settings import get_settings

    client = registry.client()
    name = get_settings().model_name
    client.create_registered_model(name)
    for _ in range(5):
        client.create_model_version(name, source=str(tmp_path))
    registry.set_champion("1", previous=None)
    ctx = multiprocessing.get_context("spawn")
    for pair in (("2", "3"), ("4", "5")):
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_promote_after, args=(barrier, v)) for v in pair]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=180)
        assert [p.exitcode for p in procs] == [0, 0]
        last = decisions.last_move()
        assert last is not None and registry.champion_version() == last.versions["after"]
    promotions = decisions.history((decisions.PROMOTION,))
    assert [d.versions["after"] for d in promotions[1:3]] in (["2", "3"], ["3", "2"])
    assert len(promotions) == 5 and len({d.key for d in promotions}) == 5


def test_the_pipeline_gate_step_records_a_rejection(trained_run, tmp_path: Path) -> None:
    """A candidate the pipeline's gate step turns down is never registered: the step
    writes its rejection record itself (embedded store: a folder under the home)."""
    import shutil

    import yaml

    from creditrisk import decisions, stages
    from creditrisk.rundir import RunDir

    run = tmp_path / "run"
    shutil.copytree(trained_run.out_dir, run)
    cfg = yaml.safe_load(RunDir(run).config.read_text())
    cfg["gate"] = yaml.safe_load(GATE.format(0.999))["gate"]
    RunDir(run).config.write_text(yaml.safe_dump(cfg))
    result = stages.gate(run_dir=run, decision_path=tmp_path / "decision.json")
    assert not result["passed"]
    [record] = decisions.history()
    assert (record.action, record.verdict, record.versions) == (
        "rejection", "failed", {"candidate": None, "champion": None})
    assert record.evidence["run_dir"] == str(run) and record.reasons == result["reasons"]
    assert Path(decisions._location()).is_dir()
