"""Cluster deployment: put one registry version behind the InferenceService, create the
S3 buckets, and keep the kustomize/Helm copies of the monitoring rules and dashboards in
step with their one source.

**Why a deploy step.** KServe's storage initializer knows ``s3://`` but not ``models:/``,
so the InferenceService's predictor names the ``s3://`` location of one registered
version. The MLflow server runs with ``--serve-artifacts --artifacts-destination
s3://mlflow/artifacts``: a version's artifact URI then reads
``mlflow-artifacts:/<experiment>/<run>/artifacts/model`` (the server proxies it), and the
object really lives at ``<artifacts destination>/<experiment>/<run>/artifacts/model``.
:func:`artifact_s3_uri` makes that mapping with the settings'
``mlflow_artifacts_destination`` (``CREDITRISK_MLFLOW_ARTIFACTS_DESTINATION``), which must
equal the server's ``--artifacts-destination`` (a test checks the manifests and chart).
A version logged straight to S3 (``s3://...``) is used as it is; any other scheme
(a local ``file://`` store) cannot be served by a cluster and is refused.

**The patch.** The predictor container's ``env[0]`` is ``STORAGE_URI`` and ``env[1]``
``MODEL_VERSION`` (the manifests and the chart keep that order; the JSON patch tests the
names before it replaces the values), and the InferenceService carries the annotation
``creditrisk.io/model-version``. :func:`deploy` renders that patch (a kustomize JSON 6902
patch file for GitOps) and/or applies it with ``kubectl patch --type json``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from creditrisk.errors import CreditRiskError
from creditrisk.settings import get_settings

#: The annotation that names the deployed registry version on the InferenceService.
VERSION_ANNOTATION = "creditrisk.io/model-version"
#: The predictor container's environment entries the patch sets (found by name).
STORAGE_ENV = ("STORAGE_URI", "MODEL_VERSION")


class DeployError(CreditRiskError):
    """A model that cannot be deployed, or a cluster that refused the patch."""


# --------------------------------------------------------------------------------------
# Registry version -> s3:// location
# --------------------------------------------------------------------------------------


def artifact_s3_uri(uri: str, destination: str) -> str:
    """The ``s3://`` location of an artifact URI as the tracking server stores it.

    ``mlflow-artifacts:/1/abc/artifacts/model`` (or ``mlflow-artifacts://host:port/...``)
    with destination ``s3://mlflow/artifacts`` -> ``s3://mlflow/artifacts/1/abc/artifacts/model``.
    """
    if uri.startswith("s3://"):
        return uri.rstrip("/")
    if uri.startswith("mlflow-artifacts:"):
        if not destination.startswith("s3://"):
            raise DeployError(
                f"the artifacts destination {destination!r} is not an s3:// URI; set "
                "CREDITRISK_MLFLOW_ARTIFACTS_DESTINATION to the MLflow server's "
                "--artifacts-destination")
        rest = uri[len("mlflow-artifacts:"):]
        if rest.startswith("//"):  # mlflow-artifacts://host:port/path
            rest = "/" + rest[2:].partition("/")[2]
        path = rest.strip("/")
        if not path:
            raise DeployError(f"{uri}: no artifact path")
        return f"{destination.rstrip('/')}/{path}"
    raise DeployError(
        f"the model's artifacts are at {uri}, which a cluster cannot read (KServe's storage "
        "initializer needs s3://): register it through an MLflow server whose artifacts "
        "live on S3 (--serve-artifacts --artifacts-destination s3://...)")


@dataclass
class Rollout:
    """One registry version resolved for serving."""

    version: str
    model_name: str
    artifact_uri: str  # as the registry reports it (e.g. mlflow-artifacts:/...)
    storage_uri: str  # the s3:// location the storage initializer downloads
    previous_champion: str | None = None  # set by a rollback: the version rolled back from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(version: str | None = None, *, verify: bool = True) -> Rollout:
    """The ``s3://`` location of ``version`` (default: the version behind @champion).

    With ``verify`` the tracking server is asked whether the location holds an MLflow
    model (an ``MLmodel`` file), so a rollout never names an empty prefix.
    """
    from creditrisk.errors import RegistryError
    from creditrisk.registry import (
        champion_version,
        check_tracking_server,
        version_artifact_uri,
    )

    settings = get_settings()
    check_tracking_server()
    if version is None or version == settings.champion_alias:
        version = champion_version()
        if version is None:
            raise DeployError(f"{settings.model_name!r} has no @{settings.champion_alias} "
                              "yet: promote a version first, or name one with --version")
    try:
        artifact_uri = version_artifact_uri(str(version))
    except RegistryError as exc:
        raise DeployError(str(exc)) from exc
    storage_uri = artifact_s3_uri(artifact_uri, settings.mlflow_artifacts_destination)
    if verify:
        _verify_model(artifact_uri, str(version))
    return Rollout(version=str(version), model_name=settings.model_name,
                   artifact_uri=artifact_uri, storage_uri=storage_uri)


def _verify_model(artifact_uri: str, version: str) -> None:
    import mlflow

    try:
        names = {Path(f.path).name for f in mlflow.artifacts.list_artifacts(artifact_uri)}
    except Exception as exc:
        raise DeployError(f"cannot list the artifacts of version {version} at "
                          f"{artifact_uri}: {exc}") from exc
    if "MLmodel" not in names:
        raise DeployError(f"version {version}'s artifacts at {artifact_uri} hold no MLmodel "
                          f"file (found: {sorted(names) or 'nothing'})")


# --------------------------------------------------------------------------------------
# The patch: rendered for kustomize, or applied with kubectl
# --------------------------------------------------------------------------------------


#: The InferenceService the overlays render (where a written patch's targets are looked up).
SERVING_MANIFEST = Path("manifests/base/serving.yaml")


def predictor_env(isvc: dict[str, Any]) -> list[dict[str, Any]]:
    """The predictor container's ``env`` of an InferenceService object."""
    try:
        env = isvc["spec"]["predictor"]["containers"][0].get("env") or []
    except (KeyError, IndexError, TypeError) as exc:
        raise DeployError("the InferenceService has no predictor container "
                          "(spec.predictor.containers[0])") from exc
    return list(env)


def manifest_predictor_env(path: Path = SERVING_MANIFEST) -> list[dict[str, Any]]:
    """The predictor's ``env`` in a manifest file's InferenceService; without the file
    (an installed package, no checkout) the documented layout: ``STORAGE_ENV`` in order."""
    if not path.exists():
        return [{"name": name} for name in STORAGE_ENV]
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "InferenceService":
            return predictor_env(doc)
    raise DeployError(f"{path} holds no InferenceService")


def json_patch(rollout: Rollout, env: list[dict[str, Any]] | None = None
               ) -> list[dict[str, Any]]:
    """The JSON patch (RFC 6902) that points the InferenceService at ``rollout``.

    JSON patches address list items by position, so each of ``STORAGE_ENV`` is looked up
    by name in ``env`` (the predictor's environment: the live object's, or the manifest's;
    default :func:`manifest_predictor_env`), and a ``test`` op guards each position: a
    patch applied to an object whose environment moved fails instead of writing the
    wrong variable. A variable the environment lacks is appended."""
    entries = manifest_predictor_env() if env is None else env
    index = {e.get("name"): i for i, e in enumerate(entries)}
    base = "/spec/predictor/containers/0/env"
    ops: list[dict[str, Any]] = []
    for name, value in zip(STORAGE_ENV, (rollout.storage_uri, rollout.version), strict=True):
        if name in index:
            ops.append({"op": "test", "path": f"{base}/{index[name]}/name", "value": name})
            ops.append({"op": "replace", "path": f"{base}/{index[name]}/value",
                        "value": value})
        else:
            ops.append({"op": "add", "path": f"{base}/-", "value": {"name": name,
                                                                  "value": value}})
    ops.append({"op": "add",
                "path": "/metadata/annotations/" + VERSION_ANNOTATION.replace("/", "~1"),
                "value": rollout.version})
    return ops


def kustomize_patch(rollout: Rollout, env: list[dict[str, Any]] | None = None) -> str:
    """A kustomize JSON 6902 patch file (``patches: [{path: FILE, target: {kind:
    InferenceService, name: <model>}}]`` in the overlay) pinning ``rollout``."""
    header = (f"# Written by `creditrisk model deploy --write`: version {rollout.version} of "
              f"{rollout.model_name}\n# ({rollout.artifact_uri}). Referenced by the overlay's "
              "kustomization (patches:, target InferenceService).\n")
    return header + yaml.safe_dump(json_patch(rollout, env), sort_keys=False)


def _kubectl(args: list[str], *, what: str, kubectl: str, namespace: str | None,
             context: str | None, timeout_s: float) -> str:
    """Run ``kubectl ARGS`` (namespace, context, request timeout added) as a step of
    ``kubectl patch``; its stdout, or a :class:`DeployError` naming the step ``what`` and
    kubectl's own words."""
    exe = shutil.which(kubectl) or kubectl
    cmd = [exe, *args, f"--request-timeout={timeout_s:g}s"]
    if namespace:
        cmd[1:1] = ["--namespace", namespace]
    if context:
        cmd[1:1] = ["--context", context]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 30,
                              check=False)
    except FileNotFoundError:
        raise DeployError(f"{kubectl}: not found (install kubectl, or use --write to render "
                          "the patch)") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"kubectl patch failed: {what}: no answer within "
                          f"{timeout_s:g}s") from None
    if proc.returncode != 0:
        raise DeployError(f"kubectl patch failed: {what}: "
                          f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


def kubectl_patch(rollout: Rollout, *, name: str | None = None, namespace: str | None = None,
                  kubectl: str = "kubectl", context: str | None = None,
                  timeout_s: float = 30.0) -> str:
    """Apply the patch to the live InferenceService (its environment read first, so the
    variables are found by name); returns kubectl's answer."""
    def run(args: list[str], what: str) -> str:
        return _kubectl(args, what=what, kubectl=kubectl, namespace=namespace,
                        context=context, timeout_s=timeout_s)

    isvc_name = name or rollout.model_name
    live = run(["get", "inferenceservice", isvc_name, "-o", "json"],
               "reading the InferenceService")
    try:
        env = predictor_env(json.loads(live))
    except json.JSONDecodeError as exc:
        raise DeployError(f"kubectl get inferenceservice {isvc_name}: not JSON: "
                          f"{exc}") from None
    return run(["patch", "inferenceservice", isvc_name, "--type", "json",
                "-p", json.dumps(json_patch(rollout, env))], "applying the patch")


def deploy(*, version: str | None = None, rollback: bool = False, write: Path | None = None,
           apply: bool = False, name: str | None = None, namespace: str | None = None,
           context: str | None = None, kubectl: str = "kubectl",
           verify: bool = True, timeout_s: float = 30.0) -> Rollout:
    """Resolve one registry version (default @champion) and render and/or apply the patch.

    ``rollback`` first moves @champion back to the previous champion
    (:func:`creditrisk.registry.rollback`) and deploys that version the same way.
    """
    from creditrisk.registry import rollback as registry_rollback

    previous = None
    if rollback:
        if version is not None:
            raise DeployError("--rollback deploys the previous champion; do not also name "
                              "a --version")
        previous, _ = registry_rollback()
    rollout = resolve(version, verify=verify)
    rollout.previous_champion = previous
    if write is not None:
        write.parent.mkdir(parents=True, exist_ok=True)
        write.write_text(kustomize_patch(rollout))
    if apply:
        kubectl_patch(rollout, name=name, namespace=namespace, kubectl=kubectl,
                      context=context, timeout_s=timeout_s)
    if write is not None or apply:
        record_deployment(rollout, write=write, applied=apply, name=name,
                          namespace=namespace, context=context)
    return rollout


def record_deployment(rollout: Rollout, *, write: Path | None, applied: bool,
                      name: str | None, namespace: str | None,
                      context: str | None) -> None:
    """The deployment's record (:mod:`creditrisk.decisions`): the version, where its
    model lives, the patch written and/or applied, its target; the digest is the
    patch's."""
    from creditrisk import decisions

    target = {"inferenceservice": name or rollout.model_name, "namespace": namespace,
              "context": context}
    how = [*([f"patch written to {write}"] if write is not None else []),
           *(["patch applied with kubectl"] if applied else [])]
    decisions.record(decisions.Decision(
        action=decisions.DEPLOYMENT,
        versions={"deployed": rollout.version, "rolled_back_from": rollout.previous_champion},
        evidence={"rollout": rollout.as_dict(), "target": target, "applied": applied,
                  "written": str(write) if write is not None else None},
        reasons=how, config_sha256=decisions.config_digest(kustomize_patch(rollout))))


# --------------------------------------------------------------------------------------
# Buckets (the cluster's bucket Job; the same code runs against moto's S3 in the tests)
# --------------------------------------------------------------------------------------


def bucket_configuration(region: str | None) -> dict[str, Any]:
    """The ``create_bucket`` arguments a region needs: S3 refuses a bucket without a
    ``LocationConstraint`` outside us-east-1 (and one naming us-east-1 inside it)."""
    if not region or region == "us-east-1":
        return {}
    return {"CreateBucketConfiguration": {"LocationConstraint": region}}


def create_buckets(buckets: list[str] | None = None, *, wait_s: float = 0.0) -> list[str]:
    """Create each bucket that does not exist yet on the S3 endpoint in force (MinIO or
    AWS; default: the settings' :attr:`~creditrisk.settings.Settings.cluster_buckets`),
    in the client's region, retrying for up to ``wait_s`` seconds while the endpoint
    does not answer. Returns the buckets created."""
    from creditrisk.storage import s3_client, s3_error_reason

    if buckets is None:
        buckets = get_settings().cluster_buckets
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client = s3_client()
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            break
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise DeployError(f"the S3 endpoint does not answer: "
                                  f"{s3_error_reason(exc)}") from exc
            time.sleep(2.0)
    where = bucket_configuration(client.meta.region_name)
    created = []
    for bucket in buckets:
        if bucket in existing:
            continue
        try:
            client.create_bucket(Bucket=bucket, **where)
        except Exception as exc:
            raise DeployError(f"cannot create bucket {bucket!r} in region "
                              f"{client.meta.region_name}: {s3_error_reason(exc)}") from exc
        created.append(bucket)
    return created


# --------------------------------------------------------------------------------------
# Monitoring rules and dashboards: one source, the kustomize and Helm copies
# --------------------------------------------------------------------------------------

RULES_SOURCE = Path("monitoring/rules/creditrisk.rules.yml")
DASHBOARDS_SOURCE = Path("monitoring/dashboards")
KUSTOMIZE_DIR = Path("manifests/base/monitoring")
HELM_FILES_DIR = Path("helm/creditrisk/files")
#: kube-prometheus-stack selects rules and monitors by this label (overlays change it).
RELEASE_LABEL = "kube-prometheus-stack"
_GENERATED = "# Generated by `make sync-monitoring` from {src}; do not edit.\n"


def _dns_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")
    return name[:50] or "dashboard"


def monitoring_copies(root: Path) -> dict[Path, bytes]:
    """Every generated file (relative to ``root``) and its expected content."""
    rules_src = root / RULES_SOURCE
    dashboards = sorted((root / DASHBOARDS_SOURCE).glob("*.json"))
    out: dict[Path, bytes] = {}
    resources: list[str] = []
    if rules_src.exists():
        raw = rules_src.read_text()
        parsed = yaml.safe_load(raw) or {}
        groups = parsed.get("groups") if isinstance(parsed, dict) else None
        if not isinstance(groups, list):
            raise DeployError(f"{RULES_SOURCE}: no `groups:` list of Prometheus rule groups")
        rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": "creditrisk", "labels": {"release": RELEASE_LABEL}},
                "spec": {"groups": groups}}
        out[KUSTOMIZE_DIR / "prometheusrule.yaml"] = (
            _GENERATED.format(src=RULES_SOURCE)
            + yaml.safe_dump(rule, sort_keys=False, width=1000)).encode()
        out[HELM_FILES_DIR / "creditrisk.rules.yml"] = raw.encode()
        resources.append("prometheusrule.yaml")
    generators = []
    for path in dashboards:
        data = path.read_bytes()
        json.loads(data)  # a broken dashboard fails here, not in Grafana
        out[KUSTOMIZE_DIR / "dashboards" / path.name] = data
        out[HELM_FILES_DIR / "dashboards" / path.name] = data
        generators.append({"name": f"creditrisk-dashboard-{_dns_name(path.stem)}",
                           "files": [f"dashboards/{path.name}"],
                           "options": {"disableNameSuffixHash": True,
                                       "labels": {"grafana_dashboard": "1"}}})
    kustomization: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                     "kind": "Kustomization", "resources": resources}
    if generators:
        kustomization["configMapGenerator"] = generators
    out[KUSTOMIZE_DIR / "kustomization.yaml"] = (
        _GENERATED.format(src=f"{RULES_SOURCE} and {DASHBOARDS_SOURCE}/*.json")
        + yaml.safe_dump(kustomization, sort_keys=False)).encode()
    return out


def _managed(root: Path) -> set[Path]:
    """Files now in the generated locations (to find stale copies)."""
    found: set[Path] = set()
    for d, pattern in ((KUSTOMIZE_DIR, "*.yaml"), (KUSTOMIZE_DIR / "dashboards", "*.json"),
                       (HELM_FILES_DIR, "*.yml"), (HELM_FILES_DIR / "dashboards", "*.json")):
        found.update(p.relative_to(root) for p in (root / d).glob(pattern))
    return found


def sync_monitoring(root: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check`` only compare) the copies; returns what differs: written,
    or stale and removed, as ``"path: why"`` lines."""
    want = monitoring_copies(root)
    diffs: list[str] = []
    for rel, data in want.items():
        path = root / rel
        if not path.exists() or path.read_bytes() != data:
            diffs.append(f"{rel}: {'differs from' if path.exists() else 'missing, made from'} "
                         "its source")
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    for rel in sorted(_managed(root) - set(want)):
        diffs.append(f"{rel}: stale (its source is gone)")
        if not check:
            (root / rel).unlink()
    return diffs
