"""`creditrisk model deploy` against a real MLflow server whose artifacts are proxied to
S3 (moto's server): one registry version -> its s3:// location -> the InferenceService
patch (rendered by kustomize, or applied with kubectl), rollback included."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import boto3
import jsonpatch
import pytest
import yaml
from deploy_helpers import docs, manifests_copy, render_overlay, tool

from tests.helpers import free_port

pytestmark = pytest.mark.integration

def test_artifact_uris_map_to_the_servers_destination() -> None:
    from creditrisk.deploy import DeployError, artifact_s3_uri

    dest = "s3://mlflow/artifacts"
    assert artifact_s3_uri("mlflow-artifacts:/1/abc/artifacts/model", dest) == \
        "s3://mlflow/artifacts/1/abc/artifacts/model"
    assert artifact_s3_uri("mlflow-artifacts://mlflow:5000/1/abc/artifacts/model/", dest) == \
        "s3://mlflow/artifacts/1/abc/artifacts/model"
    assert artifact_s3_uri("s3://other/x/model/", dest) == "s3://other/x/model"
    with pytest.raises(DeployError, match="cannot read"):
        artifact_s3_uri("file:///home/me/.creditrisk/mlartifacts/1/abc/artifacts/model", dest)
    with pytest.raises(DeployError, match="not an s3:// URI"):
        artifact_s3_uri("mlflow-artifacts:/1/abc", "/var/mlflow")


@pytest.fixture()
def registry(mlflow_server: dict[str, str], monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> dict[str, str]:
    """A fresh registered model name on the real server, with two versions whose model
    directories (an MLmodel file and a payload) went through the server to S3."""
    from mlflow import MlflowClient

    from creditrisk.settings import configure_mlflow, reset_settings

    name = f"credit-default-{tmp_path.name[-12:].lower().replace('_', '-')}"
    env = {"MLFLOW_TRACKING_URI": mlflow_server["tracking_uri"], "CREDITRISK_MODEL_NAME": name,
           **{k: mlflow_server[k] for k in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                           "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    configure_mlflow()
    import mlflow

    client = MlflowClient()
    exp = client.create_experiment(name)
    for i in (1, 2):
        model = tmp_path / f"model{i}"
        model.mkdir()
        (model / "MLmodel").write_text(f"flavors: {{}}\nrun_id: v{i}\n")
        (model / "model.skops").write_bytes(b"payload %d" % i)
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_artifacts(str(model), artifact_path="model")
        mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _cli(*args: str, env: dict[str, str]) -> Result:
    """The `creditrisk` command in this process (its environment: ``env`` on top)."""
    from typer.testing import CliRunner

    from creditrisk.cli import app
    from creditrisk.settings import reset_settings

    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            reset_settings()
            r = CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        reset_settings()
    return Result(r.exit_code, r.stdout, r.stderr)


def _s3_has(env: dict[str, str], uri: str) -> bool:
    bucket, _, key = uri[len("s3://"):].partition("/")
    s3 = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                      region_name="us-east-1")
    s3.head_object(Bucket=bucket, Key=key)
    return True


def test_no_champion_is_a_clear_error(registry: dict[str, str]) -> None:
    proc = _cli("model", "deploy", env=registry)
    assert proc.returncode == 2
    assert "no @champion" in proc.stderr and "Traceback" not in proc.stderr


def test_deploy_champion_renders_a_kustomize_patch_naming_one_version(
        registry: dict[str, str], tmp_path: Path) -> None:
    from creditrisk.registry import set_champion

    set_champion("2", previous=None)
    manifests = manifests_copy(tmp_path)
    patch = manifests / "overlays" / "production-example" / "model-version.yaml"
    proc = _cli("model", "deploy", "--write", str(patch), env=registry)
    assert proc.returncode == 0, proc.stderr
    assert "deploying version 2" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["version"] == "2"
    assert result["artifact_uri"].startswith("mlflow-artifacts:")
    # the mapped location really holds the version's model, on S3
    assert result["storage_uri"].startswith("s3://mlflow/artifacts/")
    assert _s3_has(registry, result["storage_uri"] + "/MLmodel")
    # kustomize applies the written patch to the InferenceService
    isvc = next(d for d in docs(render_overlay(manifests, "production-example"))
                if d["kind"] == "InferenceService")
    env = isvc["spec"]["predictor"]["containers"][0]["env"]
    assert env[0] == {"name": "STORAGE_URI", "value": result["storage_uri"]}
    assert env[1] == {"name": "MODEL_VERSION", "value": "2"}
    assert isvc["metadata"]["annotations"]["creditrisk.io/model-version"] == "2"


def test_rollback_deploys_the_previous_champion(registry: dict[str, str],
                                                tmp_path: Path) -> None:
    from creditrisk.registry import champion_version, set_champion

    set_champion("1", previous=None)
    set_champion("2", previous="1")
    proc = _cli("model", "deploy", "--rollback", env=registry)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["version"], result["previous_champion"]) == ("1", "2")
    assert champion_version() == "1"
    # the printed patch applies to the rendered InferenceService (kubectl patch --type json)
    manifests = manifests_copy(tmp_path)
    isvc = next(d for d in docs(render_overlay(manifests, "kind"))
                if d["kind"] == "InferenceService")
    patched = jsonpatch.apply_patch(isvc, result["patch"])
    assert patched["spec"]["predictor"]["containers"][0]["env"][0]["value"] == \
        result["storage_uri"]
    assert _s3_has(registry, result["storage_uri"] + "/model.skops")


def test_an_unknown_version_is_refused_and_the_variables_are_found_by_name(
        registry: dict[str, str], tmp_path: Path) -> None:
    proc = _cli("model", "deploy", "--version", "99", env=registry)
    assert proc.returncode == 2 and "no version 99" in proc.stderr
    from creditrisk.deploy import json_patch, predictor_env, resolve

    rollout = resolve("1")
    manifests = manifests_copy(tmp_path)
    isvc = next(d for d in docs(render_overlay(manifests, "kind"))
                if d["kind"] == "InferenceService")
    as_rendered = json_patch(rollout)  # from the base manifest's environment
    env = predictor_env(isvc)
    env.insert(0, {"name": "EXTRA", "value": "x"})  # someone added a variable in front
    env[1], env[2] = env[2], env[1]  # ... and reordered the two
    isvc["spec"]["predictor"]["containers"][0]["env"] = env
    # a patch made for another order is refused by its test ops, not misapplied
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(isvc, as_rendered)
    # made from this object's environment, it finds both variables by name
    patched = predictor_env(jsonpatch.apply_patch(isvc, json_patch(rollout, env)))
    values = {e["name"]: e.get("value") for e in patched}
    assert values["EXTRA"] == "x" and len(patched) == len(env)
    assert (values["STORAGE_URI"], values["MODEL_VERSION"]) == (rollout.storage_uri, "1")
    # a variable the environment lacks is added, not written over another
    added = predictor_env(jsonpatch.apply_patch(
        {"spec": {"predictor": {"containers": [{"env": [{"name": "EXTRA"}]}]}},
         "metadata": {"annotations": {}}}, json_patch(rollout, [{"name": "EXTRA"}])))
    assert [e["name"] for e in added] == ["EXTRA", "STORAGE_URI", "MODEL_VERSION"]


def test_apply_reports_a_cluster_that_does_not_answer(registry: dict[str, str],
                                                      tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {
            "server": f"https://127.0.0.1:{free_port()}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}]}))
    from creditrisk.registry import set_champion

    set_champion("1", previous=None)
    kubectl_dir = str(Path(tool("kubectl")).parent)
    proc = _cli("model", "deploy", "--apply", "-n", "creditrisk", "--request-timeout-s", "5",
                env={**registry, "KUBECONFIG": str(kubeconfig),
                     "PATH": kubectl_dir + os.pathsep + os.environ["PATH"]})
    assert proc.returncode == 2, proc.stderr
    assert "kubectl patch failed" in proc.stderr and "Traceback" not in proc.stderr
