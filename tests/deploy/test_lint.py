"""The static checkers of the deployment files: checkov (rendered overlays, the rendered
chart, both Dockerfiles; every skip justified where it is made), hadolint, the GitHub
workflow schema, shellcheck."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from deploy_helpers import OVERLAYS, RELEASE, docs, run, tool

from tests.helpers import REPO

pytestmark = pytest.mark.integration

DOCKERFILES = [REPO / "Dockerfile.serve", REPO / "Dockerfile.train"]


def test_checkov_passes_on_manifests_chart_and_dockerfiles(rendered: dict[str, str],
                                                           tmp_path: Path) -> None:
    files = []
    for name in [f"overlay:{o}" for o in OVERLAYS]:
        path = tmp_path / f"{name.split(':')[1]}.yaml"
        path.write_text(rendered[name])
        files.append(path)
    # the chart as installed: with its helm-test hook, into a namespace
    chart = run([tool("helm"), "template", RELEASE, str(REPO / "helm" / "creditrisk"),
                 "--namespace", RELEASE])
    assert chart.returncode == 0, chart.stderr
    (tmp_path / "chart.yaml").write_text(chart.stdout)
    files.append(tmp_path / "chart.yaml")
    args = [a for f in [*files, *DOCKERFILES] for a in ("-f", str(f))]
    proc = run([tool("checkov"), *args, "--framework", "kubernetes", "dockerfile",
                "--skip-download", "--quiet", "--compact", "-o", "json"], timeout=600)
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{r['check_type']}: {c['check_id']} {c['resource']} ({c['file_path']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert not failed, "\n".join(failed)
    assert passed > 500 and {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}


def test_every_checkov_skip_says_why(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        for obj in docs(text):
            for key, value in obj["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, why = value.partition("=")
                    assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check), (name, value)
                    assert len(why.strip()) > 20, (name, obj["metadata"]["name"], value)
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV2?_[A-Z0-9]+_\d+:\s*.{20,}", line), line


def test_hadolint_passes_on_both_dockerfiles() -> None:
    proc = run([tool("hadolint"), *map(str, DOCKERFILES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_match_the_github_workflow_schema() -> None:
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert {w.name for w in workflows} >= {"ci.yml", "e2e-kind.yml"}
    proc = run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                *map(str, workflows)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_passes_on_the_scripts() -> None:
    scripts = sorted((REPO / "scripts").glob("*.sh"))
    assert {s.name for s in scripts} >= {"install-tools.sh", "kind-up.sh", "kind-down.sh"}
    proc = run([tool("shellcheck"), "--severity=style", "--external-sources",
                *map(str, scripts)], cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
