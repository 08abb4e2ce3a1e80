"""Evaluation: discrimination and calibration metrics, the cost-based decision threshold,
fairness slices, plots and the model card."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from creditrisk import metric_names as mn
from creditrisk.contract import AGE_BANDS, FEATURES_BY_NAME, age_band


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov–Smirnov: the largest gap between the score CDFs of the two classes."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> float:
    """ECE over equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`creditrisk.metric_names.CLASSIFICATION`, in its order."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    return {
        mn.ROC_AUC: float(roc_auc_score(y, p)),
        mn.PR_AUC: float(average_precision_score(y, p)),
        mn.BRIER: float(brier_score_loss(y, p)),
        mn.LOG_LOSS: float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))),
        mn.KS: ks_statistic(y, p),
        mn.ECE: expected_calibration_error(y, p),
    }


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    expected_cost_per_client: float
    cost_false_negative: float
    cost_false_positive: float


def choose_threshold(
    y: np.ndarray, p: np.ndarray, *, cost_false_negative: float, cost_false_positive: float
) -> ThresholdChoice:
    """The threshold that minimises cost(FN)·FN + cost(FP)·FP (decline when p ≥ t)."""
    y = np.asarray(y)
    grid = np.round(np.arange(0.01, 1.0, 0.005), 4)
    pos = y == 1
    costs = np.array(
        [
            cost_false_negative * np.sum(pos & (p < t))
            + cost_false_positive * np.sum(~pos & (p >= t))
            for t in grid
        ]
    )
    best = int(np.argmin(costs))
    return ThresholdChoice(
        threshold=float(grid[best]),
        expected_cost_per_client=float(costs[best] / len(y)),
        cost_false_negative=cost_false_negative,
        cost_false_positive=cost_false_positive,
    )


def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def _code_label(column: str, code: int) -> str:
    feature = FEATURES_BY_NAME[column]
    folded = dict(feature.fold).get(code, code)
    return str(folded)


def fairness_slices(frame: pd.DataFrame, p: np.ndarray, y: np.ndarray,
                    threshold: float) -> list[dict[str, Any]]:
    """AUC, approval rate and default rate per group of SEX, EDUCATION, MARRIAGE (when
    the frame has it) and age band."""
    groups = {
        "SEX": frame["SEX"].astype(int).map(lambda c: _code_label("SEX", c)),
        "EDUCATION": frame["EDUCATION"].astype(int).map(lambda c: _code_label("EDUCATION", c)),
        **({"MARRIAGE": frame["MARRIAGE"].astype(int).map(
            lambda c: _code_label("MARRIAGE", c))} if "MARRIAGE" in frame else {}),
        "AGE_BAND": frame["AGE"].map(age_band),
    }
    order = {"AGE_BAND": [b[0] for b in AGE_BANDS]}
    rows: list[dict[str, Any]] = []
    approve = p < threshold
    for attr, labels in groups.items():
        labels = labels.to_numpy()
        values = order.get(attr) or sorted(set(labels))
        for value in values:
            m = labels == value
            if not m.any():
                continue
            yy = y[m]
            rows.append(
                {
                    "attribute": attr,
                    "group": str(value),
                    "n": int(m.sum()),
                    "default_rate": float(yy.mean()),
                    mn.ROC_AUC: (float(roc_auc_score(yy, p[m])) if 0 < yy.sum() < len(yy)
                                 else None),
                    "approval_rate": float(approve[m].mean()),
                    "mean_probability": float(p[m].mean()),
                }
            )
    return rows


# --------------------------------------------------------------------------------------
# Plots and the model card
# --------------------------------------------------------------------------------------


def write_plots(y: np.ndarray, p: np.ndarray, threshold: float, out: Path,
                baseline: np.ndarray | None = None) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y, p):.3f})")
    if baseline is not None:
        bf, bt, _ = roc_curve(y, baseline)
        ax.plot(bf, bt, "--", label=f"baseline (AUC {roc_auc_score(y, baseline):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    paths["roc"] = _save(fig, out / "roc_curve.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    prec, rec, _ = precision_recall_curve(y, p)
    ax.plot(rec, prec, label=f"model (AP {average_precision_score(y, p):.3f})")
    if baseline is not None:
        bp, br, _ = precision_recall_curve(y, baseline)
        ax.plot(br, bp, "--", label=f"baseline (AP {average_precision_score(y, baseline):.3f})")
    ax.axhline(y.mean(), ls=":", color="grey", label=f"prevalence {y.mean():.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve")
    ax.legend(loc="upper right")
    paths["pr"] = _save(fig, out / "pr_curve.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    edges = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, 9)
    xs = [p[idx == b].mean() for b in range(10) if (idx == b).any()]
    ys = [y[idx == b].mean() for b in range(10) if (idx == b).any()]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ax.plot(xs, ys, "o-", label="model")
    ax.set(xlabel="Mean predicted probability", ylabel="Observed default rate",
           title="Calibration curve")
    ax.legend(loc="upper left")
    paths["calibration"] = _save(fig, out / "calibration_curve.png")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = confusion_at(y, p, threshold)
    mat = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    ax.imshow(mat, cmap="Blues")
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, str(v), ha="center", va="center",
                color="white" if v > mat.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["approve", "decline"],
           yticklabels=["paid", "defaulted"], xlabel="Decision", ylabel="Outcome",
           title=f"Confusion matrix at t={threshold:.3f}")
    paths["confusion"] = _save(fig, out / "confusion_matrix.png")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


@dataclass
class Evaluation:
    """Everything :func:`evaluate` measured on one labelled set."""

    metrics: dict[str, float]
    threshold: float
    confusion: dict[str, int]
    fairness: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "threshold": self.threshold,
                "confusion": self.confusion, "fairness": self.fairness}


def evaluate(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, *, threshold: float) -> Evaluation:
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    return Evaluation(
        metrics=classification_metrics(y, p),
        threshold=threshold,
        confusion=confusion_at(y, p, threshold),
        fairness=fairness_slices(frame, p, y, threshold),
    )


def _validation_lines(path: str | None) -> list[str]:
    if not path:
        return []
    return ["## Validation report",
            "Data, discrimination with intervals, calibration by risk band, stability, "
            "fairness (adverse impact ratios), monotonicity, adverse-action reasons and "
            f"limitations: [{path}]({path}) in the run's artifacts.", ""]


# long-function: one Markdown document written section by section, in reading order
#: The model card's closing section.
_CARD_LIMITATIONS = (
    "## Limitations",
    "- Data from one Taiwanese bank in 2005; performance on other populations and "
    "periods is unknown and must be monitored (drift job).",
    "- SEX, MARRIAGE and AGE are inputs of the upstream data set; their use in credit "
    "decisions may be restricted by law. The slices above show per-group behaviour; "
    "review them before production use.",
    "- Undocumented codes (EDUCATION 0/5/6, MARRIAGE 0) are folded into 'others'.",
    "",
)


def model_card(
    *,
    model_name: str,
    summary: dict[str, Any],
    evaluation: Evaluation,
    baseline: dict[str, float],
    config: dict[str, Any],
    data: dict[str, Any],
    validation_report: str | None = None,
) -> str:
    """A Markdown model card for one trained model."""
    m = evaluation.metrics
    cm = evaluation.confusion
    lines = [
        f"# Model card: {model_name}",
        "",
        "## Purpose",
        "Estimates the probability that a credit-card client defaults on next month's "
        "payment, to support (not replace) a credit officer's decision. Trained on the UCI "
        "*Default of Credit Card Clients* data (Taiwan, 2005; Yeh & Lien 2009; CC BY 4.0).",
        "",
        "## Model",
        f"- Estimator: {summary.get('estimator')}",
        f"- Calibration: {summary.get('calibration') or 'none (did not improve Brier)'}",
        f"- Hyper-parameters: `{json.dumps(summary.get('params', {}), sort_keys=True)}`",
        f"- Cross-validated ROC AUC: {summary.get(mn.CV_ROC_AUC_MEAN, float('nan')):.4f} "
        f"± {summary.get(mn.CV_ROC_AUC_STD, float('nan')):.4f}",
        "",
        "## Data",
        f"- Training rows: {data.get('train_rows')}, test rows: {data.get('test_rows')}, "
        f"default rate: {data.get('default_rate', float('nan')):.4f}",
        f"- Source sha256: `{data.get('sha256', 'n/a')}`",
        "",
        "## Held-out performance",
        "| metric | model | baseline (logistic regression) |",
        "|---|---|---|",
    ]
    for k in mn.CLASSIFICATION:
        b = baseline.get(k)
        lines.append(f"| {k} | {m[k]:.4f} | {'' if b is None else f'{b:.4f}'} |")
    t = config["threshold"]
    lines += [
        "",
        "## Decision threshold",
        f"Decline when p ≥ **{evaluation.threshold:.3f}**, the threshold that minimises "
        f"{t['cost_false_negative']:g} × missed defaults + {t['cost_false_positive']:g} × "
        "wrongly declined clients on out-of-fold training predictions.",
        f"At it, on the test set: TP {cm['tp']}, FP {cm['fp']}, FN {cm['fn']}, TN {cm['tn']}.",
        "",
        "## Fairness slices (test set)",
        "| attribute | group | n | default rate | ROC AUC | approval rate |",
        "|---|---|---|---|---|---|",
    ]
    for r in evaluation.fairness:
        auc = "n/a" if r[mn.ROC_AUC] is None else f"{r[mn.ROC_AUC]:.3f}"
        lines.append(f"| {r['attribute']} | {r['group']} | {r['n']} | {r['default_rate']:.3f} | "
                     f"{auc} | {r['approval_rate']:.3f} |")
    lines += ["", *_validation_lines(validation_report), *_CARD_LIMITATIONS]
    return "\n".join(lines)
