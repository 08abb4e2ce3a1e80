"""The challenger predictor on the cluster (issue 16): off by default in every overlay and
the chart; enabled (the kustomize component manifests/components/challenger added to an
overlay, the chart's `challenger.enabled=true`) it renders, validates (kubernetes-validate
and the CRDs, as test_manifests does), wires the transformer's --challenger_host to the
challenger's Service and keeps the champion predictor's pod spec and resources (whatever
the overlay made of them); its evidence -- a PodMonitor for the challenger predictor and
the CronJob creditrisk-challenger (`creditrisk monitor challenger`) -- comes with it."""

from __future__ import annotations

import copy
import os
import re
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
    render_chart,
    render_kustomization,
    render_overlay,
    run,
    tool,
)
from test_manifests import (
    _crd_schemas,
    test_chart_defaults_and_kind_overlay_make_the_same_objects,
    test_kind_fits_a_four_cpu_machine,
)

pytestmark = pytest.mark.integration

CHALLENGER = "credit-default-challenger"
HOST_ARG = f"--challenger_host={CHALLENGER}-predictor"


def _isvcs(text: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs(text) if d["kind"] == "InferenceService"}


def _transformer_args(text: str) -> list[str]:
    return _isvcs(text)["credit-default"]["spec"]["transformer"]["containers"][0]["args"]


#: The evidence CronJob and the challenger predictor's PodMonitor (kustomize names; the
#: chart's are <fullname>-..., the same for the release "creditrisk").
CRONJOB = "creditrisk-challenger"
PODMONITOR = "creditrisk-challenger-server"
ENABLED = [f"overlay:{o}" for o in OVERLAYS] + ["chart"]


def render_with_component(manifests_dir: Path, overlay: str) -> str:
    """The overlay with the component listed in its own kustomization (as the component's
    header says)."""
    k = manifests_dir / "overlays" / overlay / "kustomization.yaml"
    original = k.read_text()
    try:
        k.write_text(original + "\ncomponents:\n  - ../../components/challenger\n")
        return render_overlay(manifests_dir, overlay)
    finally:
        k.write_text(original)


@pytest.fixture(scope="module")
def enabled(manifests_dir: Path) -> dict[str, str]:
    """Every overlay with the component added, and the chart with
    challenger.enabled=true."""
    out = {f"overlay:{o}": render_with_component(manifests_dir, o) for o in OVERLAYS}
    out["chart"] = render_chart("--set", "challenger.enabled=true")
    return out


def _obj(text: str, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs(text) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


#: Present whether or not a challenger runs: the alert rules and dashboards (their
#: shadow-scoring rules and panels see no series without one).
ALWAYS = ("PrometheusRule", "ConfigMap")


def test_off_by_default(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        served = yaml.safe_dump_all([d for d in docs(text) if d["kind"] not in ALWAYS])
        assert "challenger" not in served, name  # nor its PodMonitor, nor its CronJob
        assert not any(a.startswith("--challenger_host") for a in _transformer_args(text))


@pytest.mark.parametrize("name", ENABLED)
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
    """The predictor spec but for what names its model and its scale (its resources
    are the champion's, the kind overlay's laptop-sized requests included)."""
    p = copy.deepcopy(predictor)
    c = p["containers"][0]
    c["env"] = [e for e in c["env"] if e["name"] not in ("STORAGE_URI", "MODEL_VERSION")]
    p.pop("maxReplicas"), p.pop("minReplicas")
    return p


@pytest.mark.parametrize("name", ENABLED)
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


# --- its evidence: the PodMonitor and the CronJob ----------------------------------------

@pytest.mark.parametrize("name", ENABLED)
def test_the_challenger_predictor_is_scraped_as_the_champions(enabled: dict[str, str],
                                                              name: str) -> None:
    text = enabled[name]
    champion = next(d for d in docs(text) if d["kind"] == "PodMonitor"
                    and d["spec"]["selector"]["matchLabels"] == {
                        "serving.kserve.io/inferenceservice": "credit-default",
                        "component": "predictor"})
    ours = _obj(text, "PodMonitor", PODMONITOR)
    assert ours["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": CHALLENGER, "component": "predictor"}
    assert ours["spec"]["podMetricsEndpoints"] == champion["spec"]["podMetricsEndpoints"]
    for field in ("namespace", "labels"):  # the overlay's namespace and release label
        assert ours["metadata"].get(field) == champion["metadata"].get(field), field
    # the operator's scrape `job` label, <namespace>/<name>: none the champion's predictor
    # and transformer rules and panels select (job=~".*predictor.*", ".*transformer.*")
    job = f"{ours['metadata'].get('namespace')}/{ours['metadata']['name']}"
    assert not re.fullmatch(r".*(predictor|transformer).*", job), job
    # the scraped port is the challenger's, and its NetworkPolicy admits it
    port = ours["spec"]["podMetricsEndpoints"][0]["portNumber"]
    container = _isvcs(text)[CHALLENGER]["spec"]["predictor"]["containers"][0]
    assert port in [p["containerPort"] for p in container["ports"]]
    policy = next(d for d in docs(text) if d["kind"] == "NetworkPolicy" and d["spec"][
        "podSelector"].get("matchLabels", {}).get("serving.kserve.io/inferenceservice")
        == CHALLENGER)
    assert {"port": port} in policy["spec"]["ingress"][0]["ports"]


def _but_for_its_job(cronjob: dict[str, Any]) -> dict[str, Any]:
    """A CronJob but for its name, schedule and what its container runs."""
    c = copy.deepcopy(cronjob)
    c["metadata"].pop("name"), c["spec"].pop("schedule")
    template = c["spec"]["jobTemplate"]["spec"]["template"]
    template["metadata"]["labels"].pop("app.kubernetes.io/name")
    (container,) = template["spec"]["containers"]
    container.pop("name"), container.pop("args")
    return c


def _args(cronjob: dict[str, Any]) -> list[str]:
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["creditrisk"]
    return list(container["args"])


@pytest.mark.parametrize("name", ENABLED)
def test_the_evidence_cronjob_runs_as_the_performance_job_does(enabled: dict[str, str],
                                                               name: str) -> None:
    from creditrisk.monitoring.config import MonitoringConfig

    text = enabled[name]
    ours = _obj(text, "CronJob", CRONJOB)
    performance = _obj(text, "CronJob", "creditrisk-performance")
    # the same image, pod and container security, ConfigMap, S3 credentials, resources,
    # emptyDir and bounds as the performance job, whatever the overlay made of them
    assert _but_for_its_job(ours) == _but_for_its_job(performance)
    from creditrisk.monitoring import names

    assert ours["spec"]["schedule"] == names.CHALLENGER_SCHEDULE  # its staleness alert's
    args = _args(ours)
    assert args[:2] == ["monitor", "challenger"]
    flags = dict(a.split("=", 1) for a in args[2:])
    theirs = dict(a.split("=", 1) for a in _args(performance)[2:])
    for flag in ("--log", "--labels", "--pushgateway"):  # the ConfigMap's locations
        assert flags.pop(flag) == theirs[flag], flag
    # its report beside theirs (/tmp/reports/<job> on the emptyDir)
    assert Path(flags.pop("--out")) == Path(theirs["--out"]).parent / "challenger"
    # the recent window: the config's default span for this job
    assert flags.pop("--since") == MonitoringConfig().challenger.window
    assert not flags, flags


@pytest.mark.parametrize("name", ENABLED)
def test_the_evidence_cronjobs_command_is_a_real_invocation(enabled: dict[str, str],
                                                            name: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """The CronJob's arguments through the real `creditrisk` CLI (typer's parsing, the
    option names and types), down to the job function -- a stand-in recording what it
    is given -- and its window resolves."""
    from typer.testing import CliRunner

    from creditrisk.cli import app
    from creditrisk.monitoring import jobs
    from creditrisk.monitoring.window import resolve_window

    given: dict[str, Any] = {}

    def job(**kwargs: Any) -> jobs.JobOutcome:
        given.update(kwargs)
        return jobs.JobOutcome(0, {"status": "ok"})

    monkeypatch.setattr(jobs, "challenger_job", job)
    args = [a.replace("/tmp/reports", str(tmp_path)) for a in
            _args(_obj(enabled[name], "CronJob", CRONJOB))]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert given["log"] == "$(CREDITRISK_PREDICTION_LOG_URI)"
    assert given["labels"] == "$(CREDITRISK_LABELS_URI)"
    assert given["pushgateway"] == "$(CREDITRISK_PUSHGATEWAY_URL)"
    assert given["until"] is None
    window = resolve_window(given["since"], given["until"], default_span="1d")
    assert window.end > window.start


def test_the_chart_and_the_kind_overlay_make_the_same_challenger_objects(
        enabled: dict[str, str]) -> None:
    """test_manifests' parity check (the same objects, names, images and specs but for
    its known differences) on both packagings with the challenger enabled."""
    for name in ("overlay:kind", "chart"):
        for kind, obj in (("InferenceService", CHALLENGER), ("PodMonitor", PODMONITOR),
                          ("CronJob", CRONJOB)):
            _obj(enabled[name], kind, obj)
    test_chart_defaults_and_kind_overlay_make_the_same_objects(
        {"overlay:kind": enabled["overlay:kind"], "chart": enabled["chart"]})


# --- resources: the champion predictor's, so kind still fits ------------------------------

def _resources(text: str, isvc: str) -> dict[str, Any]:
    return dict(_isvcs(text)[isvc]["spec"]["predictor"]["containers"][0]["resources"])


def _job_resources(text: str, cronjob: str) -> dict[str, Any]:
    spec = _obj(text, "CronJob", cronjob)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return dict(spec["containers"][0]["resources"])


@pytest.mark.parametrize("name", ENABLED)
def test_the_challenger_has_the_champion_predictors_resources(enabled: dict[str, str],
                                                              name: str) -> None:
    """Listed in the overlay itself: the overlay's patches run after the component, and
    the kind overlay's replacement copies its patched requests to the challenger."""
    text = enabled[name]
    assert _resources(text, CHALLENGER) == _resources(text, "credit-default"), name
    assert _job_resources(text, CRONJOB) == _job_resources(text, "creditrisk-performance")


def test_stacked_on_the_kind_overlay_the_challenger_follows_it(manifests_dir: Path,
                                                               tmp_path: Path) -> None:
    """The component on top of the kind overlay (an overlay whose resource is kind): the
    component's own replacements see kind's patched requests."""
    rel = os.path.relpath(manifests_dir, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": "creditrisk", "resources": [f"{rel}/overlays/kind"],
        "components": [f"{rel}/components/challenger"]}))
    text = render_kustomization(tmp_path)
    champion = _resources(text, "credit-default")
    assert champion["requests"]["cpu"] == "100m"  # kind's, not the base's 500m
    assert _resources(text, CHALLENGER) == champion
    assert _job_resources(text, CRONJOB) == _job_resources(text, "creditrisk-performance")
    assert _transformer_args(text).count(HOST_ARG) == 1


def test_kind_with_the_challenger_fits_a_four_cpu_machine(enabled: dict[str, str]) -> None:
    """The budget of test_manifests holds with the component listed too: the challenger
    adds the champion predictor's request (kind's 100m) and one 50m job."""
    test_kind_fits_a_four_cpu_machine({"overlay:kind": enabled["overlay:kind"]})


def test_the_challenger_costs_kind_the_champion_predictors_request_and_one_job(
        enabled: dict[str, str], rendered: dict[str, str]) -> None:
    """What enabling adds on kind, in CPU requests: one more champion predictor (its
    minReplicas is 1) and one more monitoring job -- nothing else grows."""
    def requests(text: str) -> dict[tuple[str, str, str], str]:
        return {(d["kind"], d["metadata"]["name"], where): c["resources"]["requests"]["cpu"]
                for d in docs(text) for where, _, c in containers(d)}

    before, after = requests(rendered["overlay:kind"]), requests(enabled["overlay:kind"])
    added = {k: v for k, v in after.items() if k not in before}
    assert added == {
        ("InferenceService", CHALLENGER, "InferenceService.predictor"):
            before[("InferenceService", "credit-default", "InferenceService.predictor")],
        ("CronJob", CRONJOB, "CronJob"): before[("CronJob", "creditrisk-performance",
                                                 "CronJob")]}
    assert {k: after[k] for k in before} == before
    assert _isvcs(enabled["overlay:kind"])[CHALLENGER]["spec"]["predictor"][
        "minReplicas"] == 1


def test_the_charts_challenger_resources_default_to_the_predictors() -> None:
    on = ("--set", "challenger.enabled=true")
    text = render_chart(*on, "--set", "inferenceService.predictor.resources.requests.cpu=300m")
    assert _resources(text, "credit-default")["requests"]["cpu"] == "300m"
    assert _resources(text, CHALLENGER) == _resources(text, "credit-default")
    own = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    sets = [f"challenger.predictor.resources.{k}.{r}={v}"
            for k, rs in own.items() for r, v in rs.items()]
    text = render_chart(*on, *[x for s in sets for x in ("--set-string", s)])
    assert _resources(text, CHALLENGER) == own
    assert _resources(text, "credit-default")["requests"]["cpu"] == "500m"
