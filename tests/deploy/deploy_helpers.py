"""Rendering the kustomize overlays and the Helm chart, finding the verification tools
(scripts/install-tools.sh puts them in .venv-tools/bin), reading rendered objects."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO, missing_external

TOOLS_BIN = Path(os.environ.get("CREDITRISK_TOOLS_DIR", REPO / ".venv-tools")) / "bin"
OVERLAYS = ("kind", "production-example")
#: Kubernetes version the core kinds are validated against (kind-config.yaml's node image).
KUBERNETES_VERSION = "1.33.0"
CUSTOM_KINDS = {"InferenceService", "PodMonitor", "ServiceMonitor", "PrometheusRule"}
RELEASE = "creditrisk"
NAMESPACE = "creditrisk"


def tool(name: str) -> str:
    """A verification tool from the tools venv (scripts/install-tools.sh), else PATH."""
    candidate = TOOLS_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        missing_external(f"{name} (scripts/install-tools.sh installs it into {TOOLS_BIN})")
        raise AssertionError("unreachable")
    return found


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def manifests_copy(dest: Path) -> Path:
    """A copy of manifests/ as a fresh clone has it (the files git tracks, nothing a
    developer left beside them), with the production example's secret env files made
    from its committed examples -- as a user would. The kind overlay needs nothing."""
    root = dest / "manifests"
    tracked = subprocess.run(["git", "ls-files", "-z", "manifests"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, tracked):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / rel).exists():  # tracked, not deleted in the working tree
            shutil.copy2(REPO / rel, target)
    for example in root.glob("overlays/*/secrets/*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    return root


def render_kustomization(path: Path) -> str:
    """``kubectl kustomize PATH`` (what ``kubectl apply -k PATH`` sends)."""
    proc = run([tool("kubectl"), "kustomize", str(path)])
    assert proc.returncode == 0, f"kustomize {path}: {proc.stderr}"
    return proc.stdout


def render_overlay(manifests: Path, overlay: str) -> str:
    return render_kustomization(manifests / "overlays" / overlay)


def render_chart(*extra: str) -> str:
    proc = run([tool("helm"), "template", RELEASE, str(REPO / "helm" / "creditrisk"),
                "--namespace", NAMESPACE, "--skip-tests", *extra])
    assert proc.returncode == 0, f"helm template: {proc.stderr}"
    return proc.stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod an object makes (InferenceService components too)."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield kind, spec["template"]["spec"]
    elif kind == "CronJob":
        yield kind, spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "Pod":
        yield kind, spec
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            if component in spec:
                yield f"{kind}.{component}", spec[component]


def containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(component, pod spec, container) of every container an object runs."""
    for where, pod in pod_specs(obj):
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            yield where, pod, c
