"""`creditrisk monitor challenger`: champion against challenger on shadow-scored records
of a prediction log written by the serving code's own writer
(:class:`creditrisk.serve.predlog.PredictionLog`, the challenger's answers in
``Batch.extra["challenger"]``), its figures checked against the core evaluation and the
stability functions on the same rows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitoring_helpers import run_cli, write_labels
from sklearn.metrics import brier_score_loss, roc_auc_score

from creditrisk.contract import FEATURE_NAMES
from creditrisk.evaluation import classification_metrics
from creditrisk.monitoring import names
from creditrisk.monitoring.jobs import challenger_samples
from creditrisk.serve.predlog import Batch, PredictionLog

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
BANDS = [(0.15, "low"), (0.35, "medium"), (0.6, "high"), (1.0, "very_high")]
THRESHOLD = 0.5


def _band(p: float) -> str:
    return next(name for upper, name in BANDS if p <= upper)


def _decision(p: float, threshold: float = THRESHOLD) -> str:
    return "decline" if p >= threshold else "approve"


def write_shadow_log(root: Path, n: int, *, seed: int = 0, batch: int = 50,
                     shadow_every: int = 1, invalid: int = 0,
                     versions: tuple[str, str] = ("3", "4"), follow_up: bool = False
                     ) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray, np.ndarray]:
    """``n`` records through the real writer; every ``shadow_every``-th batch carries the
    challenger's answers (``invalid`` of them broken): in the champion's lines, or with
    ``follow_up`` as the shadow scorer writes them (:mod:`creditrisk.serve.shadow`: the
    champion's line first, a follow-up line of the same key later). Returns (keys, champion p,
    challenger p (NaN where not shadow-scored), labels)."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(risk * 1.5 - 1.3)))).astype(int)
    p_champion = 1 / (1 + np.exp(-(risk * 1.3 - 1.3 + rng.normal(0, .5, n))))
    p_challenger = 1 / (1 + np.exp(-(risk * 1.2 - 1.2 + rng.normal(0, .7, n))))
    X = rng.integers(0, 5, size=(n, len(FEATURE_NAMES))).astype(float)
    plog = PredictionLog(str(root), segment_age_s=3600)
    keys: list[tuple[str, int]] = []
    shadowed = np.full(n, np.nan)
    broken = invalid
    late: list[Batch] = []
    for i, lo in enumerate(range(0, n, batch)):
        hi = min(lo + batch, n)
        p = p_champion[lo:hi]
        b = Batch(f"req-{i:05d}", START.timestamp() + i, "credit-default", versions[0],
                  X[lo:hi], p,
                  [_decision(v) for v in p], [_band(v) for v in p])
        if i % shadow_every == 0:
            answers: list[object] = [
                {"version": versions[1], "probability": float(v), "decision": _decision(v)}
                for v in p_challenger[lo:hi]]
            shadowed[lo:hi] = p_challenger[lo:hi]
            if broken:
                answers[0] = {"version": "4", "probability": 1.5, "decision": "approve"}
                shadowed[lo] = np.nan
                broken -= 1
            if follow_up:  # as serve.shadow writes it, after the next batch's answer
                late.append(Batch(b.request_id, b.timestamp, b.model_name, b.model_version,
                                  b.X, b.probability, b.decision, b.risk_band,
                                  extra={"challenger": answers}))
            else:
                b.extra = {"challenger": answers}
        assert plog.submit(b)
        while len(late) > (1 if i % shadow_every == 0 else 0):
            assert plog.submit(late.pop(0))
        keys += [(b.request_id, r) for r in range(hi - lo)]
    for b in late:
        assert plog.submit(b)
    plog.close()
    return keys, p_champion, shadowed, y


def _run(log: Path, out: Path, *extra: str) -> tuple[int, dict, str]:
    code, _, err = run_cli("monitor", "challenger", "--log", str(log), "--out", str(out),
                           "--since", "2026-03-01T00:00:00", "--until", "2026-03-02T00:00:00",
                           *extra)
    return code, json.loads((out / "challenger.json").read_text()), err


@pytest.mark.unit
@pytest.mark.parametrize("follow_up", [False, True], ids=["inline", "follow-up"])
def test_challenger_figures_equal_the_core_evaluation_of_the_same_rows(
        tmp_path: Path, follow_up: bool) -> None:
    keys, p_ch, p_cr, y = write_shadow_log(tmp_path / "log", 6000, shadow_every=2,
                                           invalid=3, follow_up=follow_up)
    labelled = np.arange(len(keys)) % 3 != 0  # two thirds of the records labelled
    labels = write_labels(tmp_path / "labels.csv",
                          [k for k, m in zip(keys, labelled, strict=True) if m], y[labelled])
    code, report, err = _run(tmp_path / "log", tmp_path / "out", "--labels", str(labels))
    assert code == 0, err
    both = np.isfinite(p_cr)
    assert report["rows"] == {**report["rows"], "records": 6000,
                              "shadow_scored": int(both.sum()), "invalid_challenger": 3}
    assert report["log"]["merged_shadow_lines"] == (int(both.sum()) + 3 if follow_up else 0)
    assert report["versions"]["champion"]["version"] == "3"
    assert report["versions"]["challenger"]["version"] == "4"
    # decisions: agreement and the swap table, counted here from what was written
    ok_ch, ok_cr = p_ch[both] < THRESHOLD, p_cr[both] < THRESHOLD
    assert report["scores"]["agreement"] == pytest.approx((ok_ch == ok_cr).mean(), abs=1e-12)
    total = report["swaps"][-1]
    assert total == {"band": "all", "records": int(both.sum()),
                     "both_approve": int((ok_ch & ok_cr).sum()),
                     "both_decline": int((~ok_ch & ~ok_cr).sum()),
                     "swap_in": int((~ok_ch & ok_cr).sum()),
                     "swap_out": int((ok_ch & ~ok_cr).sum())}
    assert total["swap_in"] > 0 and total["swap_out"] > 0
    bands = np.array([_band(v) for v in p_ch[both]])
    for row in report["swaps"][:-1]:
        m = bands == row["band"]
        assert row["records"] == m.sum() and row["swap_out"] == (m & ok_ch & ~ok_cr).sum()
    assert report["scores"]["correlation"]["pearson"] == pytest.approx(
        np.corrcoef(p_ch[both], p_cr[both])[0, 1], abs=1e-9)
    # PSI on deciles of the champion's scores, computed here from its definition
    edges = np.unique(np.quantile(p_ch[both], np.linspace(0, 1, 11)[1:-1]))
    e = np.bincount(np.searchsorted(edges, p_ch[both]), minlength=edges.size + 1) / both.sum()
    a = np.bincount(np.searchsorted(edges, p_cr[both]), minlength=edges.size + 1) / both.sum()
    a, e = np.where(a > 0, a, 1e-4), np.where(e > 0, e, 1e-4)
    assert report["scores"]["psi"]["psi"] == pytest.approx(np.sum((a - e) * np.log(a / e)),
                                                           abs=1e-6)
    # labelled: both models on the same records, by the core evaluation
    same = both & labelled
    lab = report["labelled"]
    assert lab["rows"] == report["rows"]["labelled"] == int(same.sum())
    core_ch = classification_metrics(y[same], p_ch[same])
    core_cr = classification_metrics(y[same], p_cr[same])
    for metric in core_ch:
        assert lab["champion"][metric] == pytest.approx(core_ch[metric], abs=1e-9)
        assert lab["challenger"][metric] == pytest.approx(core_cr[metric], abs=1e-9)
    assert lab["champion"]["roc_auc"] == pytest.approx(roc_auc_score(y[same], p_ch[same]))
    assert lab["challenger"]["brier"] == pytest.approx(brier_score_loss(y[same], p_cr[same]))
    assert lab["roc_auc_loss"] == pytest.approx(core_ch["roc_auc"] - core_cr["roc_auc"])
    swap_in = same & np.isfinite(p_cr) & (p_ch >= THRESHOLD) & (p_cr < THRESHOLD)
    assert lab["swap_in"]["labelled"] == swap_in.sum()
    assert lab["swap_in"]["default_rate"] == pytest.approx(y[swap_in].mean())
    page = (tmp_path / "out" / "challenger.html").read_text()
    assert "Swap-in / swap-out" in page and f"{core_cr['roc_auc']:.4f}" in page
    # what is pushed
    pushed = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for s in challenger_samples(report)}
    assert pushed[(names.CHALLENGER_ROC_AUC, (("scorer", "challenger"),))] == \
        lab["challenger"]["roc_auc"]
    assert pushed[(names.CHALLENGER_SWAPS, (("band", "all"), ("direction", "swap_in")))] \
        == total["swap_in"]


@pytest.mark.unit
def test_too_few_shadow_scored_records_exit_3(tmp_path: Path) -> None:
    write_shadow_log(tmp_path / "log", 2000, shadow_every=5)  # 400 of 2,000 shadow-scored
    code, report, err = _run(tmp_path / "log", tmp_path / "out")
    assert code == 3
    assert report["status"] == "too_few_rows" and report["rows"]["shadow_scored"] == 400
    assert "400 of 2000" in err and "monitoring.challenger.min_records" in err
    assert not (tmp_path / "out" / "challenger.html").exists()
    # the minimum is the config's
    cfg = tmp_path / "c.yaml"
    cfg.write_text("monitoring:\n  challenger:\n    min_records: 400\n")
    code, report, err = _run(tmp_path / "log", tmp_path / "out2", "--config", str(cfg))
    assert code == 0, err
    assert report["labelled"] is None and report["scores"]["agreement"] > 0.5


@pytest.mark.unit
def test_a_log_without_shadow_scoring_has_no_evidence(tmp_path: Path) -> None:
    write_shadow_log(tmp_path / "log", 600, shadow_every=10 ** 6)  # only batch 0
    code, report, _ = _run(tmp_path / "log", tmp_path / "out")
    assert code == 3 and report["rows"]["shadow_scored"] == 50


@pytest.mark.unit
def test_a_labels_location_with_no_labels_yet_compares_without(tmp_path: Path) -> None:
    """Labels arrive months late: the CronJob passes the labels location from the first
    day; while it holds no label file the job judges without labels (a warning), and a
    label file that is there but broken stays an error."""
    write_shadow_log(tmp_path / "log", 2000)
    (tmp_path / "labels").mkdir()
    code, report, err = _run(tmp_path / "log", tmp_path / "out", "--labels",
                             str(tmp_path / "labels"))
    assert code == 0, err
    assert report["labelled"] is None and report["rows"]["labelled"] == 0
    assert "holds no label files yet" in err
    (tmp_path / "labels" / "l.csv").write_text("request_id,label\nx,1\n")
    code, _, err = run_cli("monitor", "challenger", "--log", str(tmp_path / "log"), "--out",
                           str(tmp_path / "out2"), "--labels", str(tmp_path / "labels"),
                           "--since", "2026-03-01T00:00:00", "--until", "2026-03-02T00:00:00")
    assert code == 2 and "labels need columns" in err


# --------------------------------------------------------------------------------------
# promotion on the evidence
# --------------------------------------------------------------------------------------


def _evidence(tmp_path: Path, n: int, versions: tuple[str, str], *, labelled_every: int = 1
              ) -> Path:
    keys, _, _, y = write_shadow_log(tmp_path / "log", n, versions=versions)
    pick = np.arange(n) % labelled_every == 0
    labels = write_labels(tmp_path / "labels.csv",
                          [k for k, m in zip(keys, pick, strict=True) if m], y[pick])
    code, _, err = _run(tmp_path / "log", tmp_path / "evidence", "--labels", str(labels))
    assert code == 0, err
    return tmp_path / "evidence"


@pytest.mark.unit
def test_the_evidence_rule(tmp_path: Path) -> None:
    from creditrisk.config import GateEvidenceConfig
    from creditrisk.evidence import judge_evidence, read_evidence

    report = read_evidence(_evidence(tmp_path, 3000, ("1", "2"), labelled_every=2))
    lab = report["labelled"]
    assert report["rows"]["shadow_scored"] == 3000 and lab["rows"] == 1500
    loss = lab["roc_auc_loss"]
    cfg = GateEvidenceConfig(min_shadow_records=3000, min_labelled_records=1500,
                             max_roc_auc_loss=loss + 0.001)
    ok = judge_evidence(report, cfg, candidate="2", champion="1")
    assert ok.passed and ok.sufficient and all(ok.checks.values())
    # the loss tolerated is the config's
    strict = cfg.model_copy(update={"max_roc_auc_loss": max(loss - 0.001, 0.0)})
    assert not judge_evidence(report, strict, candidate="2", champion="1").passed
    # about another model, or against another champion: failed checks
    other = judge_evidence(report, cfg, candidate="7", champion="1")
    assert not other.passed and "FAIL: evidence is about candidate 7 (live evidence)" \
        in other.reasons
    assert not judge_evidence(report, cfg, candidate="2", champion="5").passed
    # too little: says how much is missing, decides nothing
    more = cfg.model_copy(update={"min_shadow_records": 3500, "min_labelled_records": 1600})
    short = judge_evidence(report, more, candidate="2", champion="1")
    assert not short.passed and not short.sufficient
    assert short.missing == [
        "500 more shadow-scored records (3000 of 3500, gate_evidence.min_shadow_records)",
        "100 more labelled shadow-scored records (1500 of 1600, "
        "gate_evidence.min_labelled_records)"]


@pytest.mark.unit
def test_gate_evidence_config_overrides_name_the_field() -> None:
    from creditrisk.config import load_config, parse_assignments
    from creditrisk.errors import ConfigError

    cfg = load_config(None, parse_assignments(["gate_evidence.min_shadow_records=20",
                                               "gate_evidence.required=true"]))
    assert cfg.gate_evidence.min_shadow_records == 20 and cfg.gate_evidence.required
    assert "roc_auc" in cfg.gate.root  # the gate's metrics untouched
    with pytest.raises(ConfigError, match=r"gate_evidence\.max_roc_auc_loss"):
        load_config(None, parse_assignments(["gate_evidence.max_roc_auc_loss=-1"]))


@pytest.mark.integration
def test_promote_on_evidence_moves_nothing_on_too_little_and_records_it(
        trained_run, tmp_path: Path) -> None:
    from creditrisk import decisions, registry

    for name in ("first", "second"):
        registry.log_and_register(out_dir=trained_run.out_dir, run_name=name)
    gate = ["--set", "gate.roc_auc.max_absolute_worsening=0.05"]
    code, out, err = run_cli("model", "promote", "1", *gate)
    assert code == 0 and registry.champion_version() == "1", err
    evidence = _evidence(tmp_path, 2000, ("1", "2"))
    loss = json.loads((evidence / "challenger.json").read_text())["labelled"]["roc_auc_loss"]
    tolerate = ["--set", f"gate_evidence.max_roc_auc_loss={max(loss, 0) + 0.01:.4f}"]
    before = decisions.keys()
    # too little: what is missing is said, nothing written, nothing moved
    code, out, err = run_cli("model", "promote", "2", "--evidence", str(evidence), *gate,
                             *tolerate, "--set", "gate_evidence.min_shadow_records=5000")
    assert code == 0, err
    assert "3000 more shadow-scored records (2000 of 5000" in out + err
    assert "nothing moved" in out + err
    assert registry.champion_version() == "1" and decisions.keys() == before
    # required and not given: nothing moved either
    code, out, err = run_cli("model", "promote", "2", *gate, "--set",
                             "gate_evidence.required=true")
    assert code == 0 and registry.champion_version() == "1" and decisions.keys() == before
    # enough evidence: promoted, the record carries it
    code, out, err = run_cli("model", "promote", "2", "--evidence", str(evidence), *gate,
                             *tolerate)
    assert code == 0 and registry.champion_version() == "2", out + err
    record = decisions.history((decisions.PROMOTION,))[-1]
    live = record.evidence["live"]
    assert live["figures"]["shadow_scored"] == 2000 and live["figures"]["labelled"] == 2000
    assert live["figures"]["roc_auc_loss"] == pytest.approx(loss)
    assert live["passed"] and live["source"].endswith("challenger.json")
    assert any("(live evidence)" in r for r in record.reasons)


# --------------------------------------------------------------------------------------
# real-ish data: the quick model on the real held-out split against a second real model,
# the job pushing to a real Pushgateway, its page in a real browser
# --------------------------------------------------------------------------------------


def _write_pairs(root: Path, X: np.ndarray, p_champion: np.ndarray, p_challenger: np.ndarray,
                 meta: Any, *, batch: int = 40) -> list[tuple[str, int]]:
    """Each batch through the real writer as the transformer and its shadow scorer write
    it: the champion's line, then the follow-up with the challenger's answers."""
    from creditrisk.scoring import decisions

    plog = PredictionLog(str(root), segment_age_s=3600)
    keys: list[tuple[str, int]] = []
    for i, lo in enumerate(range(0, len(X), batch)):
        hi = min(lo + batch, len(X))
        p, q = p_champion[lo:hi], p_challenger[lo:hi]
        decision, bands = decisions(p, meta)
        b = Batch(f"real-{i:05d}", START.timestamp() + i, "credit-default", "3", X[lo:hi], p,
                  decision, bands)
        answers = [{"version": "4", "probability": float(v), "decision": d}
                   for v, d in zip(q, decisions(q, meta)[0], strict=True)]
        assert plog.submit(b)
        assert plog.submit(Batch(b.request_id, b.timestamp, b.model_name, b.model_version,
                                 b.X, p, decision, bands, extra={"challenger": answers}))
        keys += [(b.request_id, r) for r in range(hi - lo)]
    plog.close()
    return keys


@pytest.fixture(scope="module")
def real_shadow(trained_run: Any, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[dict[str, Any]]:
    """Champion: the quick model; challenger: a logistic regression fitted on the same
    training split; 3,000 held-out records of the real data file scored by both and
    labelled; the job (CLI) run once, pushing to a real ``prometheus-pushgateway``."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from creditrisk.contract import TARGET
    from creditrisk.monitoring.promconfig import start_pushgateway
    from creditrisk.registry import load_model
    from tests.helpers import require_binary

    require_binary("prometheus-pushgateway", "apt-get install prometheus-pushgateway")
    root = tmp_path_factory.mktemp("challenger-real")
    champion = load_model(trained_run.model_dir)
    train = pd.read_parquet(trained_run.run_dir.train_split)
    challenger = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        train.loc[:, list(FEATURE_NAMES)], train[TARGET])
    test = pd.read_parquet(trained_run.run_dir.test_split).sample(3000, random_state=5)
    X = test.loc[:, list(FEATURE_NAMES)]
    p_ch = champion.predict_proba(X)
    p_cr = challenger.predict_proba(X)[:, 1]
    keys = _write_pairs(root / "log", X.to_numpy(dtype=np.float64), p_ch, p_cr,
                        champion.metadata)
    labels = write_labels(root / "labels.csv", keys, test[TARGET].tolist())
    gw = start_pushgateway(workdir=root)
    try:
        code, report, err = _run(root / "log", root / "out", "--labels", str(labels),
                                 "--pushgateway", gw.url)
        assert code == 0, err
        yield {"root": root, "gw": gw, "report": report, "err": err,
               "html": root / "out" / "challenger.html"}
    finally:
        gw.stop()


def _pushed(gw_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the Pushgateway exposes of the challenger job: (name, labels) -> value."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{gw_url}/metrics", timeout=10).text
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items()
                                  if k not in ("job", "model", "instance")))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.labels.get("job") == names.CHALLENGER_JOB
            and s.name.startswith("creditrisk_challenger_")}


@pytest.mark.integration
def test_the_push_reads_back_from_a_real_pushgateway(real_shadow: dict[str, Any]) -> None:
    """Every series the job pushes is on the Pushgateway, in the group (job, model), with
    the report's values; the next run (without labels) replaces the whole group."""
    import time

    from creditrisk.settings import get_settings

    report, gw = real_shadow["report"], real_shadow["gw"]
    assert f"pushed {len(challenger_samples(report))} series to {gw.url}" in \
        " ".join(real_shadow["err"].split())
    pushed = _pushed(gw.url)
    expected = {(s.name, tuple(sorted(s.labels.items()))): s.value
                for s in challenger_samples(report)}
    assert set(pushed) == set(expected)
    last = pushed.pop((names.CHALLENGER_LAST_SUCCESS, ()))
    assert abs(time.time() - last) < 900
    assert pushed == pytest.approx({k: v for k, v in expected.items()
                                    if k[0] != names.CHALLENGER_LAST_SUCCESS}, abs=1e-12)
    # the values are the report's (what challenger.json says)
    lab, total = report["labelled"], report["swaps"][-1]
    assert pushed[(names.CHALLENGER_AGREEMENT, ())] == report["scores"]["agreement"]
    assert pushed[(names.CHALLENGER_PSI, ())] == report["scores"]["psi"]["psi"]
    assert pushed[(names.CHALLENGER_SHADOW_RECORDS, ())] == 3000 == total["records"]
    assert pushed[(names.CHALLENGER_SWAPS, (("band", "all"), ("direction", "swap_out")))] \
        == total["swap_out"]
    for scorer in ("champion", "challenger"):
        assert pushed[(names.CHALLENGER_ROC_AUC, (("scorer", scorer),))] == \
            lab[scorer]["roc_auc"]
    assert pushed[(names.CHALLENGER_LABELLED_RECORDS, ())] == lab["rows"] == 3000
    assert _groups(gw.url) == {(names.CHALLENGER_JOB, get_settings().model_name)}
    # a run without labels replaces the group: no labelled figures left behind
    code, _, err = _run(real_shadow["root"] / "log", real_shadow["root"] / "out-nolabels",
                        "--pushgateway", gw.url)
    assert code == 0, err
    again = _pushed(gw.url)
    assert again[(names.CHALLENGER_LABELLED_RECORDS, ())] == 0
    assert not any(name in (names.CHALLENGER_ROC_AUC, names.CHALLENGER_BRIER)
                   for name, _ in again)


def _groups(gw_url: str) -> set[tuple[str, str]]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{gw_url}/metrics", timeout=10).text
    return {(s.labels["job"], s.labels["model"]) for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name.startswith("creditrisk_challenger_")}


def _tables(dom: str) -> list[list[list[str]]]:
    """The rendered DOM's tables: rows of cell texts (header row first)."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables: list[list[list[str]]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th") and self.cell is not None:
                self.tables[-1][-1].append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Cells()
    parser.feed(dom)
    return parser.tables


def _chromium_dom(html: Path) -> tuple[str, str]:
    """Headless Chromium's DOM of a local page (every network request sent to a dead
    proxy) and its log, console messages included."""
    from tests.helpers import offline_chromium

    r = offline_chromium(html, "--enable-logging=stderr", "--v=0", "--dump-dom")
    return r.stdout, r.stderr


@pytest.mark.integration
def test_challenger_page_renders_in_chromium(real_shadow: dict[str, Any]) -> None:
    """The page the job wrote loads nothing and logs no console message in headless
    Chromium; its three tables are drawn with the report's figures."""
    from tests.helpers import colour_count, offline_page_pixels

    report, html = real_shadow["report"], real_shadow["html"]
    raw = html.read_text()
    assert "<script" not in raw and "http://" not in raw and "https://" not in raw
    dom, log = _chromium_dom(html)
    assert ":CONSOLE" not in log, [ln for ln in log.splitlines() if ":CONSOLE" in ln]
    scores, swaps, labelled = _tables(dom)
    figures = {row[0]: row[1] for row in scores[1:]}
    s = report["scores"]
    assert figures["decision agreement"] == f"{s['agreement']:.4f}"
    assert figures["Spearman correlation"] == f"{s['correlation']['spearman']:.4f}"
    assert figures["PSI challenger vs champion"] == f"{s['psi']['psi']:.4f} ({s['psi']['band']})"
    assert swaps[0] == ["band", "records", "both_approve", "both_decline", "swap_in",
                        "swap_out"]
    assert [r[0] for r in swaps[1:]] == [r["band"] for r in report["swaps"]]
    total = report["swaps"][-1]
    assert swaps[-1] == ["all", *(str(total[k]) for k in swaps[0][1:])]
    lab = report["labelled"]
    metrics = {row[0]: row[1:] for row in labelled[1:]}
    assert metrics["roc_auc"] == [f"{lab['champion']['roc_auc']:.4f}",
                                  f"{lab['challenger']['roc_auc']:.4f}"]
    assert len(metrics) == len(lab["champion"]) + 2
    # drawn: the header cells' grey and the cell borders fill part of the screenshot
    pixels = offline_page_pixels(html, real_shadow["root"] / "challenger.png")
    assert colour_count(pixels, "#f4f4f4") > 15000 and colour_count(pixels, "#dddddd") > 8000, (
        colour_count(pixels, "#f4f4f4"), colour_count(pixels, "#dddddd"))
