"""Offline verification of the cluster manifests and the Helm chart: render every overlay
and the chart, validate core kinds with kubernetes-validate (strict, pinned Kubernetes
version) and custom resources against their CRDs' openAPIV3Schema (../shared/crds or
CREDITRISK_CRDS_DIR), helm lint, chart/overlay parity, the one-place facts (images,
artifacts destination), security contexts, and the monitoring copies."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_helpers import (
    CUSTOM_KINDS,
    KUBERNETES_VERSION,
    OVERLAYS,
    containers,
    docs,
    pod_specs,
    render_chart,
    render_kustomization,
    run,
    tool,
)

from tests.helpers import REPO, shared_path

pytestmark = pytest.mark.integration


def test_every_overlay_and_the_chart_render(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        kinds = {d["kind"] for d in docs(text)}
        assert {"Deployment", "InferenceService", "CronJob", "PodMonitor", "ServiceMonitor",
                "NetworkPolicy", "Job", "Service"} <= kinds, name


@pytest.mark.parametrize("name", [f"overlay:{o}" for o in OVERLAYS] + ["chart"])
def test_core_kinds_validate_strictly(rendered: dict[str, str], name: str,
                                      tmp_path: Path) -> None:
    core = [d for d in docs(rendered[name]) if d["kind"] not in CUSTOM_KINDS]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    proc = run([tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION,
                str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema that, like the API server's strict field validation, rejects
    fields it does not declare (unless it preserves unknown fields)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _load_crds(crds: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for f in sorted(crds.glob("*.yaml")):
        crd = yaml.load(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            out[(f"{group}/{v['name']}", kind)] = _strict(v["schema"]["openAPIV3Schema"])
    return out


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """The CRDs' schemas from ../shared/crds (or CREDITRISK_CRDS_DIR), never copied in."""
    return _load_crds(shared_path("crds", env="CREDITRISK_CRDS_DIR"))


@pytest.mark.parametrize("name", [f"overlay:{o}" for o in OVERLAYS] + ["chart"])
def test_custom_resources_validate_against_their_crds(rendered: dict[str, str],
                                                      name: str) -> None:
    schemas = _crd_schemas()
    custom = [d for d in docs(rendered[name]) if d["kind"] in CUSTOM_KINDS]
    assert {d["kind"] for d in custom} >= {"InferenceService", "PodMonitor", "ServiceMonitor"}
    for obj in custom:
        key = (obj["apiVersion"], obj["kind"])
        assert key in schemas, f"no CRD for {key}"
        errors = sorted(jsonschema.Draft7Validator(schemas[key]).iter_errors(obj),
                        key=lambda e: list(e.path))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


def test_the_crd_check_rejects_an_unknown_field(rendered: dict[str, str]) -> None:
    """The strict CRD validation above can fail: a misspelt field is an error."""
    schemas = _crd_schemas()
    isvc = next(d for d in docs(rendered["overlay:kind"]) if d["kind"] == "InferenceService")
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["minReplica"] = 1
    assert list(jsonschema.Draft7Validator(
        schemas[(bad["apiVersion"], bad["kind"])]).iter_errors(bad))


def test_helm_lint_strict() -> None:
    proc = run([tool("helm"), "lint", "--strict", str(REPO / "helm" / "creditrisk")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_values_schema_refuses_bad_values() -> None:
    proc = run([tool("helm"), "template", "x", str(REPO / "helm" / "creditrisk"),
                "--set", "inferenceService.storageUri=models:/credit-default@champion"])
    assert proc.returncode != 0 and "storageUri" in proc.stderr


def _inventory(text: str) -> set[tuple[str, str, tuple[str, ...]]]:
    out = set()
    for d in docs(text):
        images = tuple(sorted(c["image"] for _, _, c in containers(d)))
        out.add((d["kind"], d["metadata"]["name"], images))
    return out


def _leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf; a JSON document in a ConfigMap is parsed, so
    that formatting (a trailing newline) is not a difference."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, str) and key.endswith(".json"):
                value = json.loads(value)
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _leaves(value, f"{path}[{i}]")
    else:
        yield path, obj


#: Where the kind overlay and the chart's defaults may differ, and why.
KNOWN_DIFFERENCES = (
    (r"metadata\.labels\.(app\.kubernetes\.io/(instance|managed-by|part-of)|helm\.sh/chart)$",
     "Helm's standard labels (kustomize adds part-of by its labels: transformer)"),
    (r"^(data|stringData)\.", "Secrets: kind's committed development values; the chart's "
     "random values kept across upgrades"),
    (r"resources\.requests\.(cpu|storage)$", "the kind overlay's requests for a 4-vCPU "
     "machine and its small volumes"),
)


def test_chart_defaults_and_kind_overlay_make_the_same_objects(rendered: dict[str, str]
                                                               ) -> None:
    kind = _inventory(rendered["overlay:kind"])
    chart = _inventory(rendered["chart"])
    # kind-only: its Namespace (helm install --create-namespace) and the NodePort of
    # kind-config.yaml (the chart's nodePort.enabled, off by default)
    kind_only = {("Namespace", "creditrisk", ()),
                 ("Service", "creditrisk-transformer-nodeport", ())}
    assert kind - kind_only == chart
    assert kind_only <= kind
    # ... and the same specs, but for the known differences
    by_name = {name: {(d["kind"], d["metadata"]["name"]): dict(_leaves(d))
                      for d in docs(rendered[name])} for name in ("overlay:kind", "chart")}
    unexplained = []
    for key, ours in by_name["overlay:kind"].items():
        theirs = by_name["chart"].get(key)
        if theirs is None:
            continue
        for path in sorted(set(ours) | set(theirs)):
            if ours.get(path) != theirs.get(path) and not any(
                    re.search(pattern, path) for pattern, _ in KNOWN_DIFFERENCES):
                unexplained.append(f"{key} {path}: {ours.get(path)!r} != "
                                   f"{theirs.get(path)!r}")
    assert not unexplained, "\n".join(unexplained[:20])


def test_images_and_artifacts_destination_come_from_the_settings(rendered: dict[str, str]
                                                                 ) -> None:
    from creditrisk.settings import Settings

    s = Settings()
    for name in ("overlay:kind", "chart"):
        objs = docs(rendered[name])
        ours = {c["image"] for d in objs for _, _, c in containers(d)
                if "/creditrisk-" in c["image"]}
        assert ours == {s.train_image, s.serve_image}, name
        mlflow = next(c for d in objs for _, _, c in containers(d) if c["name"] == "mlflow")
        assert "--artifacts-destination=$(CREDITRISK_MLFLOW_ARTIFACTS_DESTINATION)" in \
            mlflow["args"]
        # the S3 locations are named once, in the ConfigMap, with the settings' defaults
        config = next(d for d in objs if d["kind"] == "ConfigMap"
                      and d["metadata"]["name"].endswith("-config"))
        data = config["data"]
        assert data["CREDITRISK_MLFLOW_ARTIFACTS_DESTINATION"] == \
            s.mlflow_artifacts_destination, name
        assert (data["CREDITRISK_LABELS_URI"], data["CREDITRISK_DATASETS_URI"]) == \
            (s.labels_uri, s.datasets_uri), name
        elsewhere = yaml.safe_dump([d for d in objs if d is not config])
        for bucket in s.cluster_buckets:
            assert f"s3://{bucket}" not in elsewhere, (name, bucket)
        isvc = next(d for d in objs if d["kind"] == "InferenceService")
        assert isvc["metadata"]["name"] == s.model_name


def test_standard_mode_and_autoscaling(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        isvc = next(d for d in docs(text) if d["kind"] == "InferenceService")
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
        for comp in ("predictor", "transformer"):
            spec = isvc["spec"][comp]
            assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], (name, comp)
            assert spec["scaleMetric"] == "cpu" and 0 < spec["scaleTarget"] <= 100
        env = isvc["spec"]["predictor"]["containers"][0]["env"]
        assert [e["name"] for e in env[:2]] == ["STORAGE_URI", "MODEL_VERSION"], name
        assert env[0]["value"].startswith("s3://")


def test_every_pod_is_locked_down(rendered: dict[str, str]) -> None:
    """Non-root, seccomp RuntimeDefault, read-only root filesystem with writable paths as
    volumes, no privilege escalation, capabilities dropped, requests and limits; probes
    on every long-running server."""
    for name, text in rendered.items():
        for obj in docs(text):
            for where, pod in pod_specs(obj):
                sc = pod.get("securityContext", {})
                label = f"{name} {obj['kind']}/{obj['metadata']['name']} {where}"
                assert sc.get("runAsNonRoot") is True, label
                assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", label
                assert pod.get("automountServiceAccountToken") is False or \
                    obj["kind"] == "InferenceService", label
            for _where, _pod, c in containers(obj):
                label = f"{name} {obj['kind']}/{obj['metadata']['name']} {c['name']}"
                csc = c.get("securityContext", {})
                assert csc.get("allowPrivilegeEscalation") is False, label
                assert csc.get("readOnlyRootFilesystem") is True, label
                assert csc.get("capabilities", {}).get("drop") == ["ALL"], label
                assert {"requests", "limits"} <= set(c.get("resources", {})), label
                mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
                assert "/tmp" in mounts or c["name"] in ("pushgateway",), label
                if obj["kind"] in ("Deployment", "InferenceService"):
                    assert "readinessProbe" in c and "livenessProbe" in c, label


def test_cronjobs_are_bounded(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        jobs = [d for d in docs(text) if d["kind"] == "CronJob"]
        assert {j["metadata"]["name"] for j in jobs} == {"creditrisk-drift",
                                                          "creditrisk-performance"}, name
        for j in jobs:
            s = j["spec"]
            assert s["concurrencyPolicy"] == "Forbid"
            assert s["successfulJobsHistoryLimit"] >= 1 and s["failedJobsHistoryLimit"] >= 1
            assert s["startingDeadlineSeconds"] > 0
            assert s["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0


def test_cronjob_schedules_are_the_ones_their_staleness_alerts_read(
        rendered: dict[str, str]) -> None:
    from creditrisk.monitoring import names

    for name, text in rendered.items():
        schedules = {d["metadata"]["name"]: d["spec"]["schedule"] for d in docs(text)
                     if d["kind"] == "CronJob"}
        assert schedules == {names.DRIFT_JOB: names.DRIFT_SCHEDULE,
                             names.PERFORMANCE_JOB: names.PERFORMANCE_SCHEDULE}, name


def test_monitors_carry_the_release_label(rendered: dict[str, str]) -> None:
    expected = {"overlay:kind": "kube-prometheus-stack", "chart": "kube-prometheus-stack",
                "overlay:production-example": "prometheus"}
    for name, text in rendered.items():
        monitors = [d for d in docs(text) if d["kind"] in ("PodMonitor", "ServiceMonitor",
                                                            "PrometheusRule")]
        assert {m["metadata"]["name"] for m in monitors} >= {
            "creditrisk-transformer", "creditrisk-predictor", "creditrisk-pushgateway"}
        for m in monitors:
            assert m["metadata"]["labels"]["release"] == expected[name], (name, m["kind"])


def test_rules_and_dashboards_are_packaged_from_their_one_source(rendered: dict[str, str]
                                                                 ) -> None:
    from creditrisk.deploy import RULES_SOURCE, sync_monitoring

    diffs = sync_monitoring(REPO, check=True)
    assert not diffs, "out of date, run `make sync-monitoring`: " + "; ".join(diffs)
    dashboards = sorted((REPO / "monitoring" / "dashboards").glob("*.json"))
    rules = REPO / RULES_SOURCE
    for name, text in rendered.items():
        objs = docs(text)
        cms = [d for d in objs if d["kind"] == "ConfigMap"
               and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
        assert len(cms) == len(dashboards), name
        packaged = {k: v for cm in cms for k, v in cm["data"].items()}
        for path in dashboards:
            assert packaged[path.name].strip() == path.read_text().strip(), (name, path)
        prom = [d for d in objs if d["kind"] == "PrometheusRule"]
        if rules.exists():
            assert len(prom) == 1, name
            assert prom[0]["spec"]["groups"] == yaml.safe_load(rules.read_text())["groups"]
        else:
            assert not prom, name


def test_the_sync_check_notices_a_changed_copy(tmp_path: Path) -> None:
    from creditrisk.deploy import KUSTOMIZE_DIR, sync_monitoring

    (tmp_path / "monitoring" / "dashboards").mkdir(parents=True)
    (tmp_path / "monitoring" / "dashboards" / "a.json").write_text('{"title": "a"}')
    (tmp_path / "monitoring" / "rules").mkdir()
    (tmp_path / "monitoring" / "rules" / "creditrisk.rules.yml").write_text(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n")
    assert sync_monitoring(tmp_path)  # first write
    assert sync_monitoring(tmp_path, check=True) == []
    (tmp_path / "monitoring" / "dashboards" / "a.json").write_text('{"title": "b"}')
    assert any("a.json" in d for d in sync_monitoring(tmp_path, check=True))
    sync_monitoring(tmp_path)
    (tmp_path / "monitoring" / "dashboards" / "a.json").unlink()
    assert any("stale" in d for d in sync_monitoring(tmp_path, check=True))
    sync_monitoring(tmp_path)
    assert not (tmp_path / KUSTOMIZE_DIR / "dashboards" / "a.json").exists()


def test_chart_with_an_external_s3_and_existing_secrets() -> None:
    from deploy_helpers import render_chart

    objs = docs(render_chart("--set", "minio.enabled=false", "--set", "s3.endpoint=s3.example.com",
                             "--set", "s3.useHttps=1", "--set", "s3.existingSecret=my-s3",
                             "--set", "postgres.existingSecret=my-pg"))
    names = {(d["kind"], d["metadata"]["name"]) for d in objs}
    assert ("Deployment", "creditrisk-minio") not in names
    assert ("Secret", "creditrisk-s3") not in names and ("Secret", "creditrisk-postgres") \
        not in names
    config = next(d for d in objs if d["kind"] == "ConfigMap"
                  and d["metadata"]["name"] == "creditrisk-config")
    assert config["data"]["MLFLOW_S3_ENDPOINT_URL"] == "https://s3.example.com"
    sa = next(d for d in objs if d["kind"] == "ServiceAccount"
              and d["metadata"]["name"] == "creditrisk-serving")
    assert sa["secrets"] == [{"name": "my-s3"}]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for d in objs for _, _, c in containers(d)
            for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {"my-s3", "my-pg"}


def test_kubectl_apply_k_manifests_renders_from_a_fresh_clone(tmp_path: Path) -> None:
    """`kubectl apply -k manifests` (the kind overlay) needs nothing uncommitted: a real
    clone of the committed tree renders; the kind-only development credentials are
    used by the kind overlay alone, and the production example keeps secrets out."""
    clone = tmp_path / "clone"
    proc = run(["git", "clone", "-q", str(REPO), str(clone)])
    assert proc.returncode == 0, proc.stderr
    objs = docs(render_kustomization(clone / "manifests"))
    secrets = {d["metadata"]["name"] for d in objs if d["kind"] == "Secret"}
    assert {"creditrisk-s3", "creditrisk-postgres"} <= secrets
    assert {d["metadata"].get("namespace") for d in objs} - {None} == {"creditrisk"}
    dev = REPO / "manifests" / "overlays" / "kind" / "kind-dev-credentials"
    pairs = [line.split("=", 1) for f in dev.glob("*.env")
             for line in f.read_text().splitlines() if "=" in line and line[0] != "#"]
    values = [v for k, v in pairs if "PASSWORD" in k or "SECRET" in k]
    assert values, "no development credentials found"
    tracked = run(["git", "ls-files"], cwd=REPO).stdout.split()
    for rel in tracked:
        path = REPO / rel
        if rel.startswith(str(dev.relative_to(REPO))) or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        assert not any(v in text for v in values), f"{rel} uses a kind-only credential"
    # the production example: its Secrets come from files git never holds
    prod = clone / "manifests" / "overlays" / "production-example"
    failed = run([tool("kubectl"), "kustomize", str(prod)])
    assert failed.returncode != 0 and "secrets/s3.env" in failed.stderr


def _cpu(quantity: object) -> float:
    q = str(quantity)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


#: CPU requests of what `make kind-up` installs besides the application, on one worker
#: node (read off the pinned releases: kindnet 0.1, KServe's controller 0.2, Kubeflow
#: Pipelines standalone about 0.73); metrics-server's is read from scripts/kind-up.sh.
PREREQUISITES_CPU = 1.03


def test_kind_fits_a_four_cpu_machine(rendered: dict[str, str]) -> None:
    """Everything at its minimum replicas, one run of each Job and CronJob, plus the
    training pipeline's largest step, requests under 1.9 CPU; with the prerequisites,
    under 3 (a 4-vCPU GitHub runner or laptop keeps a core for the system)."""
    ours = 0.0
    for obj in docs(rendered["overlay:kind"]):
        for where, pod in pod_specs(obj):
            replicas = (pod.get("minReplicas", 1) if where.startswith("InferenceService")
                        else obj["spec"].get("replicas", 1) if obj["kind"] == "Deployment"
                        else 1)
            ours += replicas * sum(_cpu(c.get("resources", {}).get("requests", {})
                                         .get("cpu", 0)) for c in pod["containers"])
    compiled = next(yaml.safe_load_all((REPO / "pipelines" / "compiled" /
                                        "training-cluster.yaml").read_text()))
    params = compiled["root"]["inputDefinitions"]["parameters"]
    train_step = _cpu(params["train_cpu"]["defaultValue"])
    steps = [e["container"].get("resources", {}) for e in
             compiled["deploymentSpec"]["executors"].values()]
    assert any("train_cpu" in str(r) for r in steps), "the train step's request is a parameter"
    largest_fixed = max((_cpu(r.get("cpuRequest", 0)) for r in steps
                         if "train_cpu" not in str(r)), default=0.0)
    kind_up = (REPO / "scripts" / "kind-up.sh").read_text()
    metrics_server = _cpu(kind_up.split("resources.requests.cpu=", 1)[1].split()[0])
    app = ours + max(train_step, largest_fixed)
    assert app < 1.9, f"application {ours:.2f} + training step {train_step:.2f} CPU"
    assert PREREQUISITES_CPU + metrics_server + app < 3.0


def test_the_tools_kubectl_is_within_one_minor_of_the_kind_cluster() -> None:
    """Kubernetes supports kubectl within one minor version of the API server."""
    import json
    import re

    node = re.search(r"kindest/node:v1\.(\d+)\.",
                     (REPO / "scripts" / "kind-up.sh").read_text())
    assert node, "kind-up.sh pins no kindest/node image"
    proc = run([tool("kubectl"), "version", "--client", "-o", "json"])
    assert proc.returncode == 0, proc.stderr
    client_minor = int(re.sub(r"\D", "", json.loads(proc.stdout)["clientVersion"]["minor"]))
    assert abs(client_minor - int(node.group(1))) <= 1, (client_minor, node.group(1))


def test_the_predictor_serves_the_name_kserve_gives_the_transformer(
        rendered: dict[str, str]) -> None:
    """KServe appends `--model_name <InferenceService name>` to the transformer, which
    then asks the predictor for that model: the predictor must register the same name,
    whatever the InferenceService is called."""
    renamed = render_chart("--set", "inferenceService.name=pd-scorecard")
    for name, text in [*rendered.items(), ("chart:renamed", renamed)]:
        isvc = next(d for d in docs(text) if d["kind"] == "InferenceService")
        args = isvc["spec"]["predictor"]["containers"][0]["args"]
        assert f"--model_name={isvc['metadata']['name']}" in args, name
        transformer_args = isvc["spec"]["transformer"]["containers"][0]["args"]
        assert not any(a.startswith("--model_name") for a in transformer_args), name
    assert "pd-scorecard" in renamed
