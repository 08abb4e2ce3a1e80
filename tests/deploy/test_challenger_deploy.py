"""The challenger predictor on the cluster (issue 16): off by default in every overlay and
the chart; enabled (the kustomize component manifests/components/challenger added to an
overlay, the chart's `challenger.enabled=true`) it renders, validates (kubernetes-validate
and the CRDs, as test_manifests does), wires the transformer's --challenger_host to the
challenger's Service and keeps the champion predictor's pod spec."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_helpers import (
    CUSTOM_KINDS,
    KUBERNETES_VERSION,
    OVERLAYS,
    docs,
    render_chart,
    render_overlay,
    run,
    tool,
)
from test_manifests import _crd_schemas

pytestmark = pytest.mark.integration

CHALLENGER = "credit-default-challenger"
HOST_ARG = f"--challenger_host={CHALLENGER}-predictor"


def _isvcs(text: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs(text) if d["kind"] == "InferenceService"}


def _transformer_args(text: str) -> list[str]:
    return _isvcs(text)["credit-default"]["spec"]["transformer"]["containers"][0]["args"]


@pytest.fixture(scope="module")
def enabled(manifests_dir: Path) -> dict[str, str]:
    """Every overlay with the component added (as its README says), and the chart with
    challenger.enabled=true."""
    out = {}
    for overlay in OVERLAYS:
        k = manifests_dir / "overlays" / overlay / "kustomization.yaml"
        original = k.read_text()
        try:
            k.write_text(original + "\ncomponents:\n  - ../../components/challenger\n")
            out[f"overlay:{overlay}"] = render_overlay(manifests_dir, overlay)
        finally:
            k.write_text(original)
    out["chart"] = render_chart("--set", "challenger.enabled=true")
    return out


def test_off_by_default(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        assert "challenger" not in text, name
        assert not any(a.startswith("--challenger_host") for a in _transformer_args(text))


@pytest.mark.parametrize("name", [f"overlay:{o}" for o in OVERLAYS] + ["chart"])
def test_enabled_renders_validate_and_wire_the_host(enabled: dict[str, str], name: str,
                                                    tmp_path: Path) -> None:
    text = enabled[name]
    objs = docs(text)
    core = [d for d in objs if d["kind"] not in CUSTOM_KINDS]
    (tmp_path / "core.yaml").write_text(yaml.safe_dump_all(core))
    proc = run([tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION,
                str(tmp_path / "core.yaml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    schemas = _crd_schemas()
    for obj in (d for d in objs if d["kind"] in CUSTOM_KINDS):
        errors = list(jsonschema.Draft7Validator(
            schemas[(obj["apiVersion"], obj["kind"])]).iter_errors(obj))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors[0].message}"
    isvcs = _isvcs(text)
    assert set(isvcs) == {"credit-default", CHALLENGER}
    assert "transformer" not in isvcs[CHALLENGER]["spec"]
    assert _transformer_args(text).count(HOST_ARG) == 1
    # the challenger lands in the overlay's (release's) namespace, beside the champion
    namespaces = {d["metadata"].get("namespace") for d in objs
                  if d["kind"] in ("InferenceService", "NetworkPolicy")}
    assert namespaces == {isvcs["credit-default"]["metadata"]["namespace"]}, name
    policy = next(d for d in objs if d["kind"] == "NetworkPolicy"
                  and d["spec"]["podSelector"].get("matchLabels", {}).get(
                      "serving.kserve.io/inferenceservice") == CHALLENGER)
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "credit-default", "component": "transformer"}


def _without_model(predictor: dict[str, Any]) -> dict[str, Any]:
    """The predictor spec but for what names its model and its scale."""
    p = copy.deepcopy(predictor)
    c = p["containers"][0]
    c["env"] = [e for e in c["env"] if e["name"] not in ("STORAGE_URI", "MODEL_VERSION")]
    c["resources"]["requests"].pop("cpu")  # the kind overlay's laptop-sized requests
    p.pop("maxReplicas"), p.pop("minReplicas")
    return p


@pytest.mark.parametrize("name", [f"overlay:{o}" for o in OVERLAYS] + ["chart"])
def test_the_challenger_has_the_champion_predictors_pod_spec(enabled: dict[str, str],
                                                             name: str) -> None:
    isvcs = _isvcs(enabled[name])
    champion, challenger = (isvcs[n]["spec"]["predictor"] for n in ("credit-default",
                                                                   CHALLENGER))
    assert _without_model(challenger) == _without_model(champion)
    env = [e["name"] for e in challenger["containers"][0]["env"]]
    assert env[:2] == ["STORAGE_URI", "MODEL_VERSION"]
    assert challenger["containers"][0]["image"] == champion["containers"][0]["image"]
    # the overlay's registry, as the champion's (never the bare placeholder name)
    assert "/" in challenger["containers"][0]["image"]


def test_the_chart_takes_the_challengers_model() -> None:
    text = render_chart("--set", "challenger.enabled=true",
                        "--set", "challenger.storageUri=s3://mlflow/artifacts/1/abc/model",
                        "--set-string", "challenger.modelVersion=7")
    env = _isvcs(text)[CHALLENGER]["spec"]["predictor"]["containers"][0]["env"]
    assert env[:2] == [{"name": "STORAGE_URI", "value": "s3://mlflow/artifacts/1/abc/model"},
                       {"name": "MODEL_VERSION", "value": "7"}]
    proc = run([tool("helm"), "template", "x", str(Path(__file__).parents[2] / "helm" /
                                                    "creditrisk"),
                "--set", "challenger.enabled=true", "--set", "challenger.storageUri=gs://x"])
    assert proc.returncode != 0 and "storageUri" in proc.stderr
